"""Optuna's RDB tables as the read path sees them, and the bulk queries over them.

:mod:`studies.reads` answers every view from these. The tables are declared here again,
with only the columns read: the column names, the enum types' names and members and the
way non-finite floats and times are stored are Optuna's documented RDB schema (Optuna
migrates it with Alembic, and it has not changed these since schema version 12), and
``tests/studies/test_reads.py`` pins each of them against the installed Optuna's own
models, so a release that changes one fails a test, not a page. The enum types carry
Optuna's names (``trialstate``, ...) because PostgreSQL stores them as native enums, which
a comparison must cast to.

Every query selects trials by an indexed column: a study's trials by
``trials.study_id`` (Optuna's ``ix_trials_study_id``), a set of trials by their ids,
and every per-trial table by ``trial_id``, the first column of its unique
``(trial_id, ...)`` constraint. Rows of many trials come in one query per table, never
one per trial; a whole study's (3.4 million metric rows at 100,000 trials) as the DBAPI's
plain tuples in trial order, one dict built per trial, the garbage collector paused
(:func:`plain`, :func:`details`, :func:`gc_paused`). Datetimes become what Optuna's
``FrozenTrial`` holds: naive local time (an Optuna that stores UTC, 5.1 on, converts; an
older one stored local time).

Example:
    >>> decode_float(None, "INF_NEG"), decode_float(0.5, "FINITE")
    (-inf, 0.5)
"""

from __future__ import annotations

import enum
import gc
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from itertools import chain, groupby
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from optuna.distributions import json_to_distribution
from optuna.study import StudyDirection
from optuna.trial import TrialState

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
from studies.storage import MetricRow

_META = sa.MetaData()
CHUNK = 500  # trial ids per IN (...): far below every database's limit on parameters
FETCH = 10_000  # rows fetched at a time
_FIRST = itemgetter(0)  # a row's trial id


class ValueType(enum.Enum):
    """``trial_values.value_type``: how a final value is stored (``value`` NULL if infinite)."""

    FINITE = 1
    INF_POS = 2
    INF_NEG = 3


class IntermediateType(enum.Enum):
    """``trial_intermediate_values.intermediate_value_type`` (NaN too: NULL value)."""

    FINITE = 1
    INF_POS = 2
    INF_NEG = 3
    NAN = 4


def _enum(cls: type[enum.Enum], name: str) -> sa.Enum:
    return sa.Enum(cls, name=name, create_constraint=False, validate_strings=False)


def _attrs(name: str, owner: str) -> sa.Table:
    return sa.Table(
        name,
        _META,
        sa.Column(f"{name[:-1]}_id", sa.Integer, primary_key=True),
        sa.Column(owner, sa.Integer),
        sa.Column("key", sa.String(512)),
        sa.Column("value_json", sa.Text),
    )


studies = sa.Table(
    "studies",
    _META,
    sa.Column("study_id", sa.Integer, primary_key=True),
    sa.Column("study_name", sa.String(512)),
)
study_directions = sa.Table(
    "study_directions",
    _META,
    sa.Column("study_direction_id", sa.Integer, primary_key=True),
    sa.Column("direction", _enum(StudyDirection, "studydirection")),
    sa.Column("study_id", sa.Integer),
    sa.Column("objective", sa.Integer),
)
study_user_attributes = _attrs("study_user_attributes", "study_id")
study_system_attributes = _attrs("study_system_attributes", "study_id")
trials = sa.Table(
    "trials",
    _META,
    sa.Column("trial_id", sa.Integer, primary_key=True),
    sa.Column("number", sa.Integer),
    sa.Column("study_id", sa.Integer),
    sa.Column("state", _enum(TrialState, "trialstate")),
    sa.Column("datetime_start", sa.DateTime),
    sa.Column("datetime_complete", sa.DateTime),
)
trial_params = sa.Table(
    "trial_params",
    _META,
    sa.Column("param_id", sa.Integer, primary_key=True),
    sa.Column("trial_id", sa.Integer),
    sa.Column("param_name", sa.String(512)),
    sa.Column("param_value", sa.Float(precision=53)),
    sa.Column("distribution_json", sa.Text),
)
trial_values = sa.Table(
    "trial_values",
    _META,
    sa.Column("trial_value_id", sa.Integer, primary_key=True),
    sa.Column("trial_id", sa.Integer),
    sa.Column("objective", sa.Integer),
    sa.Column("value", sa.Float(precision=53)),
    sa.Column("value_type", _enum(ValueType, "trialvaluetype")),
)
trial_intermediate_values = sa.Table(
    "trial_intermediate_values",
    _META,
    sa.Column("trial_intermediate_value_id", sa.Integer, primary_key=True),
    sa.Column("trial_id", sa.Integer),
    sa.Column("step", sa.Integer),
    sa.Column("intermediate_value", sa.Float(precision=53)),
    sa.Column("intermediate_value_type", _enum(IntermediateType, "trialintermediatevaluetype")),
)
trial_user_attributes = _attrs("trial_user_attributes", "trial_id")
trial_system_attributes = _attrs("trial_system_attributes", "trial_id")

