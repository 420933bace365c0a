"""The controller registry: listable, and loud about unknown names and keywords.

Every controller is an :class:`optuna.samplers.BaseSampler`, so what this registry
returns also works in a plain ``optuna.create_study(sampler=...)``.

Example:
    >>> from search import make_controller, list_controllers
    >>> "tpe" in list_controllers()
    True
    >>> type(make_controller("random", seed=0)).__name__
    'RandomSampler'
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from search.spec import ControllerSpec, remember

Factory = Callable[..., optuna.samplers.BaseSampler]


@dataclass(frozen=True)
class _Entry:
    factory: Factory
    summary: str
    multi_objective: bool


_CONTROLLERS: dict[str, _Entry] = {}
_REBUILDABLE: dict[str, bool] = {}  # by name, learnt from the first sampler made


def register_controller(
    name: str, summary: str, multi_objective: bool = False
) -> Callable[[Factory], Factory]:
    """Register a factory ``f(seed=None, **kwargs) -> BaseSampler`` under ``name``.

    Args:
        name: The controller's name.
        summary: One line for :func:`list_controllers`.
        multi_objective: Whether its samplers search several objectives (a study with
            several refuses the others).

    Raises:
        ValueError: if ``name`` is already registered.
        TypeError: if the factory takes no ``seed`` keyword.
    """

    def deco(factory: Factory) -> Factory:
        if name in _CONTROLLERS:
            raise ValueError(f"Controller {name!r} is already registered.")
        if "seed" not in inspect.signature(factory).parameters:
            raise TypeError(f"Controller factory {factory!r} must accept a 'seed' keyword.")
        _CONTROLLERS[name] = _Entry(factory, summary, multi_objective)
        return factory

    return deco


def list_controllers() -> dict[str, str]:
    """Registered controller names with a one-line summary each."""
    return {name: entry.summary for name, entry in sorted(_CONTROLLERS.items())}


def multi_objective_controllers() -> list[str]:
    """Names of the controllers that search several objectives at once."""
    return sorted(name for name, entry in _CONTROLLERS.items() if entry.multi_objective)


def make_controller(
    name: str, seed: int | None = None, **kwargs: Any
) -> optuna.samplers.BaseSampler:
    """Create the controller registered as ``name``.

    The sampler's :class:`~search.spec.ControllerSpec` (name, seed, options) is
    remembered beside it, so a study run with it stores how to make it again
    (:func:`search.spec.controller_spec`); nothing is written onto the sampler.

    Args:
        name: A name from :func:`list_controllers`.
        seed: Seed of the controller's random generator; same seed, same proposals.
        **kwargs: The controller's own options; an unknown one raises.

    Raises:
        ValueError: for an unknown name (the message lists the valid ones).
        TypeError: for a keyword the controller does not take.
    """
    if name not in _CONTROLLERS:
        raise ValueError(f"Unknown controller {name!r}; choose one of {sorted(_CONTROLLERS)}.")
    factory = _CONTROLLERS[name].factory
    params = inspect.signature(factory).parameters
    unknown = sorted(k for k in kwargs if k not in params or k == "seed")
    if unknown:
        valid = sorted(k for k in params if k != "seed")
        raise TypeError(f"Controller {name!r} takes no option(s) {unknown}; its options: {valid}.")
    sampler = factory(seed=seed, **kwargs)
    rebuildable = bool(getattr(sampler, "rebuildable", False))
    _REBUILDABLE.setdefault(name, rebuildable)
    if seed is None and rebuildable:
        seed = getattr(sampler, "seed", None)  # the seed it drew, so a resume continues it
    remember(sampler, ControllerSpec(name, seed, kwargs))
    return sampler


def controller_class_rebuildable(name: str) -> bool:
    """Whether controller ``name`` rebuilds its whole state from the study (see
    :class:`search.base.DefineByRunSampler`), so a resume may keep its seed."""
    if name not in _REBUILDABLE:
        make_controller(name, seed=0)
    return _REBUILDABLE[name]


@register_controller(
    "random", "uniform random search (Bergstra & Bengio, 2012)", multi_objective=True
)
def _random(seed: int | None = None) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


@register_controller(
    "tpe",
    "Tree-structured Parzen Estimator, multivariate, constant liar (Bergstra et al., 2011)",
    multi_objective=True,
)
def _tpe(
    seed: int | None = None,
    n_startup_trials: int = 10,
    multivariate: bool = True,
) -> optuna.samplers.BaseSampler:
    # constant_liar keeps parallel workers from proposing the same point while others run.
    # group=True models each set of decisions that occur together (conditional spaces).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=n_startup_trials,
            multivariate=multivariate,
            group=multivariate,
            constant_liar=True,
        )


@register_controller(
    "gp",
    "Gaussian-process Bayesian optimisation, Optuna's GPSampler (Snoek et al., 2012)",
    multi_objective=True,
)
def _gp(
    seed: int | None = None,
    n_startup_trials: int = 10,
    deterministic_objective: bool = False,
) -> optuna.samplers.BaseSampler:
    # Conditional parameters are sampled independently (at random) by the GP sampler; it
    # says so once per parameter, which is noise in a study log. Optuna 4.4 (the floor:
    # its GPSampler is the first to search several objectives) has neither the warning
    # nor the flag that turns it off; 4.5 added both.
    quiet = {}
    if "warn_independent_sampling" in inspect.signature(optuna.samplers.GPSampler).parameters:
        quiet["warn_independent_sampling"] = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.GPSampler(
            seed=seed,
            n_startup_trials=n_startup_trials,
            deterministic_objective=deterministic_objective,
            **quiet,
        )


@register_controller(
    "nsga2",
    "NSGA-II multi-objective genetic search, Optuna's sampler (Deb et al., 2002)",
    multi_objective=True,
)
def _nsga2(
    seed: int | None = None,
    population_size: int = 20,
    crossover_prob: float = 0.9,
) -> optuna.samplers.BaseSampler:
    if population_size < 2:
        raise ValueError(f"population_size must be at least 2, got {population_size}.")
    return optuna.samplers.NSGAIISampler(
        seed=seed,
        population_size=population_size,
        crossover_prob=crossover_prob,
    )
