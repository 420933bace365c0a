"""Study-level reads: a study's head (objectives, space, run), live drivers, ``ls`` lines.

Part of the read path (:mod:`studies.reads`). Every function takes an open connection
and reads all studies (or one) with a fixed number of queries: the lines of
``archtune ls`` come from ``GROUP BY`` aggregates over ``trials`` and ``trial_values``,
and only a multi-objective or constrained study has its complete trials' values read
(a front, or a best value among the feasible, is not an SQL aggregate).

Example:
    >>> _run('{"controller": {"name": "tpe"}, "scheduler": "asha"}')["scheduler"]
    'asha'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from optuna.trial import TrialState

from studies import reads_sql as q
from studies.lease import Driver
from studies.objectives import Objectives
from studies.reads_rank import constraint_rows, extreme, optuna_best
from studies.reads_time import shown_time
from studies.records import ATTR_OBJECTIVE, ATTR_RUN, ATTR_SPACE, StudyRecord, StudySummary
from studies.storage import DriverRow


@dataclass
class StudyOverview(StudySummary):
    """One line of ``archtune ls``: :class:`~studies.records.StudySummary` and more.

    ``states`` counts RUNNING trials of a study no live driver runs as INTERRUPTED;
    ``best_value`` and ``front_size`` are those of Optuna 5's ``best_trials``, as
    ``records.list_studies`` gave them: complete trials, infinite values included, the
    feasible ones only (a trial without constraints is feasible, as
    :attr:`TrialRecord.feasible <studies.records.TrialRecord.feasible>` says; Optuna 4
    called it infeasible in a study where other trials have constraints).

    Attributes:
        study_id: Optuna's row id of the study.
        controller: The last run's controller (``"tpe"``, an import path), if recorded.
        scheduler: The last run's scheduler (``"asha"``), if recorded.
        last_activity: The latest start or end of any of its trials.
        live: Whether a live driver runs the study now.
    """

    study_id: int = 0
    controller: str | None = None
    scheduler: str | None = None
    last_activity: datetime | None = None
    live: bool = False


@dataclass
class Head:
    """A study without its trials: its row id, a trial-less record, its run record."""

    study_id: int
    record: StudyRecord
    run: dict[str, Any] = field(default_factory=dict)


def study_id(conn: sa.Connection, name: str, shown: str) -> int:
    """The row id of study ``name``.

    Raises:
        KeyError: no such study; the message lists those in the database ``shown``.
    """
    s = q.studies
    found = conn.scalar(sa.select(s.c.study_id).where(s.c.study_name == name))
    if found is None:
        names = sorted(conn.scalars(sa.select(s.c.study_name)))
        raise KeyError(f"No study {name!r} in {shown}; studies there: {names}.")
    return int(found)


def heads(
    conn: sa.Connection, sid: int | None = None, keys: Sequence[str] = (ATTR_OBJECTIVE,)
) -> dict[int, Head]:
    """Every study's (or study ``sid``'s) :class:`Head`, oldest first, reading only the
    study user attributes ``keys`` (a space is large: ``ls`` leaves it out)."""
    s, d = q.studies, q.study_directions

    def of(table: sa.Table) -> list[Any]:
        return [] if sid is None else [table.c.study_id == sid]

    stmt = sa.select(s.c.study_id, s.c.study_name).where(*of(s)).order_by(s.c.study_id)
    names = dict(conn.execute(stmt).all())
    directions: dict[int, list[Any]] = {i: [] for i in names}
    stmt = sa.select(d.c.study_id, d.c.direction).where(*of(d)).order_by(d.c.objective)
    for i, direction in conn.execute(stmt):
        directions[i].append(direction)
    attrs: dict[int, dict[str, Any]] = {i: {} for i in names}
    for table, wanted in (
        (q.study_user_attributes, keys),
        (q.study_system_attributes, (q.METRIC_NAMES_KEY,)),
    ):
        stmt = sa.select(table.c.study_id, table.c.key, table.c.value_json)
        for i, key, text in conn.execute(stmt.where(table.c.key.in_(wanted), *of(table))):
            if i in attrs:
                attrs[i][key] = json.loads(text)
    out = {}
    for i, name in names.items():
        a = attrs[i]
        objectives = Objectives.from_json(
            a.get(ATTR_OBJECTIVE), directions[i], a.get(q.METRIC_NAMES_KEY)
        )
        space = a.get(ATTR_SPACE)
        record = StudyRecord(
            name=name,
            direction=objectives[0].direction,
            objective=objectives[0].name,
            space=json.loads(space) if isinstance(space, str) else space,
            trials=[],
            objectives=list(objectives.names),
            directions=list(objectives.directions),
        )
        out[i] = Head(i, record, _run(a.get(ATTR_RUN)))
    return out


def live_studies(conn: sa.Connection, sid: int | None = None) -> set[int]:
    """The ids of the studies (of ``sid`` only, if given) that a live driver runs; none
    in a database without archtune's tables (``conn.info["archtune_tables"]``)."""
    if not conn.info.get("archtune_tables", True):
        return set()
    d = DriverRow.__table__
    cols = (d.c.id, d.c.host, d.c.pid, d.c.process_start, d.c.started_at, d.c.beat_at)
    stmt = sa.select(*cols, d.c.study_id)
    if sid is not None:
        stmt = stmt.where(d.c.study_id == sid)
    return {r[6] for r in conn.execute(stmt) if Driver(*r[:6]).alive()}


