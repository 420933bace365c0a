"""Data-parallel worker groups: gloo all-reduce, DDP gradient averaging, inside a real Tune
trial, worker errors, and the placement rules for ``resources_per_trial``."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import ray
import torch
import torch.distributed as dist
from torch import nn

from trainers.distributed import WorkerError, WorkerGroup, num_workers, placement

WORLD = 2
BATCH = 8  # split into WORLD equal shards, so the mean of shard means is the full mean


def _toy_model(seed: int) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
    return model


def _toy_batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(BATCH, 3, generator=gen, dtype=torch.float64)
    return x, torch.randn(BATCH, 1, generator=gen, dtype=torch.float64)


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


class Replica:
    """One rank's DDP replica: the same seeded model everywhere, a shard of each batch."""

    def __init__(self, rank: int, world_size: int, seed: int, lr: float) -> None:
        self.rank, self.world_size = rank, world_size
        # Different start on each rank: DDP must broadcast rank 0's weights.
        self.ddp = nn.parallel.DistributedDataParallel(_toy_model(seed + rank))
        self.opt = torch.optim.SGD(self.ddp.parameters(), lr=lr)

    def all_reduce(self, value: float) -> float:
        t = torch.tensor([value * (self.rank + 1)], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t)

    def step(self, batch_seed: int) -> torch.Tensor:
        x, y = _toy_batch(batch_seed)
        shard = slice(self.rank, None, self.world_size)
        loss = nn.functional.mse_loss(self.ddp(x[shard]), y[shard])
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return _flat(self.ddp.module)

    def where(self) -> str:
        return ray.get_runtime_context().get_placement_group_id() or ""


class Cursed:
    """No model (so no DDP start-up cost): one rank raises while the others all-reduce."""

    def __init__(self, rank: int, world_size: int, bad_rank: int) -> None:
        self.rank, self.bad_rank = rank, bad_rank

    def fail(self) -> float:
        if self.rank == self.bad_rank:
            raise ValueError(f"cursed rank {self.bad_rank}")
        t = torch.ones(1)
        dist.all_reduce(t)  # waits for the bad rank, which never comes
        return float(t)

    def die(self) -> None:
        os._exit(3)


