"""The read path (``studies.reads``) against Optuna's own reads, on SQLite and PostgreSQL.

The tables are pinned against the installed Optuna's models (names, columns, enum types,
how non-finite values and times are stored, the indexes the queries need). Studies are
then built with plain Optuna, every state and every kind of value and parameter, and each
read is compared, field by field, with what ``get_trials`` gives through
``records.load_study_record`` and ``records.list_studies``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta
from importlib import import_module
from typing import Any

import numpy as np
import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from search.optuna_access import set_constraints, study_id, trial_id
from studies import reads_sql as q
from studies import reads_time
from studies.lease import Lease
from studies.reads import Cursor, StudyReader
from studies.reads_outline import read_outline
from studies.records import (
    ATTR_ARCH_ID,
    ATTR_ERROR,
    ATTR_NODE,
    ATTR_OBJECTIVE,
    ATTR_REJECTED,
    ATTR_REPEAT_OF,
    ATTR_RESTARTS,
    ATTR_RUN,
    ATTR_SPACE,
    ATTR_STATS,
    ATTR_TRACEBACK,
    TrialRecord,
    list_studies,
    load_study_record,
)
from studies.storage import Storage, open_storage

optuna.logging.set_verbosity(optuna.logging.ERROR)
INF = math.inf
MODELS = import_module("optuna.storages._rdb.models")
# Optuna 4's best_trials counts a trial without constraints in a constrained study as
# infeasible; Optuna 5 and archtune (TrialRecord.feasible) count it as feasible.
OPTUNA_4 = not hasattr(optuna.trial.FrozenTrial, "constraints")


# -- the schema, pinned ----------------------------------------------------------------


def test_the_tables_read_are_optunas() -> None:
    ours = {t.name: t for t in q._META.sorted_tables}
    theirs = MODELS.BaseModel.metadata.tables
    for name, table in ours.items():
        assert name in theirs, f"Optuna has no table {name!r} any more"
        for column in table.columns:
            other = theirs[name].columns.get(column.name)
            assert other is not None, f"Optuna's {name} has no column {column.name!r}"
            assert other.primary_key == column.primary_key, (name, column.name)
            if isinstance(column.type, sa.Enum):
                assert isinstance(other.type, sa.Enum), (name, column.name)
                assert other.type.name == column.type.name, (name, column.name)
                assert list(other.type.enums) == list(column.type.enums), (name, column.name)
            else:
                assert other.type._type_affinity is column.type._type_affinity, column.name
    value_type = MODELS.TrialValueModel.TrialValueType
    step_type = MODELS.TrialIntermediateValueModel.TrialIntermediateValueType
    assert [(m.name, m.value) for m in q.ValueType] == [(m.name, m.value) for m in value_type]
    assert [(m.name, m.value) for m in q.IntermediateType] == [
        (m.name, m.value) for m in step_type
    ]
    study_module = import_module("optuna.study.study")
    constrained = import_module("optuna.study._constrained_optimization")
    assert q.METRIC_NAMES_KEY == study_module._SYSTEM_ATTR_METRIC_NAMES
    assert q.CONSTRAINTS_KEY == constrained._CONSTRAINTS_KEY


def test_non_finite_values_are_stored_as_the_decoder_reads_them() -> None:
    for v in (1.5, INF, -INF):
        stored, kind = MODELS.TrialValueModel.value_to_stored_repr(v)
        assert q.decode_float(stored, kind) == v
    for v in (1.5, INF, -INF, math.nan):
        stored, kind = MODELS.TrialIntermediateValueModel.intermediate_value_to_stored_repr(v)
        got = q.decode_float(stored, kind)
        assert got == v or (math.isnan(v) and math.isnan(got))


@pytest.fixture
def storage(storage_url: str) -> Storage:
    return open_storage(storage_url)


def test_the_indexes_the_queries_use_exist(storage: Storage) -> None:
    optuna.create_study(study_name="s", storage=storage.optuna)
    inspector = sa.inspect(storage.optuna.engine)

    def indexed(table: str) -> list[list[str]]:
        keys = [i["column_names"] for i in inspector.get_indexes(table)]
        return keys + [u["column_names"] for u in inspector.get_unique_constraints(table)]

    assert ["study_id"] in indexed("trials")
    assert ["study_name"] in indexed("studies")
    for table in ("trial_params", "trial_values", "trial_intermediate_values"):
        assert any(cols[0] == "trial_id" for cols in indexed(table)), table
    for table in ("trial_user_attributes", "trial_system_attributes"):
        assert ["trial_id", "key"] in indexed(table), table
    assert ["trial_id", "step"] in indexed("archtune_metrics")
    assert ["study_id"] in indexed("archtune_drivers")


def test_times_read_as_optuna_shows_them_in_any_time_zone(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # UTC+9: a stored UTC time differs from local
    time.tzset()
    try:
        study = optuna.create_study(study_name="tz", storage=storage.optuna)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
        with storage.optuna.engine.connect() as conn:
            raw = conn.execute(sa.select(q.trials.c.datetime_start)).scalar_one()
        assert reads_time.shown_time(raw) == study.trials[0].datetime_start
        record = load_study_record(storage, "tz")
        assert StudyReader(storage).load_record("tz").trials[0].started == record.trials[0].started
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


# -- studies built with plain Optuna ------------------------------------------------------


def _suggest(t: optuna.Trial) -> None:
    t.suggest_categorical("width", [16, 32, 64])
    t.suggest_categorical("act", ["relu", None, 1.5, True])
    t.suggest_int("depth", 1, 4)
    t.suggest_int("units", 8, 128, log=True)
    t.suggest_float("lr", 1e-4, 1e-1, log=True)
    t.suggest_float("drop", 0.0, 0.5, step=0.1)


def fail_and_reject(study: optuna.Study, failed: optuna.Trial) -> None:
    """Tell ``failed`` FAIL with an error and its traceback, then one more trial FAIL as
    a constraint rejection: the two kinds of failure a view tells apart."""
    failed.set_user_attr(ATTR_ERROR, "RuntimeError: out of memory")
    failed.set_user_attr(ATTR_TRACEBACK, "Traceback (most recent call last):\n  boom\n")
    study.tell(failed, state=TrialState.FAIL)
    rejected = study.ask()
    rejected.set_user_attr(ATTR_REJECTED, "params 2e6 > 1e6")
    study.tell(rejected, state=TrialState.FAIL)


def _single(storage: Storage) -> dict[str, Any]:
    """A maximised study with archtune's study attributes and every trial state."""
    study = optuna.create_study(study_name="single", storage=storage.optuna, direction="maximize")
    study.set_user_attr(ATTR_OBJECTIVE, "acc")
    study.set_user_attr(ATTR_SPACE, json.dumps({"x": {"type": "float"}}))
    run = {"controller": {"name": "evolution", "seed": 0, "options": {}}, "scheduler": "asha"}
    study.set_user_attr(ATTR_RUN, json.dumps(run))
    values = [0.5, 0.9, INF, -INF, 0.7, 0.9, 0.95, 0.3]
    for i, v in enumerate(values):
        t = study.ask()
        _suggest(t)
        for step in range(1, 4):
            t.report([0.1 * step, INF, math.nan][step - 1] if i == 0 else v * step / 3, step)
            storage.add_metrics(trial_id(t), step, {"acc": v * step / 3, "loss": 1.0 / step})
        if i == 0:
            storage.add_metrics(trial_id(t), 3, {"odd": math.nan, "big": INF, "small": -INF})
        if i == 1:
            t.set_user_attr(ATTR_STATS, {"params": 1234.0, "flops": 5e6})
            t.set_user_attr(ATTR_ARCH_ID, "abc123")
            t.set_user_attr(ATTR_NODE, "host (10.0.0.1)")
            t.set_user_attr(ATTR_RESTARTS, [{"error": "died", "node": "h", "epoch": 2}])
            t.set_user_attr("unrelated", {"big": list(range(5))})
        if i == 5:
            t.set_user_attr(ATTR_REPEAT_OF, 1)
        if i in (6, 7):  # 0.95 is the highest finite value, but infeasible
            set_constraints(t, {"params": 1.0 if i == 6 else -1.0, "flops": 0.0})
        if i == 4:  # Optuna 4's format: a list
            t.storage.set_trial_system_attr(trial_id(t), "constraints", [-0.5, 0.0])
        study.tell(t, v)
    pruned = study.ask()
    _suggest(pruned)
    pruned.report(0.4, 1)
    pruned.report(0.6, 2)
    study.tell(pruned, state=TrialState.PRUNED)
    pruned_bare = study.ask()  # pruned before any report
    study.tell(pruned_bare, state=TrialState.PRUNED)
    failed = study.ask()
    _suggest(failed)
    fail_and_reject(study, failed)
    running = study.ask()
    _suggest(running)
    running.report(0.2, 1)
    storage.add_metrics(trial_id(running), 1, {"acc": 0.2})
    study.enqueue_trial({"width": 32, "depth": 2})  # WAITING
    _fix_times(storage)
    return {"study": study, "running": running}


