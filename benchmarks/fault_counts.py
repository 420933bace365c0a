"""What a study holds after a fault, counted from its SQLite file and the trainer's log.

:mod:`faults` injects the faults; this module only reads: the trainer's log lines
(:class:`LogLine`), the study's trials, attributes and metric rows, and the file's
``PRAGMA integrity_check``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class LogLine:
    """One line of the trainer's log."""

    kind: str  # "start", "epoch" or "saved"
    x: float
    n: int  # the epoch it went on from (start), or the epoch trained or saved
    pid: int
    t: float


def read_log(directory: Path) -> list[LogLine]:
    """The trainer's log in ``directory``, in order (empty before the first trial)."""
    path = directory / "log"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 5:  # a line cut short by a kill is skipped
            kind, x, n, pid, t = parts
            out.append(LogLine(kind, float(x), int(n), int(pid), float(t)))
    return out


# The study, counted -------------------------------------------------------------------
def _rows(db: Path, query: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(db, timeout=5)) as c:
        return c.execute(query).fetchall()


def study_state(db: Path) -> tuple[int, bool]:
    """``(COMPLETE trials, whether a RUNNING trial has a checkpoint recorded)``."""
    try:
        complete = _rows(db, "SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'")[0][0]
        running = _rows(
            db,
            "SELECT COUNT(*) FROM trials t JOIN trial_user_attributes a USING (trial_id) "
            "WHERE t.state = 'RUNNING' AND a.key = 'archtune:checkpoint'",
        )[0][0]
    except sqlite3.Error:  # not created yet, or busy
        return 0, False
    return complete, running > 0


def count_log(log: Sequence[LogLine]) -> dict[str, Any]:
    """What the trainer's log says was trained: starts from scratch after an epoch of the
    configuration was saved (its checkpoint reported: this should never happen), starts
    from an older checkpoint than the last one saved, epochs trained twice (of which those
    in flight: trained, not yet saved, when the fault came), starts from a checkpoint.

    Example:
        >>> log = [LogLine("start", 0.5, 0, 1, 0.0), LogLine("epoch", 0.5, 1, 1, 1.0),
        ...        LogLine("start", 0.5, 0, 2, 2.0), LogLine("epoch", 0.5, 1, 2, 3.0)]
        >>> c = count_log(log)
        >>> c["trained_from_scratch_again"], c["epochs_trained_twice"], c["in_flight_lost"]
        (0, 1, 1)
    """
    trained: dict[float, list[int]] = {}
    saved: dict[float, set[int]] = {}
    scratch = behind = went_on = in_flight = 0
    for line in log:
        done = saved.setdefault(line.x, set())
        if line.kind == "epoch":
            if line.n in trained.get(line.x, []) and line.n not in done:
                in_flight += 1
            trained.setdefault(line.x, []).append(line.n)
        elif line.kind == "saved":
            done.add(line.n)
        elif line.n == 0 and done:
            scratch += 1
        elif line.n > 0:
            went_on += 1
            behind += bool(done) and line.n < max(done)
    return {
        "trained": set(trained),
        "trained_from_scratch_again": scratch,
        "went_on_from_older_checkpoint": behind,
        "epochs_trained_twice": sum(len(v) - len(set(v)) for v in trained.values()),
        "in_flight_lost": in_flight,
        "went_on_from_checkpoint": went_on,
    }


def count(db: Path, log: Sequence[LogLine], num_trials: int, epochs: int) -> dict[str, Any]:
    """What the study holds after a fault and its recovery (see the module doc)."""
    states: dict[str, int] = dict(_rows(db, "SELECT state, COUNT(*) FROM trials GROUP BY state"))
    xs = [r[0] for r in _rows(db, "SELECT param_value FROM trial_params WHERE param_name = 'x'")]
    attrs = _rows(db, "SELECT trial_id, key, value_json FROM trial_user_attributes")
    curves = _rows(
        db,
        "SELECT t.trial_id, COUNT(DISTINCT v.step) FROM trials t LEFT JOIN "
        "trial_intermediate_values v USING (trial_id) WHERE t.state = 'COMPLETE' "
        "GROUP BY t.trial_id",
    )
    doubled_rows = _rows(
        db,
        "SELECT COUNT(*) FROM (SELECT trial_id, step, name FROM archtune_metrics "
        "GROUP BY trial_id, step, name HAVING COUNT(*) > 1)",
    )[0][0]
    integrity = _rows(db, "PRAGMA integrity_check")[0][0]
    log_counts = count_log(log)
    complete = states.get("COMPLETE", 0)
    restarts = [json.loads(v) for _, k, v in attrs if k == "archtune:restarts"]
    return {
        "states": states,
        "complete": complete,
        "lost": max(0, num_trials - complete),
        "configs_in_two_trials": len(xs) - len(set(xs)),
        **{k: v for k, v in log_counts.items() if k != "trained"},
        "marked_interrupted": sum(k == "archtune:interrupted" for _, k, _ in attrs),
        "restarts_recorded": sum(len(r) for r in restarts),
        "repeats_answered": sum(k == "archtune:repeat_of" for _, k, _ in attrs),
        "whole_curves": sum(n == epochs for _, n in curves) == complete,
        "metric_rows_recorded_twice": doubled_rows,
        "trained_but_not_in_study": len(log_counts["trained"] - set(xs)),
        "integrity_check": integrity,
    }
