"""Ranking for the read path: the SQL order of a page, the best trial, the Pareto front.

Two notions of "best" meet here, each kept as its reader expects it:

- a view's (:attr:`StudyRecord.best <studies.records.StudyRecord.best>` and ``front``):
  complete, feasible trials with **finite** values (:func:`best_id`, :func:`front_ids`);
- Optuna's (``Study.best_trials``, what ``archtune ls`` showed): complete, feasible
  trials, infinite values included (:func:`optuna_best`).

A trial is feasible when every constraint it recorded is <= 0 (Optuna's rule); the
constraints are JSON in ``trial_system_attributes``, so :func:`infeasible_ids` reads them
for the trials that have any, one query for all.

Example:
    >>> from studies.objectives import Objectives
    >>> two = Objectives.parse(["acc", "params"], ["maximize", "minimize"])
    >>> done = [(1, [0.9, 100.0]), (2, [0.8, 50.0]), (3, [0.7, 80.0])]
    >>> front_ids(two, done, set()), optuna_best(two, done, {2})
    ([1, 2], (None, 2))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from optuna.trial import TrialState

from studies import reads_sql as q
from studies.objectives import Objectives

ORDERS = ("number", "state", "started", "completed", "duration", "value")
"""What a page sorts by, besides each objective's name."""
_STATE_RANK = {
    TrialState.COMPLETE: 0,
    TrialState.PRUNED: 1,
    TrialState.FAIL: 2,
    TrialState.RUNNING: 3,
    TrialState.WAITING: 4,
}

Done = Sequence[tuple[int, list[float]]]
"""``(trial_id, values)`` of complete trials, in trial order."""


def ordered(objectives: Sequence[str], order_by: str, descending: bool, dialect: str) -> sa.Select:
    """``SELECT trial_id, number, state, datetime_start, datetime_complete`` of trials in
    the order a page asks for (missing values last, ties by number); add the WHERE.

    Raises:
        ValueError: for an order that is neither in :data:`ORDERS` nor an objective.
    """
    t = q.trials
    stmt = sa.select(
        t.c.trial_id, t.c.number, t.c.state, t.c.datetime_start, t.c.datetime_complete
    )
    if order_by in ("value", *objectives) and order_by not in ORDERS[:-1]:
        v = q.trial_values.alias("v")
        index = 0 if order_by == "value" else list(objectives).index(order_by)
        stmt = stmt.outerjoin(v, sa.and_(v.c.trial_id == t.c.trial_id, v.c.objective == index))
        infinity = sa.case(
            (v.c.value_type == q.ValueType.INF_NEG, -1),
            (v.c.value_type == q.ValueType.INF_POS, 1),
            else_=0,
        )
        missing, keys = v.c.value_type.is_(None), [infinity, v.c.value]
    elif order_by in ("number", "state"):
        rank = sa.case(*((t.c.state == s, r) for s, r in _STATE_RANK.items()), else_=5)
        missing, keys = None, [t.c.number] if order_by == "number" else [rank]
    elif order_by in ("started", "completed", "duration"):
        start, end = t.c.datetime_start, t.c.datetime_complete
        key = {"started": start, "completed": end}.get(order_by)
        key = q.seconds_between(dialect, start, end) if key is None else key
        missing, keys = key.is_(None), [key]
    else:
        valid = [*ORDERS, *(o for o in objectives if o not in ORDERS)]
        raise ValueError(f"Cannot sort trials by {order_by!r}; choose one of {valid}.")
    keys = [k.desc() if descending else k.asc() for k in keys]
    return stmt.order_by(*([] if missing is None else [missing]), *keys, t.c.number)


def constraint_rows(conn: sa.Connection, study_id: int | None = None) -> tuple[set[int], set[int]]:
    """``(ids of the studies with any constraint, ids of their infeasible trials)``, all
    studies' or one's, from one query over the constraint rows only."""
    t, a = q.trials, q.trial_system_attributes
    stmt = (
        sa.select(t.c.study_id, a.c.trial_id, a.c.key, a.c.value_json)
        .join(t, t.c.trial_id == a.c.trial_id)
        .where(q.constraint_filter(a), *([] if study_id is None else [t.c.study_id == study_id]))
        .order_by(a.c.key)  # the old list first
    )
    constrained: set[int] = set()
    per_trial: dict[int, dict[str, float]] = {}
    for sid, trial_id, key, text in conn.execute(stmt):
        if key != q.CONSTRAINTS_KEY and not key.startswith(q.CONSTRAINTS_KEY + ":"):
            continue  # SQLite's LIKE ignores case
        constrained.add(sid)
        per_trial.setdefault(trial_id, {}).update(q.constraints_of(key, text))
    bad = {i for i, c in per_trial.items() if any(x > 0 for x in c.values())}
    return constrained, bad


def best_id(
    conn: sa.Connection, study_id: int, maximize: bool, infeasible: set[int]
) -> int | None:
    """The trial :attr:`StudyRecord.best <studies.records.StudyRecord.best>` names: the
    first, in trial order, with the best finite first value among the feasible ones.

    SQL sorts the finite values; of the ``len(infeasible) + 1`` best, the first feasible
    one wins (a sort of a study's complete values, not a read of them all).
    """
    t, v = q.trials, q.trial_values
    stmt = (
        sa.select(t.c.trial_id)
        .join(v, v.c.trial_id == t.c.trial_id)
        .where(
            t.c.study_id == study_id,
            t.c.state == TrialState.COMPLETE,
            v.c.objective == 0,
            v.c.value_type == q.ValueType.FINITE,
        )
        .order_by(v.c.value.desc() if maximize else v.c.value.asc(), t.c.trial_id)
        .limit(len(infeasible) + 1)
    )
    return next((i for i in conn.scalars(stmt) if i not in infeasible), None)


def front_ids(objectives: Objectives, done: Done, infeasible: set[int]) -> list[int]:
    """The trials of :attr:`StudyRecord.front <studies.records.StudyRecord.front>`:
    feasible, every value finite, none dominates them; in trial order."""
    n = len(objectives)
    kept = [
        (i, v)
        for i, v in done
        if i not in infeasible and len(v) == n and all(math.isfinite(x) for x in v)
    ]
    if not kept:
        return []
    mask = objectives.pareto_mask([v for _, v in kept])
    return [i for (i, _), on in zip(kept, mask, strict=True) if on]


def optuna_best(
    objectives: Objectives, done: Done, infeasible: set[int]
) -> tuple[float | None, int]:
    """``(best first value, size of the front)`` as Optuna's ``best_trials`` gives them
    (infinite values count): the value for one objective, the size for several."""
    kept = [v for i, v in done if i not in infeasible and len(v) == len(objectives)]
    if not kept:
        return None, 0
    if objectives.multi:
        return None, int(sum(objectives.pareto_mask(kept)))
    first = [v[0] for v in kept]
    return (max(first) if objectives[0].maximize else min(first)), 0


def extreme(maximize: bool, by_kind: dict[str, tuple[Any, Any]] | None) -> float | None:
    """Optuna's best value from SQL's ``MIN``/``MAX`` of the values, grouped by their
    ``value_type``: an infinity in the right direction wins, then the finite extreme."""
    if not by_kind:
        return None
    win, lose = ("INF_POS", "INF_NEG") if maximize else ("INF_NEG", "INF_POS")
    if win in by_kind:
        return math.inf if maximize else -math.inf
    if "FINITE" in by_kind:
        low, high = by_kind["FINITE"]
        return float(high if maximize else low)
    return (-math.inf if maximize else math.inf) if lose in by_kind else None