def complete_values(conn: sa.Connection, sid: int) -> list[tuple[int, list[float]]]:
    """``(trial_id, values)`` of the study's COMPLETE trials, in trial order."""
    t, v = q.trials, q.trial_values
    stmt = (
        sa.select(t.c.trial_id, v.c.value, v.c.value_type)
        .join(v, v.c.trial_id == t.c.trial_id)
        .where(t.c.study_id == sid, t.c.state == TrialState.COMPLETE)
        .order_by(t.c.trial_id, v.c.objective)
    )
    by_id: dict[int, list[float]] = {}
    for trial_id, value, kind in conn.execute(stmt):
        by_id.setdefault(trial_id, []).append(q.decode_float(value, kind))
    return list(by_id.items())


def summaries(conn: sa.Connection) -> list[StudyOverview]:
    """One :class:`StudyOverview` per study, oldest first."""
    found = heads(conn, None, (ATTR_OBJECTIVE, ATTR_RUN))
    live = live_studies(conn)
    states, times = _counts(conn, live)
    extremes = _extremes(conn)
    constrained, infeasible = constraint_rows(conn)
    out = []
    for sid, head in found.items():
        rec, when = head.record, times.get(sid, [])
        controller = head.run.get("controller")
        line = StudyOverview(
            name=rec.name,
            direction=rec.direction,
            objective=rec.objective,
            n_trials=sum(states.get(sid, {}).values()),
            states=states.get(sid, {}),
            best_value=None,
            started=shown_time(min((w[0] for w in when if w[0]), default=None)),
            objectives=rec.objectives,
            directions=rec.directions,
            study_id=sid,
            controller=controller.get("name") if isinstance(controller, dict) else controller,
            scheduler=head.run.get("scheduler"),
            last_activity=shown_time(max((x for w in when for x in w[1:] if x), default=None)),
            live=sid in live,
        )
        objectives = Objectives.parse(rec.objectives, rec.directions)
        if rec.multi or sid in constrained:  # the values themselves are needed
            done = complete_values(conn, sid)
            line.best_value, line.front_size = optuna_best(objectives, done, infeasible)
        else:
            line.best_value = extreme(objectives[0].maximize, extremes.get(sid))
        out.append(line)
    return out


def _counts(
    conn: sa.Connection, live: set[int]
) -> tuple[dict[int, dict[str, int]], dict[int, list[Any]]]:
    """Per study: trials by state (as shown), and per state the first start, last start
    and last end; one ``GROUP BY`` over ``trials``."""
    t = q.trials
    start, end = t.c.datetime_start, t.c.datetime_complete
    stmt = sa.select(
        t.c.study_id,
        t.c.state,
        sa.func.count(),
        sa.func.min(start),
        sa.func.max(start),
        sa.func.max(end),
    ).group_by(t.c.study_id, t.c.state)
    states: dict[int, dict[str, int]] = {}
    times: dict[int, list[Any]] = {}
    for sid, state, n, *when in conn.execute(stmt):
        name = q.state_name(state, sid in live)
        counts = states.setdefault(sid, {})
        counts[name] = counts.get(name, 0) + n
        times.setdefault(sid, []).append(when)
    return states, times


def _extremes(conn: sa.Connection) -> dict[int, dict[str, tuple[float, float]]]:
    """Per study and ``value_type``: the least and greatest first value of its COMPLETE
    trials; one ``GROUP BY`` over ``trial_values``."""
    t, v = q.trials, q.trial_values
    stmt = (
        sa.select(t.c.study_id, v.c.value_type, sa.func.min(v.c.value), sa.func.max(v.c.value))
        .join(v, v.c.trial_id == t.c.trial_id)
        .where(t.c.state == TrialState.COMPLETE, v.c.objective == 0)
        .group_by(t.c.study_id, v.c.value_type)
    )
    out: dict[int, dict[str, tuple[float, float]]] = {}
    for sid, kind, low, high in conn.execute(stmt):
        out.setdefault(sid, {})[kind.name] = (low, high)
    return out


def _run(stored: Any) -> dict[str, Any]:
    """The run record of ``archtune:run`` (a JSON string in a JSON attribute), or {}."""
    try:
        data = json.loads(stored) if isinstance(stored, str) else stored
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
