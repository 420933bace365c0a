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

Factory = Callable[..., optuna.samplers.BaseSampler]


@dataclass(frozen=True)
class _Entry:
    factory: Factory
    summary: str


_CONTROLLERS: dict[str, _Entry] = {}


def register_controller(name: str, summary: str) -> Callable[[Factory], Factory]:
    """Register a factory ``f(seed=None, **kwargs) -> BaseSampler`` under ``name``.

    Raises:
        ValueError: if ``name`` is already registered.
    """

    def deco(factory: Factory) -> Factory:
        if name in _CONTROLLERS:
            raise ValueError(f"Controller {name!r} is already registered.")
        if "seed" not in inspect.signature(factory).parameters:
            raise TypeError(f"Controller factory {factory!r} must accept a 'seed' keyword.")
        _CONTROLLERS[name] = _Entry(factory, summary)
        return factory

    return deco


def list_controllers() -> dict[str, str]:
    """Registered controller names with a one-line summary each."""
    return {name: entry.summary for name, entry in sorted(_CONTROLLERS.items())}


def make_controller(
    name: str, seed: int | None = None, **kwargs: Any
) -> optuna.samplers.BaseSampler:
    """Create the controller registered as ``name``.

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
    # Kept with the study so `archtune resume` rebuilds the same controller.
    sampler.archtune_name = name  # type: ignore[attr-defined]
    if seed is None and getattr(sampler, "rebuildable", False):
        seed = getattr(sampler, "seed", None)  # the seed it drew, so a resume continues it
    sampler.archtune_spec = {"name": name, "seed": seed, "options": kwargs}  # type: ignore[attr-defined]
    return sampler


@register_controller("random", "uniform random search (Bergstra & Bengio, 2012)")
def _random(seed: int | None = None) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


@register_controller(
    "tpe", "Tree-structured Parzen Estimator, multivariate, constant liar (Bergstra et al., 2011)"
)
def _tpe(
    seed: int | None = None, n_startup_trials: int = 10, multivariate: bool = True
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
    "gp", "Gaussian-process Bayesian optimisation, Optuna's GPSampler (Snoek et al., 2012)"
)
def _gp(
    seed: int | None = None, n_startup_trials: int = 10, deterministic_objective: bool = False
) -> optuna.samplers.BaseSampler:
    # Conditional parameters are sampled independently (at random) by the GP sampler; it
    # says so once per parameter, which is noise in a study log.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.GPSampler(
            seed=seed,
            n_startup_trials=n_startup_trials,
            deterministic_objective=deterministic_objective,
            warn_independent_sampling=False,
        )


@register_controller(
    "nsga2", "NSGA-II multi-objective genetic search, Optuna's sampler (Deb et al., 2002)"
)
def _nsga2(
    seed: int | None = None, population_size: int = 20, crossover_prob: float = 0.9
) -> optuna.samplers.BaseSampler:
    if population_size < 2:
        raise ValueError(f"population_size must be at least 2, got {population_size}.")
    return optuna.samplers.NSGAIISampler(
        seed=seed, population_size=population_size, crossover_prob=crossover_prob
    )
