"""Two reads for the dashboard beside :mod:`studies.reads`: one trial in full, and a study's
outline (every trial's number, state, values and times; nothing else).

The outline is what a study page draws first: at 100,000 trials it is two index scans,
where the whole study (params, metrics) takes seconds. See
:meth:`StudyReader.outline <studies.reads.StudyReader.outline>` and
:meth:`StudyReader.trial <studies.reads.StudyReader.trial>`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from studies import reads_sql as q
from studies.records import (
    ATTR_CUT_OFF,
    ATTR_INTERRUPTED,
    ATTR_RESUMED_FROM,
    ATTR_RUN,
    ATTR_TRAINER,
    ATTR_TRAINER_ID,
    TrialRecord,
)
from trainers.base import ATTR_CHECKPOINT

__all__ = ["LINEAGE_ATTR", "TrialDetail", "outline", "study_settings", "trial_detail"]

LINEAGE_ATTR = "archtune:evolution"  # search.evolution's {"parent", "mutated"}
_EXTRA = (ATTR_CHECKPOINT, ATTR_RESUMED_FROM, ATTR_INTERRUPTED, ATTR_CUT_OFF, ATTR_TRAINER_ID)


@dataclass(frozen=True)
class TrialDetail:
    """One trial with what only its own page shows.

    Attributes:
        record: The trial, as every view has it.
        checkpoint: Its last checkpoint directory, if any.
        resumed_from: The number of the stopped trial it went on from.
        parent, mutated: Its evolution parent's number and the decision mutated.
        interrupted: Why its runs were cut off, oldest first.
        cut_off: Whether it failed because it could not go on after an interruption.
        user_attrs: Every other user attribute (a plain Optuna study's own), by key.
    """

    record: TrialRecord
    checkpoint: str | None = None
    resumed_from: int | None = None
    parent: int | None = None
    mutated: str | None = None
    interrupted: list[str] = field(default_factory=list)
    cut_off: bool = False
    user_attrs: dict[str, Any] = field(default_factory=dict)


def trial_detail(
    conn: sa.Connection, sid: int, number: int, live: bool, metrics: bool
) -> TrialDetail | None:
    """Trial ``number`` of study ``sid`` in full, or None if there is none."""
    t = q.trials
    cols = (t.c.trial_id, t.c.number, t.c.state, t.c.datetime_start, t.c.datetime_complete)
    row = conn.execute(sa.select(*cols).where(t.c.study_id == sid, t.c.number == number)).first()
    if row is None:
        return None
    tid = row[0]
    parts = q.details(conn, [tid], (*q.TRIAL_ATTRS, *_EXTRA), metrics=metrics).get(tid, q.Parts())
    record = q.record_of(
        row[1], q.state_name(row[2], live), parts, q.shown_time(row[3]), q.shown_time(row[4])
    )
    ua, sy = q.trial_user_attributes, q.trial_system_attributes
    others = {
        k: json.loads(v)
        for k, v in conn.execute(sa.select(ua.c.key, ua.c.value_json).where(ua.c.trial_id == tid))
        if not k.startswith("archtune:")
    }
    found = sa.select(sy.c.value_json).where(sy.c.trial_id == tid, sy.c.key == LINEAGE_ATTR)
    lineage_json = conn.scalar(found)
    lineage = json.loads(lineage_json) if lineage_json else {}
    a = parts.attrs
    return TrialDetail(
        record=record,
        checkpoint=a.get(ATTR_CHECKPOINT),
        resumed_from=a.get(ATTR_RESUMED_FROM),
        parent=lineage.get("parent") if isinstance(lineage, dict) else None,
        mutated=lineage.get("mutated") if isinstance(lineage, dict) else None,
        interrupted=list(a.get(ATTR_INTERRUPTED) or []),
        cut_off=bool(a.get(ATTR_CUT_OFF)),
        user_attrs=others,
    )


def outline(conn: sa.Connection, sid: int, live: bool) -> list[TrialRecord]:
    """Every trial of study ``sid`` with its number, state, values and times only, in
    number order: one query over ``trials`` and one over ``trial_values``."""
    t, v = q.trials, q.trial_values
    cols = (t.c.trial_id, t.c.number, t.c.state, t.c.datetime_start, t.c.datetime_complete)
    rows = conn.execute(sa.select(*cols).where(t.c.study_id == sid).order_by(t.c.number)).all()
    values: dict[int, dict[int, float]] = {}
    stmt = (
        sa.select(v.c.trial_id, v.c.objective, v.c.value, v.c.value_type)
        .join(t, t.c.trial_id == v.c.trial_id)
        .where(t.c.study_id == sid)
    )
    for rs in conn.execute(stmt).partitions(q.FETCH):
        for tid, objective, value, kind in rs:
            values.setdefault(tid, {})[objective] = q.decode_float(value, kind)
    out = []
    for tid, number, state, start, end in rows:
        parts = q.Parts()
        parts.values = values.get(tid, {})
        out.append(
            q.record_of(
                number, q.state_name(state, live), parts, q.shown_time(start), q.shown_time(end)
            )
        )
    return out


def study_settings(conn: sa.Connection, sid: int) -> dict[str, Any]:
    """What the last run of study ``sid`` was: ``{"run": ..., "trainer": ...}`` as recorded
    (:data:`~studies.records.ATTR_RUN`, :data:`~studies.records.ATTR_TRAINER`), each {}
    when absent (a plain Optuna study)."""
    a = q.study_user_attributes
    keys = {ATTR_RUN: "run", ATTR_TRAINER: "trainer"}
    stmt = sa.select(a.c.key, a.c.value_json).where(a.c.study_id == sid, a.c.key.in_(list(keys)))
    out: dict[str, Any] = {"run": {}, "trainer": {}}
    for key, value_json in conn.execute(stmt):
        value = json.loads(value_json)
        try:
            value = json.loads(value) if isinstance(value, str) else value
        except ValueError:
            continue
        if isinstance(value, dict):
            out[keys[key]] = value
    return out
