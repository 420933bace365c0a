"""The study database: URL checks, explicit non-finite metrics, schema version."""

from __future__ import annotations

import math
import sqlite3

import optuna
import pytest
import sqlalchemy as sa

from studies.storage import SchemaRow, StorageError, open_storage


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("not a url", "Malformed storage URL"),
        ("", "non-empty"),
        ("oracle://u:p@host/db", "Unsupported database 'oracle'"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("sqlite:////no/such/dir/archtune.db", "does not exist; create it"),
        ("postgresql://u:secret@127.0.0.1:1/db", "Cannot open storage|No database driver"),
    ],
)
def test_bad_urls_fail_with_a_fix(url: str, match: str) -> None:
    with pytest.raises(StorageError, match=match) as info:
        open_storage(url)
    assert "secret" not in str(info.value), "passwords must not be printed"


def test_sqlite_file_is_an_optuna_storage_in_wal_mode(db_url: str, tmp_path) -> None:
    storage = open_storage(db_url)
    optuna.create_study(study_name="s", storage=storage.optuna)
    assert optuna.get_all_study_names(db_url) == ["s"]
    mode = sqlite3.connect(tmp_path / "archtune.db").execute("PRAGMA journal_mode").fetchone()
    assert mode == ("wal",)


def test_metrics_keep_nan_and_infinities(db_url: str) -> None:
    storage = open_storage(db_url)
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
    got = open_storage(db_url).metrics([7, 8])
    assert got[8] == {}
    assert got[7]["a"] == [(1, 0.5), (2, 0.75)]
    assert math.isnan(got[7]["nan"][0][1])
    assert got[7]["up"] == [(1, math.inf)] and got[7]["down"] == [(1, -math.inf)]
    assert "flag" not in got[7] and "text" not in got[7]


def test_newer_schema_is_refused(db_url: str) -> None:
    storage = open_storage(db_url)
    with storage.session() as s:
        s.add(SchemaRow(version=99))
    with pytest.raises(StorageError, match="newer than this archtune"):
        open_storage(db_url)
    engine = sa.create_engine(db_url)
    with engine.connect() as c:
        assert c.execute(sa.text("select count(*) from archtune_schema")).scalar() == 2
