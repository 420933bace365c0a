"""Replay a search on a tabular benchmark, with simulated time and no training.

Two ways to spend a budget, both driven through ``optuna.create_study(sampler=...)`` and
:func:`spaces.optuna_adapter.suggest`, with the table's curves standing in for training:

- :func:`run_full`: every proposal is trained for the table's full ``epochs``; its
  final validation accuracy is the objective. Each proposal counts as an evaluation and
  costs its training seconds, repeats included (a controller that proposes an
  architecture twice pays twice, as it would in a real study).
- :func:`run_asha`: asynchronous successive halving (ASHA; Li et al., 2020, "A System
  for Massively Parallel Hyperparameter Tuning", MLSys) with one worker. Rungs sit at
  ``grace * eta**k`` epochs below ``max_t``; at a rung a trial goes on only if its
  validation accuracy is at least the ``1 - 1/eta`` quantile of the values recorded
  there before it (an empty rung lets it through); otherwise it stops there, is told to
  Optuna as PRUNED (its last reported value as Optuna's intermediate value) and costs
  only the epochs it ran. The incumbent is the best trial trained to ``max_t``.

Regret is the table's best final validation accuracy minus the incumbent's (the best
fully trained proposal so far, the earliest on ties); test regret is the table's best
final test accuracy minus the incumbent's test accuracy (NAS-Bench-201's protocol of
selecting by validation and reporting test; Dong & Yang, 2020).

Example:
    >>> import optuna
    >>> from spaces import Categorical, SearchSpace
    >>> from benchmarks.nasbench.table import Table, make_table_dict
    >>> space = SearchSpace({"w": Categorical([1, 2, 3])})
    >>> rows = [{"config": {"w": w}, "val_acc": [w / 4, w / 3], "test_acc": [0, w / 3],
    ...          "train_seconds": [1.0, 1.0]} for w in (1, 2, 3)]
    >>> table = Table.from_dict(make_table_dict(space, rows))
    >>> run = run_full(table, optuna.samplers.RandomSampler(seed=0), budget=20)
    >>> run["val_regret"][-1]
    0.0
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from benchmarks.nasbench.table import Table
from spaces import Categorical, Fixed, Int, SearchSpace
from spaces.optuna_adapter import suggest
from studies.recorder import MAX_REJECTIONS

# Answers from the record in a row before a reusing run stops: the bound Study.run uses
# (the controller has converged or the space is used up).
MAX_REPEATS = MAX_REJECTIONS

Decode = Callable[[Mapping[str, Any]], dict[str, Any]]


def ordinal_space(space: SearchSpace) -> tuple[SearchSpace, Decode]:
    """The same space with each categorical decision as the integer index of its choice.

    For samplers that handle numbers only (CMA-ES): an index keeps the order the choices
    are listed in (widths ascending, for instance). Returns the integer space and the
    function that maps its flat configurations back.

    Raises:
        ValueError: for a conditional space (an index space would lose the conditions).

    Example:
        >>> from spaces import Categorical, SearchSpace
        >>> ints, decode = ordinal_space(SearchSpace({"act": Categorical(["relu", "gelu"])}))
        >>> (ints["act"].low, ints["act"].high), decode({"act": 1})
        ((0, 1), {'act': 'gelu'})
    """
    if space.conditions():
        raise ValueError("ordinal_space() needs an unconditional space.")
    flat = space.flatten()
    entries: dict[str, Any] = {}
    for path, param in flat.items():
        if isinstance(param, Categorical):
            entries[path] = Int(0, len(param.choices) - 1)
        else:
            entries[path] = param if not isinstance(param, Fixed) else Fixed(param.value)
    choices = {p: list(q.choices) for p, q in flat.items() if isinstance(q, Categorical)}

    def decode(values: Mapping[str, Any]) -> dict[str, Any]:
        return {k: choices[k][v] if k in choices else v for k, v in values.items()}

    return SearchSpace(entries), decode


def _identity(values: Mapping[str, Any]) -> dict[str, Any]:
    return dict(values)


def _study(sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    return optuna.create_study(direction="maximize", sampler=sampler)


def _propose(
    study: optuna.Study, table: Table, space: SearchSpace, decode: Decode
) -> tuple[optuna.Trial, dict[str, Any]]:
    trial = study.ask()
    return trial, table.lookup(decode(suggest(trial, space)))


def run_full(
    table: Table,
    sampler: optuna.samplers.BaseSampler,
    budget: int,
    ordinal: bool = False,
) -> dict[str, Any]:
    """``budget`` fully trained evaluations; the curves after each one.

    A repeated proposal is told the same value whether it is trained again or answered
    from the record (``Study.run(reuse_finished=True)``), so the sampler's history is the
    same either way; only the cost differs. ``trainings_to_top`` counts the cost with
    reuse: the distinct architectures proposed up to the first one in the top set.

    Args:
        table: The benchmark.
        sampler: A fresh sampler (one run).
        budget: Evaluations (proposals) to make.
        ordinal: Search the :func:`ordinal_space` of the table's space instead.

    Returns:
        ``val_regret`` and ``test_regret`` (after each evaluation), ``sim_seconds``
        (cumulative table training seconds), ``evals_to_top`` and ``seconds_to_top``
        (the first evaluation in the table's top set, or None), ``trainings_to_top``
        (see above), ``unique`` (distinct architectures proposed) and ``wall_seconds``
        (of the replay itself).
    """
    space, decode = ordinal_space(table.space) if ordinal else (table.space, _identity)
    study = _study(sampler)
    start = time.perf_counter()
    inc_val, inc_test, seconds = -math.inf, math.nan, 0.0
    out: dict[str, Any] = {"val_regret": [], "test_regret": [], "sim_seconds": []}
    out["evals_to_top"] = out["seconds_to_top"] = out["trainings_to_top"] = None
    seen: set[str] = set()
    for n in range(1, budget + 1):
        trial, row = _propose(study, table, space, decode)
        value = row["val_acc"][-1]
        study.tell(trial, value)
        seen.add(row["arch_id"])
        seconds += sum(row["train_seconds"])
        if value > inc_val:
            inc_val, inc_test = value, row["test_acc"][-1]
        if out["evals_to_top"] is None and table.is_top(row):
            out["evals_to_top"], out["seconds_to_top"] = n, seconds
            out["trainings_to_top"] = len(seen)
        out["val_regret"].append(table.best_val - inc_val)
        out["test_regret"].append(table.best_test - inc_test)
        out["sim_seconds"].append(seconds)
    out["unique"] = len(seen)
    out["wall_seconds"] = time.perf_counter() - start
    return out


def rungs(grace: int, eta: int, max_t: int) -> list[int]:
    """ASHA's milestones: ``grace * eta**k`` for every k with a value below ``max_t``.

    Where ``max_t`` is itself ``grace * eta**k`` (grace 4, eta 3, 12 epochs), Ray's ASHA
    has a rung at ``max_t`` too. A trial judged there has trained every epoch, and
    ``Study.run`` records it COMPLETE whatever the verdict, so the replay leaves it out.

    Example:
        >>> rungs(1, 3, 12)
        [1, 3, 9]
    """
    if grace < 1 or eta < 2 or max_t < grace:
        raise ValueError(f"Need grace >= 1, eta >= 2, max_t >= grace; got {grace, eta, max_t}.")
    out, r = [], grace
    while r < max_t:
        out.append(r)
        r *= eta
    return out


def asha_stop_epoch(
    curve: list[float], recorded: dict[int, list[float]], eta: int, max_t: int, start: int = 0
) -> int:
    """The epoch at which ASHA stops a trial with validation ``curve`` (``max_t``: never).

    The trial reports epochs ``start + 1`` on; with ``start`` > 0 it goes on from the
    checkpoint of a trial stopped at rung ``start``, and first reports that epoch again
    (no training), as ``Study.run(resume_stopped=True)`` does. As Ray's ASHA does, each
    report is judged at the highest rung it has reached that this trial was not judged at
    yet: its value is recorded in ``recorded`` (mutated) and compared with the
    ``1 - 1/eta`` quantile of the values recorded there before it. From epoch 0 that is
    each rung at its own epoch; a trial going on from a rung is judged there again first.

    Example:
        >>> recorded = {1: [0.5, 0.9], 3: [0.7]}
        >>> asha_stop_epoch([0.6, 0.7, 0.8, 0.9], recorded, 3, 4, start=1)  # 0.6 < 0.77
        1
    """
    judged: set[int] = set()
    for epoch in range(max(start, 1), max_t + 1):
        rung = max((r for r in recorded if r <= epoch), default=None)
        if rung is None or rung in judged:
            continue
        judged.add(rung)
        value = curve[epoch - 1]
        before = recorded[rung]
        cutoff = float(np.quantile(before, 1 - 1 / eta)) if before else -math.inf
        before.append(value)
        if value < cutoff:
            return epoch
    return max_t


def run_asha(
    table: Table,
    sampler: optuna.samplers.BaseSampler,
    epoch_budget: int,
    grace: int = 1,
    eta: int = 3,
    ordinal: bool = False,
    reuse: bool = False,
    resume: bool = False,
) -> dict[str, Any]:
    """Propose and train under ASHA until ``epoch_budget`` epochs are spent.

    With ``reuse`` (what ``Study.run(reuse_finished=True)``, the default, does), a
    proposal of an architecture already trained to ``max_t`` is answered from the record:
    told its final value at no cost, never seen by ASHA, and not counted in ``trials``. A
    repeat of a stopped one is trained again (ASHA may let it further now), from scratch,
    or with ``resume`` (``Study.run(resume_stopped=True)``) on from the epoch it was
    stopped at: judged there again at no cost, it pays only the epochs beyond it (see
    :func:`asha_stop_epoch`). The run ends early after :data:`MAX_REPEATS` answers in a
    row.

    Returns:
        ``epochs`` (cumulative epochs after each trial), ``val_regret`` and
        ``test_regret`` after each trial (NaN before the first trial reaches ``max_t``),
        ``trials``, ``completed`` (trained to ``max_t``), ``stops`` (``{epoch: trials
        stopped there}``), ``repeats`` (answered from the record), ``resumed`` (trials
        that went on from a stopped one) and ``wall_seconds``.
    """
    space, decode = ordinal_space(table.space) if ordinal else (table.space, _identity)
    max_t = table.epochs
    recorded: dict[int, list[float]] = {r: [] for r in rungs(grace, eta, max_t)}
    study = _study(sampler)
    start = time.perf_counter()
    inc_val, inc_test, used = -math.inf, math.nan, 0
    out: dict[str, Any] = {"epochs": [], "val_regret": [], "test_regret": []}
    stops: dict[int, int] = {}
    done: set[str] = set()
    stopped: dict[str, int] = {}  # architecture -> the epoch ASHA last stopped it at
    out["repeats"] = out["resumed"] = in_a_row = 0
    while used < epoch_budget and in_a_row < MAX_REPEATS:
        trial, row = _propose(study, table, space, decode)
        if reuse and row["arch_id"] in done:
            study.tell(trial, row["val_acc"][-1])
            out["repeats"] += 1
            in_a_row += 1
            continue
        in_a_row = 0
        begin = stopped.get(row["arch_id"], 0) if resume else 0
        out["resumed"] += begin > 0
        stop = asha_stop_epoch(row["val_acc"], recorded, eta, max_t, begin)
        for epoch in range(1, stop + 1):  # those before ``begin`` carried over, as archtune does
            trial.report(row["val_acc"][epoch - 1], epoch)
        used += stop - begin
        stops[stop] = stops.get(stop, 0) + 1
        if stop < max_t:
            stopped[row["arch_id"]] = stop
            study.tell(trial, state=TrialState.PRUNED)
        else:
            value = row["val_acc"][-1]
            study.tell(trial, value)
            done.add(row["arch_id"])
            if value > inc_val:
                inc_val, inc_test = value, row["test_acc"][-1]
        out["epochs"].append(used)
        out["val_regret"].append(table.best_val - inc_val if inc_val > -math.inf else math.nan)
        out["test_regret"].append(table.best_test - inc_test)
    out["trials"] = len(out["epochs"])
    out["completed"] = stops.get(max_t, 0)
    out["stops"] = {str(k): v for k, v in sorted(stops.items())}
    out["wall_seconds"] = time.perf_counter() - start
    return out


def on_grid(epochs: list[int], values: list[float], grid: list[int]) -> list[float]:
    """The value after the last trial finished within each epoch budget of ``grid``.

    NaN for a budget below the first trial's epochs.

    Example:
        >>> on_grid([1, 13, 14], [0.5, 0.2, 0.1], [12, 13, 24])
        [0.5, 0.2, 0.1]
    """
    out, i = [], -1
    for g in grid:
        while i + 1 < len(epochs) and epochs[i + 1] <= g:
            i += 1
        out.append(values[i] if i >= 0 else math.nan)
    return out
