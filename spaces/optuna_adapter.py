"""Adapter between archtune spaces and Optuna distributions.

Both sides use inclusive bounds, so numeric ranges carry over unchanged. ``Fixed``
parameters are constants, not decisions, and have no distribution.

Example:
    >>> from spaces import SearchSpace, Int, Float
    >>> dists = to_optuna(SearchSpace({"d": Int(1, 4), "lr": Float(1e-3, 1.0, log=True)}))
    >>> dists["d"]
    IntDistribution(high=4, log=False, low=1, step=1)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from spaces.params import Categorical, Float, Int, Param
from spaces.space import SearchSpace, nest


def param_to_optuna(param: Param) -> BaseDistribution:
    """The Optuna distribution of one parameter.

    Raises:
        TypeError: for a ``Fixed`` or unknown parameter type.
    """
    if isinstance(param, Float):
        return FloatDistribution(param.low, param.high, log=param.log, step=param.step)
    if isinstance(param, Int):
        return IntDistribution(param.low, param.high, log=param.log, step=param.step or 1)
    if isinstance(param, Categorical):
        return CategoricalDistribution(param.choices)
    raise TypeError(f"{param!r} has no Optuna distribution; only decisions convert.")


def to_optuna(space: SearchSpace) -> dict[str, BaseDistribution]:
    """Every decision of ``space`` by its ``/`` path, as an Optuna distribution."""
    return {path: param_to_optuna(p) for path, p in space.decisions().items()}


def suggest(trial: optuna.trial.BaseTrial, space: SearchSpace) -> dict[str, Any]:
    """Ask ``trial`` for every active decision of ``space``, define-by-run, parents first.

    Conditional parameters are suggested only when active, so Optuna records exactly
    the decisions that shaped the configuration (what TPE's ``group=True`` expects).

    Returns:
        The flat ``{path: value}`` proposal, constants included; nest it with
        :meth:`SearchSpace.unflatten`.
    """

    def choose(path: str, param: Param) -> Any:
        if isinstance(param, Float):
            return trial.suggest_float(path, param.low, param.high, step=param.step, log=param.log)
        if isinstance(param, Int):
            return trial.suggest_int(
                path, param.low, param.high, step=param.step or 1, log=param.log
            )
        if isinstance(param, Categorical):
            return trial.suggest_categorical(path, param.choices)
        raise TypeError(f"Cannot suggest {param!r} with Optuna.")

    return space.assign(choose)


def param_from_optuna(dist: BaseDistribution) -> Param:
    """The archtune parameter of one Optuna distribution.

    Raises:
        TypeError: for a distribution type archtune has no parameter for.
    """
    if isinstance(dist, FloatDistribution):
        return Float(dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, IntDistribution):
        step = None if dist.step == 1 else dist.step
        return Int(dist.low, dist.high, log=dist.log, step=step)
    if isinstance(dist, CategoricalDistribution):
        return Categorical(list(dist.choices))
    raise TypeError(f"Cannot convert Optuna distribution {dist!r} to an archtune parameter.")


def from_optuna(dists: Mapping[str, BaseDistribution]) -> SearchSpace:
    """A nested space from ``/``-separated Optuna parameter names."""
    return SearchSpace(nest({path: param_from_optuna(d) for path, d in dists.items()}))