METRIC_NAMES_KEY = "study:metric_names"  # Optuna's study system attribute (set_metric_names)
CONSTRAINTS_KEY = "constraints"  # Optuna 4's list; Optuna 5 writes "constraints:<name>" keys
UNFINISHED = (TrialState.RUNNING, TrialState.WAITING)
TRIAL_ATTRS = (
    ATTR_ERROR,
    ATTR_REJECTED,
    ATTR_TRACEBACK,
    ATTR_ARCH_ID,
    ATTR_REPEAT_OF,
    ATTR_STATS,
    ATTR_NODE,
    ATTR_RESTARTS,
    ATTR_OVERHEAD,
)
"""The trial user attributes a :class:`~studies.records.TrialRecord` holds; no other is read."""


def decode_float(value: float | None, kind: enum.Enum | str) -> float:
    """The float a value row holds; ``kind`` is its ``*_type`` (member or name)."""
    name = kind if isinstance(kind, str) else kind.name
    if name == "FINITE":
        return float(value) if value is not None else math.nan
    return {"INF_POS": math.inf, "INF_NEG": -math.inf}.get(name, math.nan)


class ParamDecoder:
    """Turns ``trial_params`` rows into the values ``suggest_*`` returned.

    Each distinct ``distribution_json`` is parsed once (a study has a handful); a bulk
    read looks its converter up in :attr:`seen` first, without a call.
    """

    def __init__(self) -> None:
        self.seen: dict[str, Callable[[float], Any]] = {}

    def __call__(self, stored: float, distribution_json: str) -> Any:
        return (self.seen.get(distribution_json) or self.load(distribution_json))(stored)

    def load(self, distribution_json: str) -> Callable[[float], Any]:
        """The distribution's ``to_external_repr``, parsed and kept."""
        convert = json_to_distribution(distribution_json).to_external_repr
        self.seen[distribution_json] = convert
        return convert


Selection = Sequence[int] | sa.Select
"""Which trials: their ids, or a ``SELECT`` of ``trials.trial_id`` (a whole study)."""


def in_study(study_id: int) -> sa.Select:
    """The ids of a study's trials, as a subquery (never a list of 100,000 parameters)."""
    return sa.select(trials.c.trial_id).where(trials.c.study_id == study_id)


def each(
    conn: sa.Connection, which: Selection, column: sa.Column, build: Callable[[Any], sa.Select]
) -> Iterator[sa.Row]:
    """Rows of ``build(column IN which)``: one query for a subquery, one per chunk of ids;
    fetched many at a time (row by row costs more than the query)."""
    for statement in _statements(which, column, build):
        for rows in conn.execute(statement).partitions(FETCH):
            yield from rows


def plain(
    conn: sa.Connection, which: Selection, column: sa.Column, build: Callable[[Any], sa.Select]
) -> Iterator[tuple[Any, ...]]:
    """:func:`each`, but the rows as the DBAPI gives them: plain tuples, no SQLAlchemy
    ``Row`` made of each (2 s of CPU for the 3.4 million metric rows of a 100,000-trial
    study). Only for columns that need no result processing, which are then the same
    values: integers, floats, text (an enum column :func:`as_text`; never a datetime,
    which SQLite stores as text). It reads the DBAPI cursor itself: not for a statement
    with ``stream_results`` or ``yield_per``, whose rows SQLAlchemy buffers ahead."""
    statements = _statements(which, column, build)
    return chain.from_iterable(batch for s in statements for batch in _batches(conn, s))


