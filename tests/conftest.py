"""Shared fixtures: one real Ray instance for the whole session, and a scratch database."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# One intra-op thread for PyTorch in the test process: in-process trainings run beside
# Ray's trial workers on 2 cores, and two spinning OpenMP threads on a busy core made a
# 3-epoch digits run 10x slower (56 s against 5.7 s). Trials set their own CPU share.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """A local Ray instance with the machine's 2 CPUs, started once and shut down at the end.

    Workers get the repository on their path so that trainers defined under ``tests/``
    unpickle there.
    """
    import ray

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
    )
    yield
    ray.shutdown()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """The URL of a fresh SQLite file in the test's temporary directory."""
    return f"sqlite:///{tmp_path / 'archtune.db'}"
