"""archtune's own migrations: old databases upgrade on open, Optuna's tables stay untouched.

Every test runs on a fresh SQLite file and on a fresh PostgreSQL database (the shared
``storage_url`` fixture of tests/conftest.py; the PostgreSQL runs need
``ARCHTUNE_TEST_POSTGRES_URL``, which .ci/run sets).
"""

from __future__ import annotations

import math
import multiprocessing
from datetime import datetime
from typing import Any

import optuna
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from studies import migrations
from studies.storage import SCHEMA_VERSION, StorageError, _Base, open_storage

# A frozen copy of the version-1 tables as archtune created them with create_all, before
# migrations existed. Never import the live models here: they describe the newest schema.
V1 = sa.MetaData()
V1_METRICS = sa.Table(
    "archtune_metrics",
    V1,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("trial_id", sa.Integer, nullable=False, index=True),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("recorded_at", sa.DateTime, nullable=False),
)
V1_SCHEMA = sa.Table("archtune_schema", V1, sa.Column("version", sa.Integer, primary_key=True))

NEW_INDEXES = {
    "ix_archtune_metrics_trial_id_step": ["trial_id", "step"],
    "ix_archtune_metrics_recorded_at": ["recorded_at"],
}


@pytest.fixture
def url(storage_url: str) -> str:
    """A fresh database: an SQLite file, or a new PostgreSQL database dropped afterwards."""
    return storage_url


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -1.0, 1.0)
    for step in range(3):
        trial.report(x * step, step)
    return x * x


def _make_v1_database(url: str) -> dict[int, dict[str, list[tuple[int, float]]]]:
    """A database as archtune 0.1 wrote it; returns the metrics that it holds."""
    study = optuna.create_study(study_name="v1", storage=url, direction="minimize")
    study.optimize(_objective, n_trials=3)
    engine = sa.create_engine(url)
    V1.create_all(engine)
    expected: dict[int, dict[str, list[tuple[int, float]]]] = {}
    rows: list[dict[str, Any]] = []
    with engine.begin() as c:
        c.execute(V1_SCHEMA.insert(), [{"version": 1}])
        trial_ids = c.scalars(sa.text("SELECT trial_id FROM trials ORDER BY trial_id")).all()
        for trial_id in trial_ids:
            for step in range(2):
                for name, value, kind in [
                    ("loss", 1.0 / (trial_id + step + 1), "finite"),
                    ("grad_norm", None, "nan"),
                    ("ratio", None, "inf"),
                ]:
                    rows.append(
                        {
                            "trial_id": trial_id,
                            "step": step,
                            "name": name,
                            "value": value,
                            "kind": kind,
                            "recorded_at": datetime(2025, 1, 1, 12, step),
                        }
                    )
                    decoded = {"nan": math.nan, "inf": math.inf}.get(kind, value)
                    expected.setdefault(trial_id, {}).setdefault(name, []).append((step, decoded))
        c.execute(V1_METRICS.insert(), rows)
    engine.dispose()
    return expected


def _optuna_snapshot(url: str) -> dict[str, Any]:
    """Every table that is not archtune's: columns, indexes and all rows."""
    engine = sa.create_engine(url)
    snapshot: dict[str, Any] = {}
    with engine.connect() as c:
        inspector = sa.inspect(c)
        for name in inspector.get_table_names():
            if name.startswith("archtune_"):
                continue
            table = sa.Table(name, sa.MetaData(), autoload_with=c)
            columns = [(col["name"], str(col["type"])) for col in inspector.get_columns(name)]
            indexes = sorted(
                (ix["name"], tuple(ix["column_names"])) for ix in inspector.get_indexes(name)
            )
            rows = sorted(map(repr, c.execute(sa.select(table)).all()))
            snapshot[name] = (columns, indexes, rows)
    engine.dispose()
    return snapshot


def _revision(url: str) -> str | None:
    engine = sa.create_engine(url)
    with engine.connect() as c:
        context = MigrationContext.configure(c, opts={"version_table": migrations.VERSION_TABLE})
        revision = context.get_current_revision()
    engine.dispose()
    return revision


def _scalars(url: str, sql: str) -> list[Any]:
    engine = sa.create_engine(url)
    with engine.connect() as c:
        values = list(c.scalars(sa.text(sql)))
    engine.dispose()
    return values


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    with engine.connect() as c:
        names = set(sa.inspect(c).get_table_names())
    engine.dispose()
    return names


