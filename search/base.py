"""The base class of archtune's own controllers.

Optuna asks a sampler twice per trial: once for a joint ("relative") proposal over a
search space it infers, then once per parameter that proposal did not cover
(``sample_independent``), in the order the objective suggests them. archtune's spaces
are conditional and suggested define-by-run, parents first (``spaces.optuna_adapter.
suggest``), so its controllers propose everything in ``sample_independent``: the first
call of a trial plans the whole proposal from the study's finished trials, and each call
returns that plan's value for the parameter asked, once its parents are known.

Contract for subclasses: implement ``sample_independent``; keep no search state that
cannot be rebuilt from the study (caches are fine); draw randomness per trial from the
seed and the trial number (``np.random.default_rng([seed, trial.number])``) so that a
controller rebuilt on the same study proposes the same; set ``rebuildable = True`` when
that holds, so ``archtune resume`` gives it its seed back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial

from search.optuna_access import trial_id

MAX_PLANS = 1024  # plans of trials never told (a crashed driver) are dropped past this


class _Plan(Protocol):
    number: int  # the trial number the plan was made for


PlanT = TypeVar("PlanT", bound=_Plan)


class DefineByRunSampler(optuna.samplers.BaseSampler):
    """A sampler that proposes every decision in ``sample_independent`` (see module doc)."""

    rebuildable: ClassVar[bool] = False

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        """Nothing is sampled jointly: conditional spaces are walked define-by-run."""
        return {}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """Nothing is sampled jointly (see :meth:`sample_independent`)."""
        return {}


def params_key(params: Mapping[str, Any]) -> frozenset[tuple[str, str, Any]]:
    """A hashable identity of a parameter set; the type keeps ``1`` apart from ``True``.

    Example:
        >>> params_key({"se": True}) == params_key({"se": 1})
        False
    """
    return frozenset((k, type(v).__name__, v) for k, v in params.items())


def resolve_seed(seed: Any) -> int:
    """``seed`` checked, or a fresh one drawn from the OS when it is None.

    Raises:
        TypeError: for a seed that is not an int.
        ValueError: for a negative seed.
    """
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int or None, got {seed!r}.")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative int (or None), got {seed}.")
    return int(seed)


def trial_plan(plans: dict[int, PlanT], trial: FrozenTrial, make: Callable[[], PlanT]) -> PlanT:
    """The plan kept for ``trial`` in ``plans`` (by trial id), made by ``make`` when there is
    none or it belongs to another trial number (a trial id reused by a new storage).

    At most :data:`MAX_PLANS` are kept: past that the oldest, of a trial never told (its
    driver crashed), is dropped.

    Example:
        >>> from types import SimpleNamespace
        >>> plans, t = {}, SimpleNamespace(_trial_id=7, number=3)
        >>> trial_plan(plans, t, lambda: SimpleNamespace(number=3)) is plans[7]
        True
    """
    plan = plans.get(trial_id(trial))
    if plan is None or plan.number != trial.number:
        plan = make()
        if len(plans) >= MAX_PLANS:
            plans.pop(next(iter(plans)), None)
        plans[trial_id(trial)] = plan
    return plan
