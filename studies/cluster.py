"""Checks of the Ray cluster a run is about to use, made before anything is written.

Ray Tune accepts any resource request and any run directory, then waits: a trial that
asks for a GPU on a cluster without one stays PENDING forever, and on a cluster of
several hosts a run directory on one host's local disk loses the checkpoints a restart
on another host needs (since Ray 2.7 the workers write checkpoints to ``storage_path``
themselves, and restore from it: it must be shared storage, an NFS path or a
``s3://``-style URI through pyarrow). Two checks, once Ray is up:

- :func:`check_resources`: every bundle of a trial's placement fits on some alive node,
  and the trial fits the cluster as a whole. An autoscaling cluster may add nodes that
  are not there yet: set ``ARCHTUNE_NO_RESOURCE_CHECK=1`` to skip the check there.
- :func:`check_run_dir`: with more than one alive node, a small task pinned to each
  node looks for a file the driver just wrote into the run directory; a node that cannot
  see it refuses the run. URIs (``s3://``, ``gs://``, ...) are left to pyarrow.

The pure parts (:func:`unplaceable`, :func:`unreachable`) take plain data, so they are
tested without a cluster.

Example:
    >>> unplaceable([{"CPU": 1.0, "GPU": 1.0}], [{"CPU": 2.0}])
    'no node has 1 GPU (the largest has 0 GPUs)'
    >>> unplaceable([{"CPU": 1.0}], [{"CPU": 2.0}]) is None
    True
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

NO_CHECK_ENV = "ARCHTUNE_NO_RESOURCE_CHECK"
REACH_TIMEOUT_S = 60.0  # for every node to answer whether it sees the run directory

_RAY_NAMES = {"cpu": "CPU", "gpu": "GPU", "memory": "memory"}


class ClusterMismatch(ValueError):
    """The cluster can never run the trials as asked (resources, shared storage)."""


def is_uri(path: str) -> bool:
    """Whether a run directory is a storage URI (``s3://...``) rather than a path.

    Example:
        >>> is_uri("s3://bucket/runs"), is_uri("/mnt/nfs/runs"), is_uri("C:/runs")
        (True, False, False)
    """
    scheme, sep, _ = path.partition("://")
    return bool(sep) and scheme.isalnum() and len(scheme) > 1


def trial_bundles(resources: Mapping[str, Any]) -> list[dict[str, float]]:
    """The resource bundles (Ray's names: ``CPU``, ``GPU``, ...) one trial holds.

    Example:
        >>> trial_bundles({"cpu": 2, "gpu": 0})
        [{'CPU': 2.0}]
        >>> trial_bundles({"cpu": 2, "workers": 2})
        [{'CPU': 1.0}, {'CPU': 1.0}]
    """
    from trainers.distributed import placement

    placed = placement(dict(resources))
    if isinstance(placed, dict):
        bundle = {_RAY_NAMES.get(k, k): float(v) for k, v in placed.items()}
        return [{k: v for k, v in bundle.items() if v > 0}]
    return [dict(b) for b in placed.bundles if b]


def _amount(key: str, value: float) -> str:
    return f"{value:g} {key}" if key in ("CPU", "GPU") else f"{value:g} of {key!r}"


def unplaceable(
    bundles: Sequence[Mapping[str, float]], nodes: Sequence[Mapping[str, float]]
) -> str | None:
    """Why a trial of these bundles can never be placed on these nodes, or None.

    Args:
        bundles: What one trial holds (:func:`trial_bundles`).
        nodes: Each alive node's total resources (Ray's ``Resources`` of ``ray.nodes()``).
    """
    for bundle in bundles:
        if any(all(node.get(k, 0.0) >= v for k, v in bundle.items()) for node in nodes):
            continue
        for key, value in bundle.items():
            largest = max((node.get(key, 0.0) for node in nodes), default=0.0)
            if largest < value:
                unit = f"{largest:g} {key}s" if key in ("CPU", "GPU") else f"{largest:g}"
                return f"no node has {_amount(key, value)} (the largest has {unit})"
        return f"no single node has all of {dict(bundle)}"
    for key in {k for b in bundles for k in b}:
        need = sum(b.get(key, 0.0) for b in bundles)
        have = sum(node.get(key, 0.0) for node in nodes)
        if need > have:
            return f"the trial needs {_amount(key, need)} in all; the cluster has {have:g}"
    return None


def check_cluster(resources: Mapping[str, Any], run_dir: str) -> None:
    """:func:`check_resources`, then :func:`check_run_dir`: what a run checks once Ray is up."""
    check_resources(resources)
    check_run_dir(run_dir)


def check_resources(resources: Mapping[str, Any]) -> None:
    """Refuse, before the run, a trial the connected cluster can never place.

    Raises:
        ClusterMismatch: with what is missing and how to fix it.
    """
    import ray

    if os.environ.get(NO_CHECK_ENV):
        return
    nodes = [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")]
    reason = unplaceable(trial_bundles(resources), nodes)
    if reason is None:
        return
    shown = {k: v for k, v in resources.items()}
    raise ClusterMismatch(
        f"resources_per_trial={shown} can never be met: {reason} on this Ray cluster "
        f"({len(nodes)} node(s)). Lower resources_per_trial (--resources), or run on a "
        f"cluster that has them; if the cluster autoscales and will add such nodes, set "
        f"{NO_CHECK_ENV}=1."
    )


def unreachable(answers: Mapping[str, bool | None]) -> list[str]:
    """The nodes (by name) that could not see the run directory, or did not answer.

    Example:
        >>> unreachable({"head (10.0.0.1)": True, "w1 (10.0.0.2)": False, "w2": None})
        ['w1 (10.0.0.2)', 'w2']
    """
    return sorted(name for name, seen in answers.items() if not seen)


def _sees(path: str) -> tuple[str, bool]:
    import ray

    where = f"{socket.gethostname()} ({ray.util.get_node_ip_address()})"
    return where, os.path.exists(path)


def check_run_dir(run_dir: str) -> None:
    """Refuse a run directory that some node of a multi-node cluster cannot reach.

    Writes a marker file into ``run_dir`` (made if missing) and asks a task pinned to
    each alive node whether it sees it. One node, or a URI, is not checked.

    Raises:
        ClusterMismatch: naming the nodes, with how to set shared storage.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if is_uri(run_dir):
        return
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) < 2:
        return
    os.makedirs(run_dir, exist_ok=True)
    marker = os.path.join(run_dir, f".archtune-reach-{uuid.uuid4().hex}")
    with open(marker, "w") as f:
        f.write("archtune: can every node of the cluster see this file?\n")
    try:
        sees = ray.remote(num_cpus=0, max_retries=0)(_sees)
        pending = {
            n["NodeManagerAddress"]: sees.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            ).remote(marker)
            for n in nodes
        }
        refs = list(pending.values())
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=REACH_TIMEOUT_S)
        answers: dict[str, bool | None] = {}
        for address, ref in pending.items():
            if ref in ready:
                try:
                    where, seen = ray.get(ref)
                except Exception:  # a node that died meanwhile: Ray routes around it
                    continue
                answers[where] = seen
            else:
                answers[address] = None
    finally:
        os.remove(marker)
    missing = unreachable(answers)
    if missing:
        raise ClusterMismatch(
            f"The run directory {run_dir!r} is not reachable from every node of the Ray "
            f"cluster ({', '.join(missing)} cannot see it). Since Ray 2.7 trials write "
            "their checkpoints there and restore from it on any node: give a run_dir "
            "(--run-dir, or run_dir= in the study file) on storage every node mounts at "
            "the same path (NFS), or a URI "
            "such as s3://bucket/archtune_runs (pyarrow's file systems)."
        )
