"""Data-parallel workers for one trial: N ``torch.distributed`` processes as Ray actors.

A Ray Tune function trial (the *coordinator*) starts a :class:`WorkerGroup`; each worker
is a Ray actor that joins one ``torch.distributed`` process group (NCCL on GPUs, gloo on
CPUs), builds its state with a factory and runs the coordinator's calls in lock-step. The
coordinator reports to Tune itself, so metrics reach the ``ResultGrid`` like those of any
function trial. :func:`placement` turns ``resources_per_trial`` into the trial's placement
group: an empty coordinator bundle plus one bundle per worker; :class:`WorkerGroup` puts
its actors into those bundles. Nothing here knows about archtune's trainers.

Why not Ray Train inside the trial: on Ray 2.60 (Train V2 on by default) a
``TorchTrainer`` launched in a Tune function trial took minutes to start on a 2-core
machine and its ``Result.metrics`` came back ``None`` (archtune issue 5). Plain actors in
the trial's own placement group start in seconds and leave reporting to Tune.

``resources_per_trial`` keys (totals for the whole trial, as elsewhere in archtune):

* ``gpu``: GPUs; ``gpu >= 2`` means that many workers, one GPU each (NCCL).
* ``workers``: the number of data-parallel workers. Needed for CPU-only workers
  (``{"cpu": 2, "workers": 2}``: two gloo workers of one CPU each); with GPUs it may be
  left out, and if given must equal ``gpu``.
* ``cpu``: CPUs, split evenly over the workers; the coordinator holds none.

Contract: make the group, :meth:`~WorkerGroup.setup` once, then any number of
:meth:`~WorkerGroup.call`; :meth:`~WorkerGroup.shutdown` (or leave the ``with`` block).
Calls block the coordinator and are not thread-safe. A worker's error or death ends the
whole group (the other ranks may be stuck in a collective). The actors are owned by the process
that made the group and die with it.

Reference:
    Li, S., Zhao, Y., Varma, R., et al. PyTorch Distributed: Experiences on Accelerating
    Data Parallel Training. PVLDB 13(12), 2020.

Example:
    >>> num_workers({"cpu": 2, "workers": 2}), num_workers({"gpu": 4}), num_workers({"cpu": 1})
    (2, 4, 1)
    >>> placement({"cpu": 2, "workers": 2}).bundles
    [{'CPU': 1.0}, {'CPU': 1.0}]
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import ray

if TYPE_CHECKING:
    from ray import tune

__all__ = [
    "WORKERS_KEY",
    "WorkerDied",
    "WorkerError",
    "WorkerGroup",
    "num_workers",
    "placement",
]

WORKERS_KEY = "workers"
_GROUP_KEYS = ("cpu", "gpu", WORKERS_KEY)


def _count(resources: dict[str, Any], key: str) -> float:
    value = resources.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"resources_per_trial[{key!r}] must be a number >= 0, got {value!r}.")
    return float(value)


def num_workers(resources_per_trial: dict[str, Any]) -> int:
    """How many data-parallel workers a trial with these resources runs (1: no group).

    Args:
        resources_per_trial: The trial's totals; see the module docstring for the keys.

    Raises:
        ValueError: With how to fix it, for a worker count or GPU count that cannot be
            split into whole-GPU workers.
    """
    gpu = _count(resources_per_trial, "gpu")
    if WORKERS_KEY in resources_per_trial:
        n = resources_per_trial[WORKERS_KEY]
        if isinstance(n, float) and n.is_integer():
            n = int(n)  # as read back from JSON by some clients
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(
                f"resources_per_trial['workers'] must be a positive integer, got {n!r}; "
                "use 1 (or leave it out) for a single-process trial."
            )
    else:
        n = int(gpu) if gpu >= 1 and gpu == int(gpu) else 1
    if n > 1 and gpu > 0 and gpu != n:
        raise ValueError(
            f"{n} data-parallel workers need one whole GPU each, but the trial asks for "
            f"gpu={gpu:g}; set gpu={n} (or drop 'workers' and give gpu=N for N workers), "
            "or use workers=1 to share a fraction of a GPU in one process."
        )
    if gpu > 1 and gpu != int(gpu):
        raise ValueError(
            f"gpu={gpu:g} cannot be split into data-parallel workers of one GPU each; "
            "use a whole number (one worker per GPU) or at most 1 for a single process."
        )
    return n


def placement(resources_per_trial: dict[str, Any]) -> tune.PlacementGroupFactory | dict:
    """What to pass to ``tune.with_resources`` for a trial with these resources.

    A single-process trial gets its dict back (without ``workers``). A trial of N > 1
    workers gets a placement group of an empty coordinator bundle (Tune drops it, so the
    coordinator holds no resources) and N worker bundles of ``cpu / N`` CPUs and, with
    GPUs, one GPU each. The ``workers`` key must never reach Tune in a plain dict: Tune
    would read it as a custom resource that no node has, and the trial would wait forever.

    Args:
        resources_per_trial: The trial's totals; see the module docstring for the keys.

    Returns:
        A ``tune.PlacementGroupFactory`` for N > 1 workers, else a resource dict.

    Raises:
        ValueError: With how to fix it, for counts that cannot be split into workers, or
            keys other than cpu, gpu and workers in a multi-worker trial.

    Example:
        >>> placement({"cpu": 1, "gpu": 2}).bundles
        [{'CPU': 0.5, 'GPU': 1.0}, {'CPU': 0.5, 'GPU': 1.0}]
        >>> placement({"cpu": 2, "workers": 1})
        {'cpu': 2}
    """
    n = num_workers(resources_per_trial)
    if n == 1:
        return {k: v for k, v in resources_per_trial.items() if k != WORKERS_KEY}
    unknown = sorted(set(resources_per_trial) - set(_GROUP_KEYS))
    if unknown:
        raise ValueError(
            f"resources_per_trial keys {unknown} are not supported with {n} workers; "
            f"use only {list(_GROUP_KEYS)}."
        )
    cpu = _count(resources_per_trial, "cpu")
    gpu = _count(resources_per_trial, "gpu")
    if cpu == 0 and gpu == 0:
        raise ValueError(
            f"{n} CPU workers need CPUs; give resources_per_trial['cpu'] >= {n} "
            "(split evenly over the workers)."
        )
    worker: dict[str, float] = {}
    if cpu:
        worker["CPU"] = cpu / n
    if gpu:
        worker["GPU"] = 1.0
    from ray import tune

    return tune.PlacementGroupFactory([{}] + [dict(worker) for _ in range(n)])


class WorkerError(RuntimeError):
    """A worker died, or raised an exception that could not be brought back as itself."""


class WorkerDied(WorkerError):
    """A worker's process died (a lost node, a killed process): worth a retry."""