def as_text(column: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    """An enum column read as its member's name, as stored (no conversion to the member)."""
    return sa.type_coerce(column, sa.String())


def _statements(
    which: Selection, column: sa.Column, build: Callable[[Any], sa.Select]
) -> list[sa.Select]:
    if isinstance(which, sa.Select):
        return [build(column.in_(which))]
    ids = list(which)
    return [build(column.in_(ids[i : i + CHUNK])) for i in range(0, len(ids), CHUNK)]


def _batches(conn: sa.Connection, statement: sa.Select) -> Iterator[list[tuple[Any, ...]]]:
    result = conn.execute(statement)
    try:
        fetch = result.cursor.fetchmany
        while batch := fetch(FETCH):
            yield batch
    finally:
        result.close()


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a read builds millions of small lists,
    dicts and tuples, none of them in a cycle: every 700 of them set off a collection, and
    the older generations' walk everything built so far again (a fifth of the CPU time of
    a whole study's read). Mercurial's ``util.nogc`` does the same. The collector comes
    back on after, if it was on; its next collection walks the new objects once. The
    collector is the process's: in the dashboard a background read pauses it for the
    request threads too (for the seconds a 100,000-trial read takes), which only delays
    collections."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def constraints_of(key: str, value_json: str) -> dict[str, float]:
    """The constraint(s) one system attribute holds, as ``FrozenTrial.constraints`` has them."""
    if key == CONSTRAINTS_KEY:
        return {str(i): c for i, c in enumerate(json.loads(value_json) or [])}
    return {key[len(CONSTRAINTS_KEY) + 1 :]: json.loads(value_json)}


def constraint_filter(table: sa.Table) -> sa.ColumnElement[bool]:
    """Rows of a system-attribute table that hold constraints (either format)."""
    return sa.or_(table.c.key == CONSTRAINTS_KEY, table.c.key.like(CONSTRAINTS_KEY + ":%"))


class Parts:
    """What the per-trial tables hold of one trial (filled by :func:`details`)."""

    __slots__ = ("attrs", "constraints", "intermediate", "metrics", "params", "values")

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.values: dict[int, float] = {}
        self.intermediate: dict[int, float] = {}
        self.attrs: dict[str, Any] = {}
        self.constraints: dict[str, float] = {}
        self.metrics: dict[str, list[tuple[int, float]]] = {}


def details(
    conn: sa.Connection,
    which: Selection,
    attr_keys: Sequence[str] = TRIAL_ATTRS,
    *,
    metrics: bool = True,
) -> dict[int, Parts]:
    """Params, values, intermediate values, the user attributes ``attr_keys``, constraints
    and (``metrics``) archtune's metric rows of the trials ``which``, by trial id: one query
    per table for all of them, its rows in trial order, one dict built per trial."""
    out: dict[int, Parts] = {}

    def by_trial(rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[Parts, Iterator[Any]]]:
        for trial_id, group in groupby(rows, _FIRST):
            p = out.get(trial_id)
            if p is None:
                p = out[trial_id] = Parts()
            yield p, group

    def read(table: sa.Table, *cols: Any, where: Any = (), order: Any = ()) -> Iterator[Any]:
        tid = table.c.trial_id
        stmt = sa.select(tid, *cols).order_by(tid, *order)
        return by_trial(plain(conn, which, tid, lambda w: stmt.where(w, *where)))

    decode = ParamDecoder()
    seen = decode.seen

    tp, tv, ti = trial_params, trial_values, trial_intermediate_values
    params = (tp.c.param_name, tp.c.param_value, tp.c.distribution_json)
    for p, rows in read(tp, *params, order=[tp.c.param_id]):  # Optuna's order: param_id
        p.params = {k: (seen.get(j) or decode.load(j))(v) for _, k, v, j in rows}
    for p, rows in read(tv, tv.c.objective, tv.c.value, as_text(tv.c.value_type)):
        p.values = {o: decode_float(v, kind) for _, o, v, kind in rows}
    reported = (ti.c.step, ti.c.intermediate_value, as_text(ti.c.intermediate_value_type))
    for p, rows in read(ti, *reported, order=[ti.c.step]):
        p.intermediate = {
            step: float(v) if kind == "FINITE" and v is not None else decode_float(v, kind)
            for _, step, v, kind in rows
        }
    ua, sy = trial_user_attributes, trial_system_attributes
    keyed = ua.c.key.in_(list(attr_keys))
    for p, rows in read(ua, ua.c.key, ua.c.value_json, where=[keyed]):
        p.attrs = {k: json.loads(v) for _, k, v in rows}
    only = constraint_filter(sy)  # by key: the old list ("constraints") first
    for p, rows in read(sy, sy.c.key, sy.c.value_json, where=[only], order=[sy.c.key]):
        for _, k, v in rows:
            p.constraints.update(constraints_of(k, v))
    if metrics:
        for trial_id, named in metric_rows(conn, which).items():
            p = out.get(trial_id)
            if p is None:
                p = out[trial_id] = Parts()
            p.metrics = named
    return out


def metric_rows(
    conn: sa.Connection, which: Selection, names: Sequence[str] | None = None
) -> dict[int, dict[str, list[tuple[int, float]]]]:
    """``{trial_id: {name: [(step, value), ...]}}`` of archtune's metric rows, in step order
    (the order :meth:`studies.storage.Storage.metrics` gives), optionally only ``names``.

    The bulk of a whole study (34 rows a trial at 10 epochs): the query returns the kind
    (``finite``, ``nan``, ...) only where the value is not a finite float, as SQL NULL
    otherwise, and each row costs one tuple and one append here."""
    m = MetricRow.__table__
    odd = sa.case((sa.and_(m.c.kind == "finite", m.c.value.is_not(None)), None), else_=m.c.kind)
    cols = (m.c.trial_id, m.c.step, m.c.name, m.c.value, odd)
    named = (m.c.name.in_(list(names)),) if names is not None else ()
    stmt = sa.select(*cols).order_by(m.c.trial_id, m.c.step, m.c.id)
    rows = plain(conn, which, m.c.trial_id, lambda w: stmt.where(w, *named))
    out: dict[int, dict[str, list[tuple[int, float]]]] = {}
    for trial_id, group in groupby(rows, _FIRST):
        trial = out.get(trial_id)
        if trial is None:
            trial = out[trial_id] = {}
        for _, step, name, value, kind in group:
            series = trial.get(name)
            if series is None:
                series = trial[name] = []
            series.append((step, value) if kind is None else (step, _metric(value, kind)))
    return out


def _metric(value: float | None, kind: str) -> float:
    if kind == "finite":
        return value if value is not None else math.nan
    return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}.get(kind, math.nan)