def _single_process_step(seed: int, lr: float, batch_seed: int) -> torch.Tensor:
    model = _toy_model(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    x, y = _toy_batch(batch_seed)
    nn.functional.mse_loss(model(x), y).backward()
    opt.step()
    return _flat(model)


def ddp_trial(config: dict) -> None:
    """A Tune function trial coordinating WORLD workers, reporting once per epoch."""
    from ray import tune

    pg = ray.util.get_current_placement_group()
    with WorkerGroup(num_workers(config["resources"])) as group:
        group.setup(Replica, config["seed"], config["lr"])
        placed = group.call("where")
        for epoch in range(1, config["epochs"] + 1):
            params = group.call("step", epoch)
            tune.report(
                {
                    "epoch": epoch,
                    "replicas_equal": all(torch.equal(params[0], p) for p in params),
                    "in_trial_group": pg is not None and set(placed) == {pg.id.hex()},
                    "param_sum": float(params[0].sum()),
                }
            )


# --------------------------------------------------------------------------- placement


def test_placement_splits_cpus_and_gives_each_worker_one_gpu() -> None:
    cpu_pg = placement({"cpu": 2, "workers": 2})
    assert cpu_pg.head_bundle_is_empty and cpu_pg.bundles == [{"CPU": 1.0}] * 2
    gpu_pg = placement({"cpu": 8, "gpu": 4})
    assert gpu_pg.bundles == [{"CPU": 2.0, "GPU": 1.0}] * 4
    assert placement({"gpu": 2, "workers": 2}).bundles == [{"GPU": 1.0}] * 2
    assert placement({"cpu": 1, "gpu": 0.5}) == {"cpu": 1, "gpu": 0.5}
    assert placement({"cpu": 2, "workers": 1, "memory": 1e9}) == {"cpu": 2, "memory": 1e9}
    counts = [num_workers(r) for r in ({"cpu": 4}, {"gpu": 1}, {"gpu": 3}, {"workers": 5.0})]
    assert counts == [1, 1, 3, 5]


@pytest.mark.parametrize(
    ("resources", "fix"),
    [
        ({"cpu": 2, "workers": 0}, "use 1 (or leave it out)"),
        ({"cpu": 2, "workers": 1.5}, "positive integer"),
        ({"cpu": 2, "workers": True}, "positive integer"),
        ({"gpu": 0.5, "workers": 2}, "set gpu=2"),
        ({"gpu": 3, "workers": 2}, "set gpu=2"),
        ({"gpu": 2.5}, "use a whole number"),
        ({"gpu": -1}, "must be a number >= 0"),
        ({"workers": 2}, "give resources_per_trial['cpu'] >= 2"),
        ({"cpu": 2, "workers": 2, "memory": 1e9}, "use only ['cpu', 'gpu', 'workers']"),
    ],
)
def test_placement_rejects_what_cannot_be_split(resources: dict, fix: str) -> None:
    with pytest.raises(ValueError) as info:
        placement(resources)
    assert fix in str(info.value)


def test_worker_group_needs_ray_and_a_positive_count() -> None:
    with pytest.raises(ValueError, match="positive integer"):
        WorkerGroup(0)
    if not ray.is_initialized():
        with pytest.raises(RuntimeError, match=r"ray\.init\(\)"):
            WorkerGroup(2)


# --------------------------------------------------------------------------- on Ray


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_gloo_all_reduce_and_ddp_step_match_single_process() -> None:
    seed, lr = 3, 0.5
    with WorkerGroup(WORLD) as group:
        with pytest.raises(RuntimeError, match="call setup first"):
            group.call("all_reduce", 1.0)
        group.setup(Replica, seed, lr)
        assert group.backend == "gloo" and not group.use_gpu
        assert group.call("all_reduce", 2.0) == [6.0, 6.0]  # 2*1 + 2*2 on each rank
        params = group.call("step", 0)
    assert torch.equal(params[0], params[1]), "replicas drifted apart"
    expected = _single_process_step(seed, lr, 0)
    assert not torch.allclose(expected, _flat(_toy_model(seed))), "the step moved nothing"
    torch.testing.assert_close(params[0], expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(RuntimeError, match="shut down"):
        group.call("all_reduce", 1.0)


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_worker_exception_surfaces_with_its_message() -> None:
    group = WorkerGroup(WORLD)
    group.setup(Cursed, 1)
    start = time.perf_counter()
    with pytest.raises(ValueError, match="cursed rank 1") as info:
        group.call("fail")
    assert time.perf_counter() - start < 10, "a rank stuck in all_reduce held up the error"
    assert "in fail" in str(info.value.__cause__), "the worker's traceback is chained"
    with pytest.raises(RuntimeError, match="shut down"):
        group.call("all_reduce", 1.0)
    group.shutdown()  # idempotent
    deadline = time.monotonic() + 20
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0) == 2, "the workers' CPUs were not released"


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_worker_death_is_a_worker_error() -> None:
    group = WorkerGroup(1)
    group.setup(Cursed, 1)
    with pytest.raises(WorkerError, match="Worker 0 of 1 died"):
        group.call("die")
    with pytest.raises(RuntimeError, match="shut down"):
        group.call("fail")


@ray.remote
def _coordinator(n: int, use_gpu: bool | None) -> str:
    try:
        WorkerGroup(n, use_gpu=use_gpu)
    except ValueError as e:
        return str(e)
    return "no error"


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_group_refuses_a_placement_group_without_worker_bundles() -> None:
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    pg = ray.util.placement_group([{"CPU": 1}])
    try:
        strategy = PlacementGroupSchedulingStrategy(pg, placement_group_capture_child_tasks=True)
        cases = [(2, None, 1), (1, None, 1), (1, True, 0)]  # workers, use_gpu, caller's CPUs
        messages = ray.get(
            [
                _coordinator.options(scheduling_strategy=strategy, num_cpus=cpus).remote(n, gpu)
                for n, gpu, cpus in cases
            ],
            timeout=60,
        )
    finally:
        ray.util.remove_placement_group(pg)
    assert "no room for 2 workers" in messages[0]
    assert "no room for 1 workers beside the caller" in messages[1]
    assert "placement(resources_per_trial)" in messages[1]
    assert "use_gpu needs a whole GPU per worker" in messages[2]


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_ddp_inside_a_tune_trial_reports_every_epoch(tmp_path: Path) -> None:
    from ray import tune

    resources = {"cpu": 2, "workers": WORLD}
    config = {"resources": resources, "seed": 1, "lr": 0.1, "epochs": 3}
    tuner = tune.Tuner(
        tune.with_resources(ddp_trial, placement(resources)),
        param_space=config,
        tune_config=tune.TuneConfig(num_samples=1),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="ddp", verbose=0),
    )
    start = time.perf_counter()
    results = tuner.fit()
    seconds = time.perf_counter() - start
    print(f"DDP Tune trial: {seconds:.1f}s")
    assert not results.errors, results.errors
    metrics = results[0].metrics
    assert metrics is not None and metrics["epoch"] == 3
    assert metrics["replicas_equal"] and metrics["in_trial_group"]
    history = results[0].metrics_dataframe
    assert history["epoch"].tolist() == [1, 2, 3]
    assert history["param_sum"].nunique() == 3, "every epoch took a step"
    assert seconds < 60, "as slow as Ray Train inside a trial was (minutes)"
