"""Runs on a real multi-node Ray cluster (``ray.cluster_utils.Cluster``: a head and two
worker nodes of one CPU, in processes of their own), and the checks made before a run.

The cluster lives in a helper process; ``archtune run --address`` joins it as users do.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import optuna
import psutil
import pytest
from optuna.trial import TrialState

from studies.cluster import is_uri, trial_bundles, unplaceable, unreachable
from studies.records import load_study_record
from studies.storage import open_storage

ROOT = Path(__file__).resolve().parents[2]

# The helper process: start the cluster, print its address, then obey stdin
# ("remove": remove the first worker node; anything else or EOF: shut down).
CLUSTER = textwrap.dedent(
    """
    import sys
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    print(cluster.address, flush=True)
    for line in sys.stdin:
        if line.strip() != "remove":
            break
        cluster.remove_node(workers.pop(0))
        print("removed", flush=True)
    cluster.shutdown()
    """
)

STUDY = textwrap.dedent(
    """
    from spaces import Float, SearchSpace
    from studies import Experiment
    from tests.studies.toy import CheckpointingTrainer

    experiment = Experiment(
        name="cluster",
        space=SearchSpace({"x": Float(0.0, 1.0)}),
        objective="score",
        trainer=CheckpointingTrainer(@LOG@, epochs=3, seconds=0.2),
        controller="random",
        seed=0,
        num_trials=2,
        max_concurrent=2,
        max_retries=2,
        storage=@DB@,
        run_dir=@RUNS@,
    )
    """
)


def _env(ray_tmp: Path) -> dict[str, str]:
    """The helper processes' environment: the repository importable, and Ray's files (the
    cluster's record of itself among them) in a directory of the test's own, so no
    other run on the machine sees the test's cluster, even one killed before it cleans up."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_TMPDIR": str(ray_tmp)}
    env.pop("RAY_ADDRESS", None)
    return env


def _stop(process: subprocess.Popen) -> None:
    """Stop a helper process and everything it started (Ray's raylets and workers)."""
    if process.poll() is None:
        family = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        for child in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


def _wait(check, what: str, timeout: float, *processes: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in processes:
            assert p.poll() is None, f"{p.args} exited while waiting for {what}"
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _epochs_logged(log: Path) -> dict[str, list[str]]:
    lines = log.read_text().split("\n") if log.exists() else []
    out: dict[str, list[str]] = {}
    for kind, x, n in (ln.split() for ln in lines if ln):
        out.setdefault(x, []).append(f"{kind} {n}")
    return out


@pytest.mark.slow
def test_trials_run_on_several_nodes_and_a_lost_node_restart_is_recorded(
    tmp_path: Path,
) -> None:
    # Short: Ray's socket paths live under it (AF_UNIX paths are limited to 107 bytes).
    ray_tmp = Path(tempfile.mkdtemp(prefix="atc-", dir="/tmp"))
    cluster = subprocess.Popen(
        [sys.executable, "-c", CLUSTER],
        env=_env(ray_tmp),
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    driver = None
    try:
        address = cluster.stdout.readline().strip()
        assert address, "the cluster did not start"
        (tmp_path / "hold").touch()  # no trial trains past its first epoch until removed
        url = f"sqlite:///{tmp_path / 'cluster.db'}"
        text = STUDY.replace("@LOG@", repr(str(tmp_path))).replace("@DB@", repr(url))
        (tmp_path / "study.py").write_text(text.replace("@RUNS@", repr(str(tmp_path / "runs"))))
        driver = subprocess.Popen(
            [sys.executable, "-m", "studies.cli", "run", "study.py", "--address", address],
            env=_env(ray_tmp),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        log = tmp_path / "log"
        # Both trials hold at their first epoch, checkpointed, one on each worker node.
        _wait(
            lambda: sum("epoch 1" in v for v in _epochs_logged(log).values()) == 2,
            "two trials at their first epoch",
            240,
            cluster,
            driver,
        )
        time.sleep(1.0)  # the epoch-1 checkpoints reach the run directory
        cluster.stdin.write("remove\n")
        cluster.stdin.flush()
        assert cluster.stdout.readline().strip() == "removed"
        (tmp_path / "hold").unlink()
        _, err = driver.communicate(timeout=300)
        assert driver.returncode == 0, err[-3000:]
    finally:
        if driver is not None:
            _stop(driver)
        with contextlib.suppress(OSError):
            cluster.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            cluster.wait(timeout=60)
        _stop(cluster)
        shutil.rmtree(ray_tmp, ignore_errors=True)

    trials = optuna.load_study(study_name="cluster", storage=url).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2, "none lost to the node"
    record = load_study_record(open_storage(url), "cluster")
    restarted = [t for t in record.trials if t.restarts]
    assert len(restarted) == 1, "the trial of the removed node was restarted once"
    (entry,) = restarted[0].restarts
    (other,) = [t for t in record.trials if not t.restarts]
    assert entry["epoch"] == 1 and "node" in entry["error"], entry
    # The two trials started on the two worker nodes; the lost one's went on where the
    # other ran, so both end recorded on the surviving node.
    assert None not in (entry["node"], other.node) and entry["node"] != other.node
    assert restarted[0].node == other.node
    # It went on from its epoch-1 checkpoint, not from scratch.
    x = repr(float(restarted[0].params["x"]))
    assert _epochs_logged(log)[x] == ["start 0", "epoch 1", "start 1", "epoch 2", "epoch 3"]


def test_resource_requests_a_cluster_can_never_meet_are_named() -> None:
    nodes = [{"CPU": 2.0, "memory": 1e9}, {"CPU": 4.0, "GPU": 1.0}]
    assert unplaceable(trial_bundles({"cpu": 1, "gpu": 1}), nodes) is None
    assert unplaceable(trial_bundles({"cpu": 4}), nodes) is None
    assert unplaceable(trial_bundles({"cpu": 8}), nodes) == (
        "no node has 8 CPU (the largest has 4 CPUs)"
    )
    assert unplaceable(trial_bundles({"cpu": 1, "gpu": 1}), nodes[:1]) == (
        "no node has 1 GPU (the largest has 0 GPUs)"
    )
    # Two one-GPU workers: each bundle fits the GPU node, the cluster holds only one.
    assert unplaceable(trial_bundles({"cpu": 2, "gpu": 2}), nodes) == (
        "the trial needs 2 GPU in all; the cluster has 1"
    )
    # Each resource exists, but never together on one node.
    assert unplaceable([{"GPU": 1.0, "memory": 1.0}], nodes) == (
        "no single node has all of {'GPU': 1.0, 'memory': 1.0}"
    )
    assert unplaceable(trial_bundles({"cpu": 1, "tpu_slice": 1}), nodes) == (
        "no node has 1 of 'tpu_slice' (the largest has 0)"
    )


def test_nodes_that_cannot_see_the_run_directory_are_named() -> None:
    assert unreachable({"a": True, "b": True}) == []
    assert unreachable({"a": True, "b": False, "c": None}) == ["b", "c"]
    assert is_uri("s3://bucket/x") and is_uri("gs://b") and not is_uri("/nfs/runs")


@pytest.mark.usefixtures("ray_session")
def test_a_run_the_cluster_can_never_carry_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    from spaces import Float, SearchSpace
    from studies import Experiment, Study
    from studies.cluster import ClusterMismatch
    from studies.records import ATTR_RUN
    from tests.studies.toy import ToyTrainer

    url = f"sqlite:///{tmp_path / 'refused.db'}"
    space = SearchSpace({"x": Float(0.0, 1.0)})
    experiment = Experiment(
        name="gpu-wanted",
        space=space,
        objective="score",
        trainer=ToyTrainer(),
        num_trials=2,
        resources_per_trial={"cpu": 1, "gpu": 1},
        storage=url,
    )
    # The session's Ray has 2 CPUs and no GPU.
    with pytest.raises(ClusterMismatch, match=r"no node has 1 GPU \(the largest has 0 GPUs\)"):
        experiment.run(progress=False)
    assert optuna.get_all_study_names(url) == [], "no empty study left behind"

    study = Study.create("exists", space=space, objective="score", storage=url)
    with pytest.raises(ClusterMismatch, match="ARCHTUNE_NO_RESOURCE_CHECK"):
        study.run(ToyTrainer(), "random", num_trials=2, resources_per_trial={"gpu": 1})
    again = optuna.load_study(study_name="exists", storage=url)
    assert again.trials == [] and ATTR_RUN not in again.user_attrs, "the run was not recorded"
    # The refused run held the study only while it checked: a corrected one runs.
    study.run(ToyTrainer(), "random", num_trials=1, progress=False)
    assert [t.state for t in optuna.load_study(study_name="exists", storage=url).trials] == [
        TrialState.COMPLETE
    ]
