"""Reads for the dashboard beside :mod:`studies.reads`: one trial in full, and a study's
run settings. See :meth:`StudyReader.trial <studies.reads.StudyReader.trial>` (the
outline is :mod:`studies.reads_outline`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from studies import reads_sql as q
from studies.reads_time import shown_time
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

__all__ = ["LINEAGE_ATTR", "TrialDetail", "study_settings", "trial_detail"]

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
        row[1], q.state_name(row[2], live), parts, shown_time(row[3]), shown_time(row[4])
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
