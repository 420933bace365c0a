"""The bulk read path (``reads_sql.details``, ``metric_rows``, ``shown_times``) against
Optuna's own ``get_trials``, on SQLite and PostgreSQL.

Whole studies are read with plain DBAPI tuples grouped by trial, the collector paused and
times converted by the hour; each record must still say, field by field and type by type,
what Optuna says of the trial, however the rows fall into fetches and chunks of ids.
"""

from __future__ import annotations

import gc
import math
import time
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from search.optuna_access import constraints_of, set_constraints, study_id, trial_id
from studies import reads_sql as q
from studies import reads_time
from studies.lease import Lease
from studies.reads import StudyReader
from studies.records import (
    ATTR_ARCH_ID,
    ATTR_ERROR,
    ATTR_NODE,
    ATTR_OVERHEAD,
    ATTR_REJECTED,
    ATTR_REPEAT_OF,
    ATTR_RESTARTS,
    ATTR_STATS,
    ATTR_TRACEBACK,
    TrialRecord,
)
from studies.storage import Storage, open_storage
from tests.studies.test_reads import fail_and_reject

optuna.logging.set_verbosity(optuna.logging.ERROR)
INF, NAN = math.inf, math.nan


@pytest.fixture
def storage(storage_url: str) -> Storage:
    return open_storage(storage_url)


def _ask(study: optuna.Study, i: int) -> optuna.Trial:
    """A new trial with every kind of parameter; ``act`` is each of its choices in turn."""
    study.enqueue_trial({"act": ACTS[i % len(ACTS)]})
    t = study.ask()
    _suggest(t)
    return t


ACTS = ["relu", None, 1.5, True, 3]


def _suggest(t: optuna.Trial) -> None:
    t.suggest_categorical("act", ACTS)
    t.suggest_categorical("width", [16, 32, 64])
    t.suggest_int("units", 8, 128, log=True)
    t.suggest_float("lr", 1e-4, 1e-1, log=True)
    t.suggest_float("drop", 0.0, 0.5, step=0.1)


def _build(storage: Storage) -> optuna.Study:
    """Study "one": every state, every kind of value, attribute and metric row; "two": two
    objectives (Optuna takes no reports there), values infinite on either."""
    study = optuna.create_study(study_name="one", storage=storage.optuna, direction="maximize")
    reports = [0.25, INF, -INF, NAN]
    for i, value in enumerate([0.5, INF, -INF, 0.7, 0.9]):
        t = _ask(study, i)
        for step in range(1, 5):
            t.report(reports[(i + step) % 4], step)
            storage.add_metrics(trial_id(t), step, {"acc": 0.1 * step + i, "loss": 1.0 / step})
        if i == 0:
            storage.add_metrics(trial_id(t), 2, {"odd": NAN, "big": INF, "small": -INF})
            t.set_user_attr(ATTR_STATS, {"params": 1234.0, "flops": 5e6})
            t.set_user_attr(ATTR_ARCH_ID, "abc123")
            t.set_user_attr(ATTR_NODE, "host (10.0.0.1)")
            t.set_user_attr(ATTR_RESTARTS, [{"error": "died", "node": "h", "epoch": 2}])
            t.set_user_attr(ATTR_OVERHEAD, {"train_s": 1.5, "epochs": 4.0})
            t.set_user_attr("unrelated", {"big": list(range(5))})
        if i == 1:
            t.set_user_attr(ATTR_REPEAT_OF, 0)
            set_constraints(t, {"params": 1.0, "flops": -2.0})
        if i == 2:  # Optuna 4's format: a list
            t.storage.set_trial_system_attr(trial_id(t), "constraints", [-0.5, 0.0])
        study.tell(t, value)
    pruned = _ask(study, 1)
    pruned.report(NAN, 1)
    storage.add_metrics(trial_id(pruned), 1, {"acc": NAN})
    study.tell(pruned, state=TrialState.PRUNED)
    fail_and_reject(study, study.ask())
    running = _ask(study, 2)
    running.report(0.2, 1)
    storage.add_metrics(trial_id(running), 1, {"acc": 0.2})
    study.enqueue_trial({"width": 32})  # WAITING
    two = optuna.create_study(
        study_name="two", storage=storage.optuna, directions=["maximize", "minimize"]
    )
    for i, values in enumerate([(0.5, 1.0), (INF, 2.0), (0.7, -INF), (-INF, INF)]):
        t = _ask(two, i)
        storage.add_metrics(trial_id(t), 1, {"acc": values[0], "params": values[1]})
        two.tell(t, list(values))
    two.tell(two.ask(), state=TrialState.FAIL)
    return study


def _norm(value: Any) -> Any:
    """NaN made comparable, each float, int, bool, str or None kept apart by its type."""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, dict):
        return [(k, _norm(v)) for k, v in value.items()]  # order too
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    return (type(value).__name__, value)


