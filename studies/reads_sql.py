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
one per trial. Datetimes become what Optuna's ``FrozenTrial`` holds: naive local time
(an Optuna that stores UTC, 5.1 on, converts; an older one stored local time).

Example:
    >>> decode_float(None, "INF_NEG"), decode_float(0.5, "FINITE")
    (-inf, 0.5)
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from importlib import import_module
from typing import Any

import sqlalchemy as sa
from optuna.distributions import BaseDistribution, json_to_distribution
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

# Optuna 5.1 stores naive UTC and shows naive local time; before, it stored local time
# (optuna#6776). Its model says which: the one private name read here, pinned by a test.
_STORES_UTC = hasattr(
    import_module("optuna.storages._rdb.models").TrialModel, "_datetime_start_utc"
)


def shown_time(stored: datetime | None) -> datetime | None:
    """A stored trial time as Optuna's ``FrozenTrial`` shows it (naive local time)."""
    if stored is None or not _STORES_UTC:
        return stored
    return stored.replace(tzinfo=timezone.utc).astimezone().replace(tzinfo=None)


def decode_float(value: float | None, kind: enum.Enum | str) -> float:
    """The float a value row holds; ``kind`` is its ``*_type`` (member or name)."""
    name = kind if isinstance(kind, str) else kind.name
    if name == "FINITE":
        return float(value) if value is not None else math.nan
    return {"INF_POS": math.inf, "INF_NEG": -math.inf}.get(name, math.nan)


class ParamDecoder:
    """Turns ``trial_params`` rows into the values ``suggest_*`` returned.

    Each distinct ``distribution_json`` is parsed once (a study has a handful).
    """

    def __init__(self) -> None:
        self._seen: dict[str, BaseDistribution] = {}

    def __call__(self, stored: float, distribution_json: str) -> Any:
        dist = self._seen.get(distribution_json)
        if dist is None:
            dist = self._seen[distribution_json] = json_to_distribution(distribution_json)
        return dist.to_external_repr(stored)


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
    if isinstance(which, sa.Select):
        statements = [build(column.in_(which))]
    else:
        ids = list(which)
        statements = [build(column.in_(ids[i : i + CHUNK])) for i in range(0, len(ids), CHUNK)]
    for statement in statements:
        for rows in conn.execute(statement).partitions(FETCH):
            yield from rows


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
    per table for all of them."""
    out: dict[int, Parts] = {}

    def part(trial_id: int) -> Parts:
        p = out.get(trial_id)
        if p is None:
            p = out[trial_id] = Parts()
        return p

    decode = ParamDecoder()
    tp, tv, ti = trial_params, trial_values, trial_intermediate_values
    cols = (tp.c.trial_id, tp.c.param_name, tp.c.param_value, tp.c.distribution_json)
    by_id = tp.c.param_id  # Optuna orders a trial's params by param_id
    for r in each(conn, which, tp.c.trial_id, lambda w: sa.select(*cols).where(w).order_by(by_id)):
        part(r[0]).params[r[1]] = decode(r[2], r[3])
    cols = (tv.c.trial_id, tv.c.objective, tv.c.value, tv.c.value_type)
    for r in each(conn, which, tv.c.trial_id, lambda w: sa.select(*cols).where(w)):
        part(r[0]).values[r[1]] = decode_float(r[2], r[3])
    cols = (ti.c.trial_id, ti.c.step, ti.c.intermediate_value, ti.c.intermediate_value_type)
    for r in each(
        conn, which, ti.c.trial_id, lambda w: sa.select(*cols).where(w).order_by(ti.c.step)
    ):
        part(r[0]).intermediate[r[1]] = decode_float(r[2], r[3])
    ua = trial_user_attributes
    keyed = ua.c.key.in_(list(attr_keys))
    cols = (ua.c.trial_id, ua.c.key, ua.c.value_json)
    for r in each(conn, which, ua.c.trial_id, lambda w: sa.select(*cols).where(w, keyed)):
        part(r[0]).attrs[r[1]] = json.loads(r[2])
    sa_ = trial_system_attributes  # by key: the old list ("constraints") first
    cols = (sa_.c.trial_id, sa_.c.key, sa_.c.value_json)
    only = constraint_filter(sa_)
    rows = each(
        conn, which, sa_.c.trial_id, lambda w: sa.select(*cols).where(w, only).order_by(sa_.c.key)
    )
    for r in rows:
        part(r[0]).constraints.update(constraints_of(r[1], r[2]))
    if metrics:
        for trial_id, named in metric_rows(conn, which).items():
            part(trial_id).metrics = named
    return out


def metric_rows(
    conn: sa.Connection, which: Selection, names: Sequence[str] | None = None
) -> dict[int, dict[str, list[tuple[int, float]]]]:
    """``{trial_id: {name: [(step, value), ...]}}`` of archtune's metric rows, in step order
    (the order :meth:`studies.storage.Storage.metrics` gives), optionally only ``names``."""
    m = MetricRow.__table__
    cols = (m.c.trial_id, m.c.step, m.c.name, m.c.value, m.c.kind)
    named = (m.c.name.in_(list(names)),) if names is not None else ()
    out: dict[int, dict[str, list[tuple[int, float]]]] = {}

    def build(w: Any) -> sa.Select:
        return sa.select(*cols).where(w, *named).order_by(m.c.trial_id, m.c.step, m.c.id)

    trial: dict[str, list[tuple[int, float]]] = {}
    last = None
    for trial_id, step, name, value, kind in each(conn, which, m.c.trial_id, build):
        if trial_id != last:  # rows come by trial
            trial, last = out.setdefault(trial_id, {}), trial_id
        series = trial.get(name)
        if series is None:
            series = trial[name] = []
        finite = kind == "finite" and value is not None
        series.append((step, value if finite else _metric(value, kind)))
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