def _indexes(url: str) -> dict[str, list[str]]:
    engine = sa.create_engine(url)
    with engine.connect() as c:
        found = {
            ix["name"]: ix["column_names"] for ix in sa.inspect(c).get_indexes("archtune_metrics")
        }
    engine.dispose()
    return found


def _differences(url: str, metadata: sa.MetaData) -> list[Any]:
    """Alembic's autogenerate diff between ``url`` and ``metadata``, archtune tables only."""

    def archtune_only(name: str | None, type_: str, _parents: dict[str, str | None]) -> bool:
        return type_ != "table" or (
            name is not None and name.startswith("archtune_") and name != migrations.VERSION_TABLE
        )

    engine = sa.create_engine(url)
    with engine.connect() as c:
        context = MigrationContext.configure(
            c,
            opts={
                "version_table": migrations.VERSION_TABLE,
                "include_name": archtune_only,
                "compare_type": True,
            },
        )
        diff = compare_metadata(context, metadata)
    engine.dispose()
    return diff


def _alembic(url: str, action: str, revision: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as c:
        getattr(command, action)(migrations.alembic_config(c), revision)
    engine.dispose()


def test_v1_database_upgrades_to_head_and_keeps_every_row(url: str) -> None:
    expected = _make_v1_database(url)
    assert _revision(url) is None

    storage = open_storage(url)

    assert _revision(url) == migrations.head_revision()
    # An index-only upgrade keeps schema 1: older archtunes go on using the database.
    assert _scalars(url, "SELECT version FROM archtune_schema") == [SCHEMA_VERSION] == [1]
    indexes = _indexes(url)
    for name, columns in NEW_INDEXES.items():
        assert indexes[name] == columns
    assert indexes["ix_archtune_metrics_trial_id"] == ["trial_id"]
    got = storage.metrics(sorted(expected))
    assert got.keys() == expected.keys()
    for trial_id, series in expected.items():
        assert got[trial_id].keys() == series.keys()
        for name, points in series.items():
            assert [s for s, _ in got[trial_id][name]] == [s for s, _ in points]
            for (_, g), (_, e) in zip(got[trial_id][name], points, strict=True):
                assert g == e or (math.isnan(g) and math.isnan(e))
    # New rows go in beside the old ones, and a second open has nothing to do.
    storage.add_metrics(min(expected), 5, {"loss": 0.25})
    assert open_storage(url).metrics([min(expected)])[min(expected)]["loss"][-1] == (5, 0.25)


def test_v1_database_still_opens_in_optuna_with_its_tables_untouched(url: str) -> None:
    _make_v1_database(url)
    before = _optuna_snapshot(url)
    trials_before = optuna.load_study(study_name="v1", storage=url).trials

    open_storage(url)

    assert _optuna_snapshot(url) == before
    assert "alembic_version" in before  # Optuna's own version table, left as it was
    trials = optuna.load_study(study_name="v1", storage=url).trials
    assert [(t.number, t.state, t.values, t.params, t.intermediate_values) for t in trials] == [
        (t.number, t.state, t.values, t.params, t.intermediate_values) for t in trials_before
    ]


def test_revision_0001_is_the_v1_schema(url: str) -> None:
    _alembic(url, "upgrade", migrations.V1_REVISION)
    assert _differences(url, V1) == []
    assert _scalars(url, "SELECT version FROM archtune_schema") == [1]


def test_models_match_head(url: str) -> None:
    open_storage(url)
    assert _differences(url, _Base.metadata) == []


def test_fresh_database_gets_head_and_the_current_schema_version(url: str) -> None:
    open_storage(url)
    assert _revision(url) == migrations.head_revision()
    assert _scalars(url, "SELECT version FROM archtune_schema") == [SCHEMA_VERSION]


def test_opening_a_database_at_head_runs_no_migration(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_storage(url)

    def no_migration(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("a database at head must not be migrated again")

    monkeypatch.setattr(migrations, "migrate_to_head", no_migration)
    open_storage(url).add_metrics(1, 0, {"loss": 0.5})


@pytest.mark.parametrize("revision", ["0002", "9999_future"])
def test_newer_schema_version_is_refused_and_left_alone(url: str, revision: str) -> None:
    open_storage(url)
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE archtune_schema SET version = :v"), {"v": SCHEMA_VERSION + 1})
        c.execute(
            sa.text(f"UPDATE {migrations.VERSION_TABLE} SET version_num = :r"), {"r": revision}
        )
    engine.dispose()

    with pytest.raises(StorageError, match=r"newer than this archtune.*upgrade archtune"):
        open_storage(url)

    assert _revision(url) == revision
    assert _scalars(url, "SELECT version FROM archtune_schema") == [SCHEMA_VERSION + 1]


def test_newer_version_in_a_database_without_revision_is_refused(url: str) -> None:
    _make_v1_database(url)
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE archtune_schema SET version = 7"))
    engine.dispose()
    with pytest.raises(StorageError, match="schema 7, newer than this archtune"):
        open_storage(url)
    assert _revision(url) is None


def test_unknown_revision_with_a_known_version_opens_untouched(url: str) -> None:
    """A newer archtune's migration that kept the version: older ones still read it."""
    open_storage(url).add_metrics(3, 1, {"loss": 0.5})
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(sa.text(f"UPDATE {migrations.VERSION_TABLE} SET version_num = '9999_future'"))
    engine.dispose()
    assert open_storage(url).metrics([3]) == {3: {"loss": [(1, 0.5)]}}
    assert _revision(url) == "9999_future"


def test_a_failed_upgrade_leaves_the_database_as_it_was(url: str) -> None:
    _make_v1_database(url)
    engine = sa.create_engine(url)
    with engine.begin() as c:  # makes 0002's second index fail, after its first one
        c.execute(
            sa.text("CREATE INDEX ix_archtune_metrics_recorded_at ON archtune_metrics (step)")
        )
    engine.dispose()

    with pytest.raises(StorageError, match="Cannot upgrade archtune's tables"):
        open_storage(url)

    assert _revision(url) is None
    assert "ix_archtune_metrics_trial_id_step" not in _indexes(url)
    assert _scalars(url, "SELECT version FROM archtune_schema") == [1]


def test_migrations_are_reversible(url: str) -> None:
    open_storage(url).add_metrics(1, 0, {"loss": 0.5})
    head = migrations.head_revision()

    _alembic(url, "downgrade", migrations.V1_REVISION)
    assert _revision(url) == migrations.V1_REVISION
    assert _differences(url, V1) == []
    assert _scalars(url, "SELECT version FROM archtune_schema") == [1]
    assert not NEW_INDEXES.keys() & _indexes(url).keys()

    _alembic(url, "downgrade", "base")
    assert _revision(url) is None
    assert not {"archtune_metrics", "archtune_schema"} & _tables(url)

    _alembic(url, "upgrade", "head")
    assert _revision(url) == head
    assert _differences(url, _Base.metadata) == []
    # Downgraded to base, the database is a new one to open_storage.
    _alembic(url, "downgrade", "base")
    open_storage(url).add_metrics(1, 0, {"loss": 0.5})
    assert _revision(url) == head


def _open_in_a_process(url: str, barrier: Any, results: Any) -> None:
    barrier.wait(timeout=120)
    try:
        open_storage(url)
        results.put("ok")
    except Exception as e:  # reported to the test, which fails with it
        results.put(f"{type(e).__name__}: {e}")


def test_processes_opening_one_new_database_at_once_all_succeed(url: str) -> None:
    processes = 3
    context = multiprocessing.get_context("spawn")  # no forked copies of Ray or torch state
    barrier = context.Barrier(processes)
    results = context.Queue()
    workers = [
        context.Process(target=_open_in_a_process, args=(url, barrier, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=180)
    hung = [worker for worker in workers if worker.is_alive()]
    for worker in hung:
        worker.terminate()
    assert not hung, f"{len(hung)} of {processes} processes still opening after 180 s"
    outcomes = [results.get(timeout=10) for _ in workers]
    assert outcomes == ["ok"] * processes
    assert _revision(url) == migrations.head_revision()
    assert _scalars(url, "SELECT version FROM archtune_schema") == [SCHEMA_VERSION]
    assert len(_scalars(url, "SELECT version_num FROM alembic_version")) == 1
