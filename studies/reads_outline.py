"""A study's outline: every trial's number, state, values and times, as columns.

What a study page draws first. It is two index scans (``trials``, ``trial_values``) read
straight into NumPy arrays, with no object per trial: at 100,000 trials building a
:class:`~studies.records.TrialRecord` each took 3 s here, the arrays 0.3 s. See
:meth:`StudyReader.outline <studies.reads.StudyReader.outline>`.

Example:
    >>> import numpy as np
    >>> from studies.records import StudyRecord
    >>> o = StudyOutline(
    ...     StudyRecord("s", "minimize", "loss", None, []),
    ...     number=np.array([0, 1]), state=np.array(["COMPLETE", "FAIL"]),
    ...     values=np.array([[0.5], [np.nan]]),
    ...     started=np.array(["2026-01-01T00:00", "NaT"], dtype="datetime64[us]"),
    ...     completed=np.array(["2026-01-01T00:01", "NaT"], dtype="datetime64[us]"))
    >>> len(o), o.numbers("COMPLETE").tolist(), o.name, o.objective
    (2, [0], 's', 'loss')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa

from studies import reads_sql as q
from studies.reads_time import shown_times64
from studies.records import StudyRecord

__all__ = ["StudyOutline", "read_outline"]

_NAN = {"INF_POS": math.inf, "INF_NEG": -math.inf}


@dataclass(frozen=True, eq=False)
class StudyOutline:
    """Every trial of a study, as columns, in number order.

    Attributes:
        study: The study's head: name, objectives, directions, run (``trials`` is empty).
        number: Trial numbers, ascending (int64).
        state: Each trial's state as views show it (``INTERRUPTED``: RUNNING in Optuna
            but no live driver runs the study).
        values: ``(trials, objectives)`` float64: each objective's final value as
            Optuna keeps it (a PRUNED trial's last report), NaN where there is none.
        started, completed: ``datetime64[us]`` in naive local time, as
            :class:`~studies.records.TrialRecord` has them; NaT where unset.
    """

    study: StudyRecord
    number: np.ndarray
    state: np.ndarray
    values: np.ndarray
    started: np.ndarray
    completed: np.ndarray

    def __len__(self) -> int:
        return len(self.number)

    @property
    def name(self) -> str:
        return self.study.name

    @property
    def objective(self) -> str:
        return self.study.objective

    @property
    def objectives(self) -> list[str]:
        return self.study.objectives

    @property
    def direction(self) -> str:
        return self.study.direction

    @property
    def directions(self) -> list[str]:
        return self.study.directions

    @property
    def multi(self) -> bool:
        return self.study.multi

    def numbers(self, state: str) -> np.ndarray:
        """Numbers of the trials in ``state``."""
        return self.number[self.state == state]


def read_outline(conn: sa.Connection, sid: int, live: bool, study: StudyRecord) -> StudyOutline:
    """The outline of study ``sid`` (``study``: its head; ``live``: a driver runs it)."""
    t, v = q.trials, q.trial_values
    text = sa.String()
    cols = (
        t.c.trial_id,
        t.c.number,
        sa.type_coerce(t.c.state, text),
        sa.type_coerce(t.c.datetime_start, text),
        sa.type_coerce(t.c.datetime_complete, text),
    )
    rows = conn.execute(sa.select(*cols).where(t.c.study_id == sid).order_by(t.c.number)).all()
    ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    state = np.array([r[2] for r in rows], dtype=object)
    if not live:
        state[state == "RUNNING"] = "INTERRUPTED"
    k = max(1, len(study.objectives))
    values = np.full((len(rows), k), np.nan)
    by_id = np.argsort(ids)
    stmt = (
        sa.select(v.c.trial_id, v.c.objective, v.c.value, sa.type_coerce(v.c.value_type, text))
        .join(t, t.c.trial_id == v.c.trial_id)
        .where(t.c.study_id == sid)
    )
    for part in conn.execute(stmt).partitions(q.FETCH):
        tid = np.fromiter((r[0] for r in part), np.int64, len(part))
        pos = np.minimum(np.searchsorted(ids, tid, sorter=by_id), max(len(ids) - 1, 0))
        at = by_id[pos] if len(ids) else pos
        # A trial made between the two queries (no snapshot spans them) is not read.
        known = (ids[at] == tid) if len(ids) else np.zeros(len(tid), dtype=bool)
        for i, ok, (_, objective, value, kind) in zip(at.tolist(), known, part, strict=True):
            if ok and objective < k:
                finite = kind == "FINITE" and value is not None
                values[i, objective] = float(value) if finite else _NAN.get(kind, math.nan)
    return StudyOutline(
        study=study,
        number=np.fromiter((r[1] for r in rows), np.int64, len(rows)),
        state=state.astype(str) if len(rows) else np.array([], dtype=str),
        values=values,
        started=shown_times64(_times([r[3] for r in rows])),
        completed=shown_times64(_times([r[4] for r in rows])),
    )


def _times(stored: list[Any]) -> np.ndarray:
    """Stored times (ISO text from SQLite, ``datetime`` from other drivers) as
    ``datetime64[us]``; None is NaT."""
    if any(isinstance(s, datetime) and s.tzinfo is not None for s in stored):
        stored = [s.replace(tzinfo=None) if isinstance(s, datetime) else s for s in stored]
    return np.array(stored, dtype="datetime64[us]")