def _multi(storage: Storage) -> optuna.Study:
    """Two objectives named by Optuna's metric names (no archtune attribute)."""
    study = optuna.create_study(
        study_name="multi", storage=storage.optuna, directions=["maximize", "minimize"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["acc", "params"])
    rows = [(0.9, 100.0), (0.8, 50.0), (0.7, 80.0), (0.9, 100.0), (INF, 500.0), (0.6, -INF)]
    rows += [(0.95, 10.0)]  # dominates many, but infeasible
    for i, values in enumerate(rows):
        t = study.ask()
        t.suggest_float("x", 0, 1)
        if i == 6:
            set_constraints(t, {"c": 2.0})
        study.tell(t, list(values))
    study.tell(study.ask(), state=TrialState.PRUNED)
    study.tell(study.ask(), state=TrialState.FAIL)
    _fix_times(storage)
    return study


def _plain(storage: Storage) -> optuna.Study:
    study = optuna.create_study(study_name="plain", storage=storage.optuna)
    study.optimize(lambda t: (t.suggest_float("x", -1, 1) - 0.2) ** 2, n_trials=6)
    return study


def _fix_times(storage: Storage) -> None:
    """Distinct starts and durations for finished trials (a sort by time has no ties)."""
    base = datetime(2024, 1, 1)
    t = q.trials
    with storage.optuna.engine.begin() as conn:
        done = [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL]
        for (tid,) in conn.execute(sa.select(t.c.trial_id).where(t.c.state.in_(done))):
            start = base + timedelta(seconds=1000 * tid)
            end = start + timedelta(seconds=(tid * 37) % 101 + 0.25)
            conn.execute(
                sa.update(t)
                .where(t.c.trial_id == tid)
                .values(datetime_start=start, datetime_complete=end)
            )


def _build(storage: Storage) -> dict[str, Any]:
    out = _single(storage)
    out["multi"] = _multi(storage)
    out["plain"] = _plain(storage)
    optuna.create_study(study_name="empty", storage=storage.optuna)
    return out


def _norm(value: Any) -> Any:
    """``value`` with NaN made comparable (NaN != NaN) and tuples as lists."""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    return value


def _same(got: list[TrialRecord], want: list[TrialRecord]) -> None:
    assert [t.number for t in got] == [t.number for t in want]
    for a, b in zip(got, want, strict=True):
        for f in dataclasses.fields(TrialRecord):
            x, y = getattr(a, f.name), getattr(b, f.name)
            if f.name == "constraints":  # Optuna's order is the engine's: SQLite's by key
                x, y = sorted(x), sorted(y)
            assert _norm(x) == _norm(y), f"trial {a.number}: {f.name} {x!r} != {y!r}"
            if f.name in ("params", "intermediate"):  # order too, as Optuna gives it
                assert list(x) == list(y), f"trial {a.number}: {f.name} order"


NAMES = ("single", "multi", "plain", "empty")


@contextlib.contextmanager
def _built(storage: Storage, live: bool) -> Iterator[None]:
    """The studies of :func:`_build`, "single" run by a live driver if ``live``."""
    built = _build(storage)
    lease = Lease.acquire(storage, study_id(built["study"]), "single") if live else None
    try:
        yield
    finally:
        if lease is not None:
            lease.release()


@pytest.mark.parametrize("live", [False, True])
def test_a_whole_study_reads_as_load_study_record(storage: Storage, live: bool) -> None:
    with _built(storage, live):
        reader = StudyReader(storage)
        for name in NAMES:
            want, got = load_study_record(storage, name), reader.load_record(name)
            _same(got.trials, want.trials)
            assert dataclasses.replace(got, trials=[]) == dataclasses.replace(want, trials=[])
            _same(reader.front(name), want.front)
            best = reader.best(name)
            _same([best] if best else [], [want.best] if want.best else [])
            assert dataclasses.replace(reader.study(name), trials=[]) == dataclasses.replace(
                want, trials=[]
            )
        states = {t.state for t in reader.load_record("single").trials}
        assert ("RUNNING" in states) is live and ("INTERRUPTED" in states) is not live
        assert reader.best("single").number == 1  # 0.95 (trial 6) is infeasible; inf is not finite
        assert [t.number for t in reader.front("multi")] == [0, 1, 3]


@pytest.mark.parametrize("live", [False, True])
def test_an_outline_holds_what_the_whole_study_says(
    storage: Storage, live: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # UTC+5:30: stored UTC differs from shown
    time.tzset()
    try:
        _outline_holds_what_the_whole_study_says(storage, live)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def _outline_holds_what_the_whole_study_says(storage: Storage, live: bool) -> None:
    with _built(storage, live):
        reader = StudyReader(storage)
        for name in NAMES:
            want, got = load_study_record(storage, name), reader.outline(name)
            assert (
                got.name == name
                and got.objectives == want.objectives
                and len(got) == len(want.trials)
            )
            assert got.number.tolist() == [t.number for t in want.trials]
            assert got.state.tolist() == [t.state for t in want.trials]
            for i, t in enumerate(want.trials):
                kept = t.values or ([t.value] if t.value is not None else [])
                row = got.values[i].tolist()
                assert _norm(row[: len(kept)]) == _norm(kept), (name, t.number)
                assert all(math.isnan(v) for v in row[len(kept) :]), (name, t.number)
                for when, at in ((t.started, got.started[i]), (t.completed, got.completed[i])):
                    assert (when is None and np.isnat(at)) or np.datetime64(when, "us") == at


def test_a_trial_made_between_the_outlines_two_queries_is_left_out(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = optuna.create_study(study_name="racing", storage=storage.optuna)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    execute, calls = sa.Connection.execute, []

    def execute_then_finish_a_trial(conn: sa.Connection, *args: Any, **kwargs: Any) -> Any:
        result = execute(conn, *args, **kwargs)
        calls.append(1)
        if len(calls) == 1:  # the trials were read; one more finishes before the values
            rows = result.freeze()  # read out, as the outline does
            study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
            return rows()
        return result

    reader = StudyReader(storage)
    head = reader.study("racing")
    with storage.engine.connect() as conn:
        sid = study_id(study)
        monkeypatch.setattr(sa.Connection, "execute", execute_then_finish_a_trial)
        outline = read_outline(conn, sid, False, head)
        monkeypatch.undo()
    assert outline.number.tolist() == [0, 1, 2]
    assert outline.values[:, 0].tolist() == [t.value for t in study.trials[:3]]
    assert len(reader.outline("racing")) == 4


def test_ls_lines_are_list_studies_lines(storage: Storage) -> None:
    built = _build(storage)
    want = {s.name: s for s in list_studies(storage)}
    got = StudyReader(storage).summaries()
    assert [s.name for s in got] == list(NAMES)
    for line in got:
        old = want[line.name]
        for f in ("direction", "objective", "n_trials", "started", "objectives", "directions"):
            assert getattr(line, f) == getattr(old, f), (line.name, f)
        if not (OPTUNA_4 and line.name in ("single", "multi")):  # constrained: see OPTUNA_4
            assert (line.best_value, line.front_size) == (old.best_value, old.front_size)
        states = dict(old.states)
        if "RUNNING" in states:  # no live driver: interrupted, as load_study_record says
            states["INTERRUPTED"] = states.pop("RUNNING")
        assert line.states == states, line.name
        record = load_study_record(storage, line.name)
        times = [x for t in record.trials for x in (t.started, t.completed) if x]
        assert line.last_activity == max(times, default=None)
        assert line.study_id == study_id(
            optuna.load_study(study_name=line.name, storage=storage.optuna)
        )
        assert not line.live
    single = next(s for s in got if s.name == "single")
    assert (single.controller, single.scheduler, single.best_value) == ("evolution", "asha", INF)
    assert next(s for s in got if s.name == "multi").front_size == 5  # inf counts, as in Optuna
    assert next(s for s in got if s.name == "plain").controller is None
    lease = Lease.acquire(storage, study_id(built["study"]), "single")
    try:
        single = next(s for s in StudyReader(storage).summaries() if s.name == "single")
        assert single.live and single.states["RUNNING"] == 1 and "INTERRUPTED" not in single.states
    finally:
        lease.release()


_RANK = {"COMPLETE": 0, "PRUNED": 1, "FAIL": 2, "RUNNING": 3, "INTERRUPTED": 3, "WAITING": 4}


def _key(t: TrialRecord, order: str, objectives: list[str]) -> Any:
    if order == "number":
        return t.number
    if order == "state":
        return _RANK[t.state]
    if order in ("started", "completed", "duration"):
        return {"started": t.started, "completed": t.completed, "duration": t.duration_s}[order]
    i = 0 if order == "value" else objectives.index(order)
    if t.values:
        return t.values[i]
    return t.value if i == 0 and t.state == "PRUNED" else None


def _expected(trials: list[TrialRecord], order: str, desc: bool, objectives: list[str]) -> list:
    keyed = [(_key(t, order, objectives), t) for t in trials]
    present = sorted((p for p in keyed if p[0] is not None), key=lambda p: p[1].number)
    present.sort(key=lambda p: p[0], reverse=desc)  # stable: ties stay by number
    return [t for _, t in present] + [t for k, t in keyed if k is None]


def test_pages_are_sorted_filtered_and_cut_in_sql(storage: Storage) -> None:
    _build(storage)
    reader = StudyReader(storage)
    for name in ("single", "multi"):
        record = load_study_record(storage, name)
        orders = ["number", "state", "started", "completed", "duration", "value"]
        for order in orders + record.objectives[1:]:
            for desc in (False, True):
                want = _expected(record.trials, order, desc, record.objectives)
                page = reader.page(name, 0, 100, order, desc)
                assert page.total == len(record.trials)
                _same(page.record.trials, want)
                cut = [reader.page(name, i, 3, order, desc).record.trials for i in range(0, 18, 3)]
                _same([t for part in cut for t in part], want)
        for states in ("COMPLETE", ["PRUNED", "FAIL"], "INTERRUPTED", "WAITING", "RUNNING"):
            wanted = [states] if isinstance(states, str) else states
            page = reader.page(name, 0, 5, "number", True, state=states)
            want = [t for t in reversed(record.trials) if t.state in wanted]
            assert page.total == len(want)
            _same(page.record.trials, want[:5])
        assert page.record.objectives == record.objectives
    assert [t.number for t in reader.page("single", 0, 2, "acc", True).record.trials] == [2, 6]
    with pytest.raises(ValueError, match="choose one of"):
        reader.page("single", order_by="params")
    with pytest.raises(ValueError, match="choose from"):
        reader.page("single", state="DONE")
    with pytest.raises(ValueError, match="offset"):
        reader.page("single", offset=-1)
    with pytest.raises(KeyError, match="studies there"):
        reader.page("nope")


def test_a_poll_returns_exactly_what_changed(storage: Storage) -> None:
    built = _build(storage)
    study, running = built["study"], built["running"]
    reader = StudyReader(storage)
    first = reader.poll("single")
    assert first.reset and not first.live
    _same(first.trials, load_study_record(storage, "single").trials)
    unfinished = {t.number for t in first.trials if t.state in ("INTERRUPTED", "WAITING")}
    assert len(unfinished) == 2

    second = reader.poll("single", Cursor.from_json(first.cursor.to_json()))
    assert not second.reset and {t.number for t in second.trials} == unfinished

    running.report(0.5, 2)  # the running trial reports, then ends; a new trial ends
    storage.add_metrics(trial_id(running), 2, {"acc": 0.5})
    study.tell(running, 0.5)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)  # runs the WAITING one
    new = study.ask()
    storage.add_metrics(trial_id(new), 1, {"acc": 0.1})
    third = reader.poll("single", second.cursor)
    now = load_study_record(storage, "single").trials
    changed = unfinished | {new.number}
    _same(third.trials, [t for t in now if t.number in changed])
    assert {t.number: t.state for t in third.trials}[running.number] == "COMPLETE"

    fourth = reader.poll("single", third.cursor)
    _same(fourth.trials, [t for t in now if t.number == new.number])  # still running

    # A trial committed late (PostgreSQL) below the highest id seen is found too.
    late = trial_id(study.trials[3])
    cursor = fourth.cursor
    hidden = Cursor(
        cursor.study_id, cursor.last_id, tuple(i for i in cursor.recent if i != late), cursor.open
    )
    assert [t.number for t in reader.poll("single", hidden).trials] == [3, new.number]

    plain = reader.poll("plain")
    assert len(plain.trials) == 6 and reader.poll("plain", plain.cursor).trials == []
    assert reader.poll("empty", reader.poll("empty").cursor).trials == []
    assert reader.poll("multi", reader.poll("multi").cursor).trials == []


def test_a_poll_starts_over_when_the_study_is_made_again(storage: Storage) -> None:
    study = _plain(storage)
    reader = StudyReader(storage)
    cursor = reader.poll("plain").cursor
    optuna.delete_study(study_name="plain", storage=storage.optuna)
    again = _plain(storage)  # SQLite may give it the same study id
    poll = reader.poll("plain", cursor)
    assert poll.reset and [t.number for t in poll.trials] == [t.number for t in again.trials]
    assert study is not again


def test_metrics_are_read_in_bulk_by_trial_number(storage: Storage) -> None:
    built = _build(storage)
    trials = built["study"].trials
    want = storage.metrics([trial_id(t) for t in trials])
    reader = StudyReader(storage)
    got = reader.metrics("single")
    assert _norm(got) == _norm({t.number: want[trial_id(t)] for t in trials if want[trial_id(t)]})
    assert _norm(reader.metrics("single", [0, 5], ["odd", "loss"])) == _norm(
        {
            0: {"loss": want[trial_id(trials[0])]["loss"], "odd": [(3, math.nan)]},
            5: {"loss": want[trial_id(trials[5])]["loss"]},
        }
    )


def test_an_unknown_study_is_a_key_error_that_lists_the_studies(storage: Storage) -> None:
    _plain(storage)
    reader = StudyReader(storage)
    for read in (reader.load_record, reader.poll, reader.study, reader.best, reader.metrics):
        with pytest.raises(KeyError, match=r"studies there: \['plain'\]"):
            read("nope")
    assert reader.names() == ["plain"]


def test_nothing_is_read_beyond_a_page(storage: Storage) -> None:
    """A page of 2 reads the rows of 2 trials from each per-trial table, not of all."""
    _build(storage)
    per_trial = ("trial_params", "trial_values", "trial_intermediate_values", "archtune_metrics")
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    engine = storage.optuna.engine
    sa.event.listen(engine, "before_cursor_execute", note)
    try:
        page = StudyReader(storage).page("single", 4, 2, "value", True)
    finally:
        sa.event.remove(engine, "before_cursor_execute", note)
    assert len(page.record.trials) == 2
    for table in per_trial:
        statements = [s for s in seen if f"FROM {table}" in s]
        assert len(statements) == 1, table
        assert "IN (SELECT" not in statements[0], table  # by the page's ids
    assert len(seen) <= 14