class _Worker:
    """One rank: joins the process group, holds the factory's state, runs its methods."""

    def __init__(self) -> None:
        self._state: Any = None

    def address(self) -> tuple[str, int]:
        """This node's IP and a port that is free on it (for rank 0's rendezvous)."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return ray.util.get_node_ip_address(), port

    def init(
        self,
        rank: int,
        world_size: int,
        backend: str,
        master: tuple[str, int],
        use_gpu: bool,
        threads: int,
        timeout_s: float,
    ) -> None:
        import torch
        import torch.distributed as dist

        os.environ.update(
            MASTER_ADDR=master[0],
            MASTER_PORT=str(master[1]),
            RANK=str(rank),
            WORLD_SIZE=str(world_size),
            LOCAL_RANK="0",  # Ray shows each worker only its own GPU
        )
        torch.set_num_threads(threads)
        if use_gpu:
            torch.cuda.set_device(0)
        dist.init_process_group(
            backend,
            init_method="env://",
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=timeout_s),
        )

    def setup(self, factory: Callable[..., Any], args: tuple[Any, ...]) -> None:
        import torch.distributed as dist

        self._state = factory(dist.get_rank(), dist.get_world_size(), *args)

    def call(self, method: str, args: tuple[Any, ...]) -> Any:
        return getattr(self._state, method)(*args)

    def close(self) -> None:
        import torch.distributed as dist

        self._state = None
        if dist.is_initialized():
            dist.destroy_process_group()


_RemoteWorker = ray.remote(_Worker)


class WorkerGroup:
    """N ``torch.distributed`` workers as Ray actors, driven from the calling process.

    Inside a placement group (a Tune trial launched with :func:`placement`) the workers
    take the group's last ``num_workers`` bundles, with exactly their resources, so they
    never wait for resources the trial does not hold; ``cpus_per_worker`` is then unused.
    Outside any placement group (a driver or task with Ray initialised) they are
    scheduled normally with ``cpus_per_worker`` CPUs and, with ``use_gpu``, one GPU each.

    Args:
        num_workers: World size, at least 1.
        use_gpu: One GPU per worker (CUDA device 0 of what Ray shows it). ``None``: yes if
            the worker bundles hold GPUs; outside a placement group, no.
        backend: ``torch.distributed`` backend; ``None``: ``"nccl"`` with GPUs, else
            ``"gloo"``.
        cpus_per_worker: CPUs per worker outside a placement group; also sets PyTorch's
            intra-op threads (at least 1) there.
        start_timeout_s: How long to wait for the workers to be placed and to join.
        timeout_s: ``torch.distributed`` timeout for the rendezvous and collectives.

    Raises:
        ValueError: For bad arguments, or a placement group without room for the workers.
        TimeoutError: If the workers are not running after ``start_timeout_s``.

    Example:
        >>> with WorkerGroup(2) as group:  # doctest: +SKIP
        ...     group.setup(MyReplica, 0.1)  # MyReplica(rank, world_size, lr) on each
        ...     losses = group.call("train_epoch", 1)  # one result per rank
    """

    def __init__(
        self,
        num_workers: int,
        *,
        use_gpu: bool | None = None,
        backend: str | None = None,
        cpus_per_worker: float = 1.0,
        start_timeout_s: float = 120.0,
        timeout_s: float = 600.0,
    ) -> None:
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
            raise ValueError(f"num_workers must be a positive integer, got {num_workers!r}.")
        if not cpus_per_worker >= 0:
            raise ValueError(f"cpus_per_worker must be >= 0, got {cpus_per_worker!r}.")
        if not ray.is_initialized():
            raise RuntimeError(
                "WorkerGroup needs Ray: call ray.init() first, or run inside a Ray Tune trial."
            )
        self.num_workers = num_workers
        self._set_up = False
        options, gpu = self._placement_options(num_workers, use_gpu, cpus_per_worker)
        self.use_gpu = gpu
        self.backend = backend or ("nccl" if gpu else "gloo")
        self._actors: list[Any] = [_RemoteWorker.options(**o).remote() for o, _ in options]
        try:
            master = self._gather([self._actors[0].address.remote()], start_timeout_s)[0]
            joins = [
                a.init.remote(rank, num_workers, self.backend, master, gpu, threads, timeout_s)
                for rank, (a, (_, threads)) in enumerate(zip(self._actors, options, strict=True))
            ]
            self._gather(joins, start_timeout_s)
        except TimeoutError as e:
            self._kill()
            raise TimeoutError(
                f"{num_workers} workers did not start within {start_timeout_s:g}s; the "
                f"cluster may lack their resources ({options[0][0]}). In a Tune trial, "
                "launch it with tune.with_resources(trainable, placement(resources))."
            ) from e
        except BaseException:
            self._kill()
            raise

    @staticmethod
    def _placement_options(
        n: int, use_gpu: bool | None, cpus_per_worker: float
    ) -> tuple[list[tuple[dict[str, Any], int]], bool]:
        """Per rank, the actor's options and its PyTorch threads; and whether it uses a GPU."""
        from ray.util.placement_group import get_current_placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        pg = get_current_placement_group()
        if pg is None:
            gpu = bool(use_gpu)
            res = {"num_cpus": cpus_per_worker, "num_gpus": 1 if gpu else 0}
            threads = max(1, math.floor(cpus_per_worker))
            return [(dict(res), threads) for _ in range(n)], gpu
        bundles = pg.bundle_specs
        held = ray.get_runtime_context().get_assigned_resources()
        first = len(bundles) - n
        if first < 0 or (first == 0 and any(held.get(k, 0) > 0 for k in ("CPU", "GPU"))):
            raise ValueError(
                f"The current placement group has {len(bundles)} bundles {bundles}, no room "
                f"for {n} workers beside the caller; launch the trial with "
                "tune.with_resources(trainable, placement(resources_per_trial))."
            )
        gpu = use_gpu if use_gpu is not None else bundles[first].get("GPU", 0) > 0
        options = []
        for i in range(first, first + n):
            cpus, gpus = bundles[i].get("CPU", 0.0), bundles[i].get("GPU", 0.0)
            if gpu and gpus < 1:
                raise ValueError(
                    f"use_gpu needs a whole GPU per worker, but bundle {i} is {bundles[i]}; "
                    "give the trial gpu=N for N workers."
                )
            res = {"num_cpus": cpus, "num_gpus": gpus}
            strategy = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=i)
            threads = max(1, math.floor(cpus))
            options.append(({**res, "scheduling_strategy": strategy}, threads))
        return options, gpu

    def setup(self, factory: Callable[..., Any], *args: Any) -> None:
        """On each worker, ``state = factory(rank, world_size, *args)``, kept for :meth:`call`.

        ``factory`` must be picklable (a module-level class or function); ``args`` are put
        in the object store once and shared by all workers. With GPUs, the worker's device
        is ``torch.device("cuda", 0)`` (already current); the factory moves its model there.
        """
        self._check_running()
        shared = ray.put(args)
        self._gather([a.setup.remote(factory, shared) for a in self._actors])
        self._set_up = True

    def call(self, method: str, *args: Any) -> list[Any]:
        """``state.method(*args)`` on every worker at once; the results, by rank.

        If a worker raises, the group is shut down (the others may be stuck in a
        collective) and its exception is raised here with its own type and message,
        chained to the Ray error that holds the worker's traceback.
        """
        self._check_running()
        if not self._set_up:
            raise RuntimeError("WorkerGroup.call before WorkerGroup.setup; call setup first.")
        shared = ray.put(args)
        return self._gather([a.call.remote(method, shared) for a in self._actors])

    def _gather(self, refs: Sequence[Any], timeout_s: float | None = None) -> list[Any]:
        """The results of one call per rank; on the first failure, kill all and raise."""
        rank_of = {ref: rank for rank, ref in enumerate(refs)}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=timeout_s)
            if not done:
                raise TimeoutError(f"No answer from {len(pending)} workers in {timeout_s:g}s.")
            try:
                ray.get(done[0])
            except ray.exceptions.RayTaskError as e:
                self._kill()
                cause = getattr(e, "cause", None)
                if isinstance(cause, Exception):
                    raise cause from e
                raise WorkerError(f"Worker {rank_of[done[0]]} failed: {e}") from e
            except ray.exceptions.RayError as e:
                self._kill()
                raise WorkerDied(
                    f"Worker {rank_of[done[0]]} of {len(refs)} died: {type(e).__name__}: {e}"
                ) from e
        return ray.get(list(refs))

    def _check_running(self) -> None:
        if not self._actors:
            raise RuntimeError("This WorkerGroup is shut down; make a new one.")

    def _kill(self) -> None:
        for actor in self._actors:
            ray.kill(actor, no_restart=True)
        self._actors = []

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Leave the process group on every worker, then end the actors; idempotent."""
        if not self._actors:
            return
        try:
            ray.get([a.close.remote() for a in self._actors], timeout=timeout_s)
        except ray.exceptions.RayError:
            pass  # a worker stuck or dead: the kill below ends it
        finally:
            self._kill()

    def __enter__(self) -> WorkerGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