def _as_optuna_says(t: FrozenTrial, live: bool) -> dict[str, Any]:
    """The fields a record shares with Optuna's trial, from the trial."""
    state = "INTERRUPTED" if t.state == TrialState.RUNNING and not live else t.state.name
    a = t.user_attrs
    rejected = f"rejected: {a[ATTR_REJECTED]}" if ATTR_REJECTED in a else None
    return {
        "number": t.number,
        "state": state,
        "params": t.params,
        "value": t.values[0] if t.values and state in ("COMPLETE", "PRUNED") else None,
        "values": list(t.values) if t.values and state == "COMPLETE" else None,
        "intermediate": dict(sorted(t.intermediate_values.items())),
        "started": t.datetime_start,
        "completed": t.datetime_complete,
        "error": a.get(ATTR_ERROR) or rejected,
        "traceback": a.get(ATTR_TRACEBACK),
        "arch_id": a.get(ATTR_ARCH_ID),
        "repeat_of": a.get(ATTR_REPEAT_OF),
        "stats": a.get(ATTR_STATS),
        "node": a.get(ATTR_NODE),
        "restarts": a.get(ATTR_RESTARTS) or [],
        "overhead": a.get(ATTR_OVERHEAD),
        "constraints": sorted(constraints_of(t).values()),
    }


def _check(records: list[TrialRecord], storage: Storage, name: str, live: bool) -> None:
    trials = optuna.load_study(study_name=name, storage=storage.optuna).get_trials()
    metrics = storage.metrics([trial_id(t) for t in trials])
    assert [r.number for r in records] == [t.number for t in trials]
    for r, t in zip(records, trials, strict=True):
        want = _as_optuna_says(t, live)
        got = {k: getattr(r, k) for k in want} | {"constraints": sorted(r.constraints)}
        for k in want:
            assert _norm(got[k]) == _norm(want[k]), f"trial {t.number}: {k}"
        assert _norm(r.metrics) == _norm(metrics[trial_id(t)]), f"trial {t.number}: metrics"


@pytest.mark.parametrize("live", [False, True])
def test_a_whole_study_reads_as_optuna_says(storage: Storage, live: bool) -> None:
    study = _build(storage)
    lease = Lease.acquire(storage, study_id(study), "one") if live else None
    try:
        reader = StudyReader(storage)
        states = [t.state for t in reader.load_record("one").trials]
        assert ("RUNNING" in states) is live and ("INTERRUPTED" in states) is not live
        for name in ("one", "two"):
            _check(reader.load_record(name).trials, storage, name, live)
            _check(reader.poll(name).trials, storage, name, live)
            _check(reader.page(name, limit=100).record.trials, storage, name, live)
    finally:
        if lease is not None:
            lease.release()


@pytest.mark.parametrize(("fetch", "chunk"), [(1, 2), (3, 500), (7, 3)])
def test_rows_split_across_fetches_and_chunks_read_the_same(
    storage: Storage, monkeypatch: pytest.MonkeyPatch, fetch: int, chunk: int
) -> None:
    """A trial's rows that come in two fetches, or trials in several queries of ids
    (a page), still make one record each."""
    _build(storage)
    reader = StudyReader(storage)
    whole = reader.load_record("one").trials
    monkeypatch.setattr(q, "FETCH", fetch)
    monkeypatch.setattr(q, "CHUNK", chunk)
    assert _norm([vars(t) for t in reader.load_record("one").trials]) == _norm(
        [vars(t) for t in whole]
    )
    page = reader.page("one", limit=100, order_by="number", descending=True).record.trials
    assert _norm([vars(t) for t in page]) == _norm([vars(t) for t in reversed(whole)])
    _check(reader.poll("one").trials, storage, "one", live=False)


@pytest.mark.parametrize("zone", ["Europe/Berlin", "Australia/Lord_Howe", "Asia/Kathmandu"])
def test_times_convert_by_the_hour_as_one_by_one(
    zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Across clock changes (Berlin's by an hour, Lord Howe's by half an hour) and odd
    offsets (+5:45), as :func:`reads_time.shown_time` converts each time."""
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        days = [(3, 30), (4, 6), (10, 5), (10, 26)]  # Lord Howe's October change: 15:30 UTC
        stored = [
            datetime(2024, m, d, 12) + timedelta(minutes=7 * i, microseconds=i)
            for m, d in days
            for i in range(600)
        ]
        stored[5] = None
        assert reads_time.shown_times(stored) == [reads_time.shown_time(s) for s in stored]
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_the_collector_pause_restores_what_was_there() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), q.gc_paused():
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with q.gc_paused():
            pass
        assert not gc.isenabled()  # a caller's own pause is left alone
    finally:
        gc.enable()


@pytest.mark.parametrize("zone", ["Europe/Berlin", "Australia/Lord_Howe", "Asia/Kathmandu"])
def test_an_outlines_times_convert_as_one_by_one(
    zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outline's vectorised conversion (:func:`reads_time.shown_times64`) agrees with
    :func:`reads_time.shown_time` across the same clock changes."""
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        days = [(3, 30), (4, 6), (10, 5), (10, 26)]
        stored = [
            datetime(2024, m, d, 12) + timedelta(minutes=7 * i, microseconds=i)
            for m, d in days
            for i in range(600)
        ]
        stored[5] = None
        got = reads_time.shown_times64(np.array(stored, dtype="datetime64[us]"))
        want = [reads_time.shown_time(s) for s in stored]
        assert [None if np.isnat(g) else g.astype(datetime) for g in got] == want
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
