"""Every SQL statement an engine runs, counted and timed per window of trials.

Used by :mod:`storage_cost` to find which statement's cost grows with a study.
"""

from __future__ import annotations

import re
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

_IN_LIST = re.compile(r"IN \([^()]*\)")
_SPACES = re.compile(r"\s+")


def normalized(statement: str) -> str:
    """A statement with its whitespace collapsed and expanded ``IN (...)`` lists folded,
    so the same query with other parameters counts as one.

    Example:
        >>> normalized("SELECT a\\n FROM t WHERE id IN (?, ?, ?)")
        'SELECT a FROM t WHERE id IN (...)'
    """
    return _IN_LIST.sub("IN (...)", _SPACES.sub(" ", statement).strip())[:300]


class SqlProfile:
    """Count and time every SQL statement an engine runs, per window of trials.

    ``window`` is set by the caller before each trial; ``stats[statement][window]`` is
    ``[count, seconds]``; ``commits[window]`` counts transactions committed.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.window = 0
        self.stats: dict[str, dict[int, list[float]]] = {}
        self.commits: dict[int, int] = {}
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)
        event.listen(engine, "commit", self._commit)

    def _before(self, conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        conn.info.setdefault("storage_cost_t0", []).append(time.perf_counter())

    def _after(self, conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        took = time.perf_counter() - conn.info["storage_cost_t0"].pop()
        cell = self.stats.setdefault(normalized(statement), {}).setdefault(self.window, [0, 0.0])
        cell[0] += 1
        cell[1] += took

    def _commit(self, conn: Any) -> None:
        self.commits[self.window] = self.commits.get(self.window, 0) + 1

    def summary(self, window: int, trials: int) -> dict[str, Any]:
        """Statements, SQL milliseconds and commits per trial in ``window``."""
        count = sum(w.get(window, [0, 0])[0] for w in self.stats.values())
        seconds = sum(w.get(window, [0, 0])[1] for w in self.stats.values())
        return {
            "statements_per_trial": round(count / trials, 2),
            "sql_ms_per_trial": round(1e3 * seconds / trials, 3),
            "commits_per_trial": round(self.commits.get(window, 0) / trials, 2),
        }

    def growth(self, first: int, last: int, trials: int, top: int = 8) -> list[dict[str, Any]]:
        """The ``top`` statements by SQL time per trial in window ``last``, with the same
        figures in window ``first``."""
        rows = []
        for statement, windows in self.stats.items():
            n0, s0 = windows.get(first, [0, 0.0])
            n1, s1 = windows.get(last, [0, 0.0])
            rows.append(
                {
                    "statement": statement,
                    "calls_per_trial_first": round(n0 / trials, 2),
                    "calls_per_trial_last": round(n1 / trials, 2),
                    "ms_per_trial_first": round(1e3 * s0 / trials, 3),
                    "ms_per_trial_last": round(1e3 * s1 / trials, 3),
                }
            )
        rows.sort(key=lambda r: -r["ms_per_trial_last"])
        return rows[:top]
