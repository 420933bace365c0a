"""The study database: URL checks, drivers, hidden passwords, explicit non-finite metrics,
schema version. Tests taking ``storage_url`` run on SQLite and on PostgreSQL."""

from __future__ import annotations

import math
import sqlite3
import sys

import optuna
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from studies.storage import SchemaRow, StorageError, open_storage, shown_url


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("not a url", "Malformed storage URL"),
        ("", "non-empty"),
        ("oracle://u:p@host/db", "Unsupported database 'oracle'"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("sqlite:////no/such/dir/archtune.db", "does not exist; create it"),
        ("postgresql://u:secret@127.0.0.1:1/db", "Cannot open storage .*Connection refused"),
        ("postgresql://u:secret@host:notaport/db", "Malformed storage URL"),
        ("postgresql+nosuch://u:secret@host/db", r"Unknown driver 'postgresql\+nosuch'"),
    ],
)
def test_bad_urls_fail_with_a_fix(url: str, match: str) -> None:
    with pytest.raises(StorageError, match=match) as info:
        open_storage(url)
    assert "secret" not in str(info.value), "passwords must not be printed"
    if "u:" in str(info.value):
        assert "u:***@" in str(info.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://me:s3cret@db:5432/studies", "postgresql://me:***@db:5432/studies"),
        ("postgresql+psycopg://me:p%40ss@db/s", "postgresql+psycopg://me:***@db/s"),
        ("postgresql://me@db/studies", "postgresql://me@db/studies"),
        ("sqlite:////tmp/a.db", "sqlite:////tmp/a.db"),
        ("postgresql://me:s3cret@db:port/studies", "postgresql://me:***@db:port/studies"),
        ("not a url", "not a url"),
    ],
)
def test_shown_url_hides_the_password(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_shown_url_takes_url_objects() -> None:
    url = make_url("postgresql://me:s3cret@db:5432/studies")
    assert shown_url(url) == "postgresql://me:***@db:5432/studies"


def test_storage_repr_hides_the_password(storage_url: str) -> None:
    storage = open_storage(storage_url)
    password = make_url(storage_url).password
    assert storage.shown == shown_url(storage_url)
    assert repr(storage) == f"Storage(url={shown_url(storage_url)!r})"
    if password:
        assert password not in repr(storage) and ":***@" in repr(storage)


def test_a_url_naming_a_missing_driver_says_how_to_install_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg2", None)  # as if not installed
    with pytest.raises(StorageError) as info:
        open_storage("postgresql+psycopg2://u:secret@127.0.0.1:1/db")
    message = str(info.value)
    assert message.startswith("No database driver 'psycopg2' for postgresql+psycopg2://u:***@")
    assert "postgresql://" in message and "pip install 'archtune[postgres]'" in message
    assert "pip install psycopg2-binary" in message and "secret" not in message


def test_without_psycopg_a_postgresql_url_says_to_install_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(StorageError, match=r"No database driver 'psycopg'") as info:
        open_storage("postgresql://u:secret@127.0.0.1:1/db")
    assert "install it with pip install 'archtune[postgres]'" in str(info.value)
    assert "secret" not in str(info.value)


def test_plain_postgresql_urls_use_psycopg_3(pg_url: str) -> None:
    assert make_url(pg_url).drivername == "postgresql"
    storage = open_storage(pg_url)
    assert storage.url == pg_url
    assert storage.optuna.engine.dialect.driver == "psycopg"


def test_a_wrong_password_is_refused_without_showing_it(pg_url: str) -> None:
    wrong = make_url(pg_url).set(password="Wr0ng-pa55word").render_as_string(hide_password=False)
    with pytest.raises(StorageError, match="password authentication failed") as info:
        open_storage(wrong)
    assert "Wr0ng-pa55word" not in str(info.value) and ":***@" in str(info.value)


def test_storage_is_an_optuna_storage(storage_url: str) -> None:
    storage = open_storage(storage_url)
    optuna.create_study(study_name="s", storage=storage.optuna).optimize(
        lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=2
    )
    assert optuna.get_all_study_names(storage_url) == ["s"]
    assert len(optuna.load_study(study_name="s", storage=storage_url).trials) == 2


def test_sqlite_file_is_an_optuna_storage_in_wal_mode(db_url: str, tmp_path) -> None:
    storage = open_storage(db_url)
    optuna.create_study(study_name="s", storage=storage.optuna)
    assert optuna.get_all_study_names(db_url) == ["s"]
    mode = sqlite3.connect(tmp_path / "archtune.db").execute("PRAGMA journal_mode").fetchone()
    assert mode == ("wal",)


def test_metrics_keep_nan_and_infinities(storage_url: str) -> None:
    storage = open_storage(storage_url)
    storage.add_metrics(
        7,
        1,
        {
            "a": 0.5,
            "nan": math.nan,
            "up": math.inf,
            "down": -math.inf,
            "flag": True,
            "text": "skipped",
        },
    )
    storage.add_metrics(7, 2, {"a": 0.75})
    got = open_storage(storage_url).metrics([7, 8])
    assert got[8] == {}
    assert got[7]["a"] == [(1, 0.5), (2, 0.75)]
    assert math.isnan(got[7]["nan"][0][1])
    assert got[7]["up"] == [(1, math.inf)] and got[7]["down"] == [(1, -math.inf)]
    assert "flag" not in got[7] and "text" not in got[7]


def test_an_epoch_recorded_again_replaces_its_rows(storage_url: str) -> None:
    # A driver that died between an epoch's metric rows and its intermediate value: the
    # trial trains again from scratch, and its epoch 1 is recorded once, as retrained.
    storage = open_storage(storage_url)
    storage.add_metrics(3, 1, {"loss": 2.0, "acc": 0.1})
    storage.add_metrics(3, 2, {"loss": 1.0})
    storage.add_metrics(4, 1, {"loss": 9.0})
    storage.add_metrics(3, 1, {"loss": 1.5, "acc": 0.2})
    got = storage.metrics([3, 4])
    assert got[3] == {"loss": [(1, 1.5), (2, 1.0)], "acc": [(1, 0.2)]}
    assert got[4] == {"loss": [(1, 9.0)]}, "another trial's rows stay"


def test_newer_schema_is_refused(storage_url: str) -> None:
    storage = open_storage(storage_url)
    with storage.session() as s:
        s.add(SchemaRow(version=99))
    with pytest.raises(StorageError, match="newer than this archtune"):
        open_storage(storage_url)
    engine = sa.create_engine(storage_url)
    with engine.connect() as c:
        assert c.execute(sa.text("select count(*) from archtune_schema")).scalar() == 2
    engine.dispose()
