"""What a proposal costs before it trains, and whether it meets the space's constraints.

The recorder asks these for every proposal of a study with constraints or cost
objectives (:data:`studies.objectives.COST_METRICS`): the network's statistics from its
configuration (``Trainer.model_stats``, built on the driver's CPU, not trained), the
constraints they break (the proposal is then rejected unseen by Ray), and, when a trial
ends, each constraint's amount for Optuna (``<= 0``: met), from the network as trained and
measured where its last report has the metric.

Example:
    >>> from spaces import Constraint, Int, SearchSpace
    >>> space = SearchSpace({"w": Int(1, 8)}, constraints=[Constraint("params", max=100)])
    >>> violations(space, {"params": 150.0})
    ['params = 150 > max 100']
    >>> constraint_values(space, {"params": 80.0})
    {'0:params': -20.0}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import optuna
from optuna.trial import TrialState

from search.optuna_access import constraints_of
from spaces import SearchSpace
from studies.objectives import Objectives

StatsFn = Callable[[Mapping[str, Any], set[str]], Mapping[str, float]]


def proposal_stats(
    stats: StatsFn | None, space: SearchSpace, objectives: Objectives, config: Mapping[str, Any]
) -> dict[str, float] | None:
    """The network's statistics before training, when constraints or cost objectives need
    them (the latency only for a constraint on it: the driver is not the trial's device);
    None when nothing needs them, or the trainer computes none and nothing is constrained.

    Raises:
        ValueError: the space has constraints but ``stats`` is None.
    """
    wanted = {c.metric for c in space.constraints}
    if any(o.is_cost for o in objectives):
        wanted |= {"params", "flops", "activation_bytes"}
    if not wanted:
        return None
    if stats is None:
        if not space.constraints:
            return None  # a trainer without statistics: costs come from its reports
        raise ValueError("The space has constraints but no model statistics were given.")
    return {k: float(v) for k, v in stats(config, wanted).items() if v is not None}


def violations(space: SearchSpace, stats: Mapping[str, float] | None) -> list[str]:
    """Why ``stats`` break the space's constraints (empty when they meet them)."""
    if not space.constraints or stats is None:
        return []
    return [v for c in space.constraints if (v := c.violation(stats)) is not None]


def constraint_values(space: SearchSpace, *sources: Mapping[str, Any] | None) -> dict[str, float]:
    """Each constraint's amount (<= 0: met) on the first source that has its metric: the
    final report (the network as trained and measured), then the statistics before
    training."""
    values = {}
    for i, c in enumerate(space.constraints):
        for source in sources:
            if source and isinstance(source.get(c.metric), (int, float)):
                values[f"{i}:{c.metric}"] = c.amount(source)
                break
    return values


def records_constraints(study: optuna.Study, space: SearchSpace) -> bool:
    """Whether trained trials get constraint values: when the space has constraints and
    no trial trained before carries none (a study begun by an archtune that did not record
    them). Optuna's GP sampler needs the same constraints on every trial."""
    if not space.constraints:
        return False
    trained = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    return all(constraints_of(t) for t in trained)
