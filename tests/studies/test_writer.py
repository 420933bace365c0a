"""The ordered background writer: order, flush, and failures that are not lost."""

from __future__ import annotations

import time

import pytest

from studies.writer import OrderedWriter, WriterError


def test_calls_run_in_submission_order_and_flush_waits() -> None:
    out: list[int] = []
    writer = OrderedWriter()

    def slow_append(i: int) -> None:
        time.sleep(0.001 * (i % 3))
        out.append(i)

    for i in range(50):
        writer.submit(slow_append, i)
    writer.flush()
    assert out == list(range(50))
    writer.close()


def test_a_failure_is_raised_later_and_stops_further_writes() -> None:
    out: list[str] = []
    writer = OrderedWriter()

    def boom() -> None:
        raise OSError("disk full")

    writer.submit(out.append, "a")
    writer.submit(boom)
    writer.submit(out.append, "after")
    with pytest.raises(WriterError, match="disk full"):
        writer.flush()
    assert out == ["a"], "writes after a failure are not applied"
    with pytest.raises(WriterError):
        writer.submit(out.append, "b")
    with pytest.raises(WriterError):
        writer.close()


def test_submit_after_close_is_refused() -> None:
    writer = OrderedWriter()
    writer.close()
    with pytest.raises(WriterError, match="closed"):
        writer.submit(print)


def test_call_runs_after_what_was_submitted_and_returns_its_result() -> None:
    out: list[int] = []
    writer = OrderedWriter()

    def slow_append(i: int) -> None:
        time.sleep(0.002)
        out.append(i)

    for i in range(10):
        writer.submit(slow_append, i)
    assert writer.call(lambda: list(out)) == list(range(10)), "sees every earlier write"
    with pytest.raises(KeyError, match="missing"):
        writer.call({}.__getitem__, "missing")
    writer.submit(out.append, 10)
    writer.flush()
    assert out[-1] == 10, "a failed call does not stop the writer"
    writer.close()


def test_call_after_a_failed_write_raises_the_failure() -> None:
    writer = OrderedWriter()
    writer.submit(lambda: 1 / 0)
    with pytest.raises(WriterError, match="ZeroDivisionError"):
        writer.call(lambda: "never")


def _locked_sqlite(tmp_path):
    """A real SQLite file, an engine that waits 50 ms for a lock, and a second connection
    holding the write lock (``BEGIN EXCLUSIVE``)."""
    import sqlite3

    import sqlalchemy as sa

    path = tmp_path / "busy.db"
    engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.05})
    with engine.begin() as c:
        c.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    return engine, holder


def _insert(engine, x: int) -> None:
    with engine.begin() as c:
        c.exec_driver_sql(f"INSERT INTO t VALUES ({x})")


def test_a_lock_held_past_the_busy_timeout_is_waited_out(tmp_path) -> None:
    import threading

    engine, holder = _locked_sqlite(tmp_path)
    threading.Timer(0.6, holder.execute, ["ROLLBACK"]).start()  # the other one lets go
    writer = OrderedWriter(backoff_s=0.1)
    writer.submit(_insert, engine, 1)
    writer.flush()
    writer.close()
    with engine.connect() as c:
        assert c.exec_driver_sql("SELECT x FROM t").fetchall() == [(1,)]
    assert writer.retried >= 1


def test_an_optuna_write_under_a_lock_is_tried_again(tmp_path) -> None:
    """Optuna wraps SQLAlchemy's error in its StorageInternalError: still a busy database."""
    import sqlite3
    import threading

    import optuna

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 0.05}})
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    holder = sqlite3.connect(tmp_path / "optuna.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    threading.Timer(0.6, holder.execute, ["ROLLBACK"]).start()
    writer = OrderedWriter(backoff_s=0.1)
    writer.submit(trial.set_user_attr, "k", "v")
    writer.close()
    assert writer.retried >= 1 and study.trials[0].user_attrs == {"k": "v"}


def test_a_lock_never_released_stops_the_writer_with_the_reason(tmp_path) -> None:
    engine, holder = _locked_sqlite(tmp_path)
    writer = OrderedWriter(retries=2, backoff_s=0.05)
    writer.submit(_insert, engine, 1)
    with pytest.raises(WriterError, match="database is locked"):
        writer.flush()
    assert writer.failed
    holder.execute("ROLLBACK")
