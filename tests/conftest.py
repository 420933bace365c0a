"""Shared fixtures: one real Ray instance for the whole session, and scratch databases.

``storage_url`` gives each test a fresh database on every backend: an SQLite file, and a
new PostgreSQL database on the server that ``ARCHTUNE_TEST_POSTGRES_URL`` names (its user
must be allowed to ``CREATE DATABASE``; ``.ci/run postgres`` starts one, see README).
Without the variable the PostgreSQL runs are skipped, except under ``CI=true``, where they
fail: CI must not silently lose them.
"""

from __future__ import annotations

import os
import time
import uuid
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


@pytest.fixture(autouse=True)
def _no_storage_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A user's ``ARCHTUNE_STORAGE`` must not send the tests' CLI calls to their database."""
    monkeypatch.delenv("ARCHTUNE_STORAGE", raising=False)


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """A local Ray instance with the machine's 2 CPUs, started once and shut down at the end.

    Always an instance of its own (``address="local"``): a plain ``ray.init()`` joins the
    cluster that a ``ray start`` or a ``ray.cluster_utils.Cluster`` elsewhere on the
    machine recorded in ``/tmp/ray/ray_current_cluster`` (or ``RAY_ADDRESS``), and is
    refused ``num_cpus`` there: the setup error another Ray user on the machine caused.

    Workers get the repository on their path so that trainers defined under ``tests/``
    unpickle there.
    """
    import ray

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    ray.init(
        address="local",
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


POSTGRES_ENV = "ARCHTUNE_TEST_POSTGRES_URL"


def _postgres_server() -> str:
    """The test server's URL; skips the test without one, or fails it under ``CI=true``."""
    server = os.environ.get(POSTGRES_ENV, "").strip()
    if server:
        return server
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        pytest.fail(
            f"CI=true but {POSTGRES_ENV} is not set: the PostgreSQL tests cannot run. "
            "CI starts a server in .ci/run; set the variable to a server URL whose user may "
            "CREATE DATABASE."
        )
    pytest.skip(
        f"no PostgreSQL server: set {POSTGRES_ENV}=postgresql://USER:PASSWORD@HOST:PORT/DB "
        'of a user who may CREATE DATABASE (eval "$(.ci/run postgres)" starts one)'
    )


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database of its own, dropped after the test."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    server = _postgres_server()
    name = f"archtune_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        # FORCE: connections the test left open (pools, Optuna's engines) go too. An
        # autovacuum worker on the new database (the server's own role) cannot be
        # terminated by ours: it ends by itself, so the drop is tried again.
        for attempt in range(20):
            try:
                with admin.connect() as c:
                    c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                break
            except sa.exc.ProgrammingError as e:
                if "pg_signal_backend" not in str(e) or attempt == 19:
                    raise
                time.sleep(0.5)
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest) -> str:
    """A fresh database on each backend: ``db_url``'s SQLite file, then ``pg_url``."""
    return request.getfixturevalue("db_url" if request.param == "sqlite" else "pg_url")