def seconds_between(
    dialect: str, start: sa.ColumnElement[Any], end: sa.ColumnElement[Any]
) -> sa.ColumnElement[float]:
    """SQL for the seconds from ``start`` to ``end`` (NULL if either is)."""
    if dialect == "sqlite":
        return (sa.func.julianday(end) - sa.func.julianday(start)) * 86400.0
    if dialect == "postgresql":
        return sa.extract("epoch", end - start)
    return sa.func.timestampdiff(sa.literal_column("MICROSECOND"), start, end) / 1e6


def state_name(state: TrialState, live: bool) -> str:
    """A trial's state as a view shows it: RUNNING is INTERRUPTED when no driver is live."""
    return "INTERRUPTED" if state == TrialState.RUNNING and not live else state.name


def record_of(
    number: int,
    state: str,
    parts: Parts,
    started: datetime | None = None,
    completed: datetime | None = None,
) -> TrialRecord:
    """A :class:`~studies.records.TrialRecord` from what the tables hold of a trial, field
    for field as ``records.trial_record`` makes one from a ``FrozenTrial``.

    Example:
        >>> parts = Parts()
        >>> parts.values, parts.attrs = {0: 0.5}, {"archtune:rejected": "too big"}
        >>> r = record_of(3, "COMPLETE", parts)
        >>> r.value, r.values, r.error
        (0.5, [0.5], 'rejected: too big')
    """
    a = parts.attrs
    values = [parts.values[k] for k in sorted(parts.values)]
    rejected = f"rejected: {a[ATTR_REJECTED]}" if ATTR_REJECTED in a else None
    return TrialRecord(
        number=number,
        state=state,
        params=dict(parts.params),
        value=values[0] if values and state in ("COMPLETE", "PRUNED") else None,
        intermediate=dict(parts.intermediate),
        metrics=dict(parts.metrics),
        error=a.get(ATTR_ERROR) or rejected,
        traceback=a.get(ATTR_TRACEBACK),
        started=started,
        completed=completed,
        arch_id=a.get(ATTR_ARCH_ID),
        repeat_of=a.get(ATTR_REPEAT_OF),
        values=values if values and state == "COMPLETE" else None,
        stats=a.get(ATTR_STATS),
        constraints=list(parts.constraints.values()),
        node=a.get(ATTR_NODE),
        restarts=list(a.get(ATTR_RESTARTS) or []),
        overhead=a.get(ATTR_OVERHEAD),
    )
