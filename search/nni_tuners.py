"""NNI 3's HPO tuners (TPE, naive evolution) as Optuna samplers.

NNI 3.0 is no longer developed, so archtune reaches it through this one narrow adapter:
search spaces go through :mod:`spaces.nni_adapter`, and the tuners are rebuilt from the
study at every ask. Algorithms:

- ``"tpe"``: NNI's Tree-structured Parzen Estimator (Bergstra et al., 2011, "Algorithms
  for Hyper-Parameter Optimization", NeurIPS), :class:`nni.algorithms.hpo.tpe_tuner.TpeTuner`.
- ``"evolution"``: NNI's naive evolution (Real et al., 2017, "Large-Scale Evolution of
  Image Classifiers", ICML; arXiv:1703.01041),
  :class:`nni.algorithms.hpo.evolution_tuner.EvolutionTuner`: a tournament of two, the
  winner copied with one decision redrawn.

How a proposal is made (all in ``sample_independent``, on a trial's first call):

- **Space.** Optuna is define-by-run, so the space NNI models is what every usable
  finished trial shares: the parameters present in all of them with equal distributions
  (single-valued ones aside). Each goes through ``param_from_optuna`` and
  ``param_to_nni``. What NNI has no type for (an int with ``log`` or ``step``, a stepped
  float whose ``low`` is off NNI's grid) is written as a ``choice`` of its values, exact but
  unordered, up to :data:`MAX_CHOICES` values; beyond that a ``ValueError`` says how to fix
  the space. Parameters outside that space (conditional ones, new ones, and all of them
  while no trial has finished) are drawn at random from the trial's generator. A
  proposal equal to an earlier trial's (any state) on the modelled parameters is redrawn
  with a new tuner seed, up to :data:`MAX_ATTEMPTS` times (NNI's evolution may redraw a
  choice to its old value, an exact copy).
- **Usable trials.** COMPLETE with a finite value. FAIL, PRUNED and NaN trials are never
  reported to NNI (NNI reports failures only to drop running parameters, which here do
  not exist). Several objectives are refused: NNI's HPO tuners are single-objective.
- **State from the study.** TPE gets the usable trials the way NNI's ``import_data``
  (its resume path) gives them. The evolution tuner's population is replayed from the
  usable trials (:func:`_population`): the first ``population_size`` of them, then each
  later one replaces the worse of two members drawn at random, as NNI drops one
  tournament loser per proposal and adds each result. Until ``population_size`` trials
  are usable, proposals are random, as NNI's first generation is.
- **Determinism.** Each trial draws from ``np.random.default_rng([seed, trial.number])``:
  TPE gets a seed from it; the evolution tuner's ``RandomState`` is seeded from it, and
  its calls to Python's global ``random`` (``shuffle``, ``randint``) run inside a
  save/seed/restore of that global state, which is therefore left as it was. Same seed and
  same study history give the same proposal, also after a reload. Not reproduced:
  NNI's TPE constant liar (running trials are not replayed; trials asked together differ
  through their seeds instead), and NNI's evolution population exactly (the replay
  draws its own pairs).
- **Defaults.** ``population_size=10`` (NNI's is 32): on a 6-decision toy (12 seeds),
  population 20 was no better than random search after 50 trials, population 10 beat it
  by a clear margin after 50 and 80.
- **Quiet.** NNI's loggers are raised to ERROR while a tuner runs, then restored.
- **Not wrapped.** NNI's GP and Metis tuners import here, but GP reads choices as numbers
  (string choices fail), skips results equal to 0 on import, and by default samples
  100,000 points and runs 250 L-BFGS-B starts per proposal; SMAC and PPO need packages
  that are not installed (``smac``, ``gym``).

Example:
    >>> import optuna
    >>> sampler = NniTunerSampler("tpe", seed=0, n_startup_trials=5)
    >>> study = optuna.create_study(sampler=sampler)
    >>> study.optimize(lambda t: (t.suggest_float("x", -5, 5) - 1) ** 2, n_trials=30)
    >>> abs(study.best_params["x"] - 1) < 0.5
    True
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from search.base import DefineByRunSampler, resolve_seed, trial_plan
from search.optuna_access import study_storage, trial_id
from search.registry import register_controller
from spaces.nni_adapter import param_to_nni
from spaces.optuna_adapter import param_from_optuna

ALGORITHMS = ("tpe", "evolution")
MAX_CHOICES = 1000  # values of an int (log/step) written as an NNI choice
MAX_ATTEMPTS = 8  # proposals drawn before a copy of an earlier trial is accepted


@dataclass
class _Plan:
    number: int
    rng: np.random.Generator
    proposal: dict[str, Any] = field(default_factory=dict)
    space: dict[str, BaseDistribution] = field(default_factory=dict)


class NniTunerSampler(DefineByRunSampler):
    """An NNI 3 HPO tuner as an Optuna sampler, rebuilt from the study at each trial.

    Args:
        algorithm: One of :data:`ALGORITHMS`.
        seed: Seed of every random choice; ``None`` draws one (kept in :attr:`seed`).
        n_startup_trials: TPE only: usable trials before TPE models (NNI's
            ``n_startup_jobs``).
        population_size: Evolution only: population size, and the number of usable trials
            before evolution starts.

    Raises:
        ValueError: for an unknown algorithm or an option out of range.
        TypeError: for a seed that is neither an int nor None.

    Call order (Optuna's): ``sample_independent`` per parameter, the first call making
    the trial's plan (and refusing a study with several objectives); ``after_trial`` drops
    it. Only caches of plans are held; losing them changes nothing but speed. Threads
    (Optuna's ``n_jobs``) get valid proposals, but not reproducible ones for
    ``"evolution"``: seeding Python's global ``random`` and NNI's logger levels are
    process-wide.
    """

    rebuildable = True

    def __init__(
        self,
        algorithm: str = "tpe",
        seed: int | None = None,
        n_startup_trials: int = 10,
        population_size: int = 10,
    ) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"Unknown NNI algorithm {algorithm!r}; choose one of {ALGORITHMS}.")
        seed = resolve_seed(seed)
        for name, value, low in (
            ("n_startup_trials", n_startup_trials, 0),
            ("population_size", population_size, 2),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}.")
        self.algorithm = algorithm
        self.seed = seed
        self.n_startup_trials = n_startup_trials
        self.population_size = population_size
        self._plans: weakref.WeakKeyDictionary[Any, dict[int, _Plan]] = weakref.WeakKeyDictionary()

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        """Nothing is sampled jointly; refuses studies with several objectives."""
        _check_single_objective(study)
        return {}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        """NNI's value when the parameter is in the modelled space, else a random one."""
        plans = self._plans.setdefault(study_storage(study), {})
        plan = trial_plan(plans, trial, lambda: self._plan(study, trial))
        param = param_from_optuna(param_distribution)
        if plan.space.get(param_name) == param_distribution and param_name in plan.proposal:
            value = plan.proposal[param_name]
            if param.contains(value):
                return value
        return param.sample(plan.rng)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        """Forget the trial's plan."""
        self._plans.setdefault(study_storage(study), {}).pop(trial_id(trial), None)

    def _plan(self, study: optuna.Study, trial: FrozenTrial) -> _Plan:
        _check_single_objective(study)
        rng = np.random.default_rng([self.seed, trial.number])
        tuner_seed = int(rng.integers(2**31))
        usable = _usable(study, trial.number)
        space = _shared_space(usable)
        plan = _Plan(trial.number, rng, space=space)
        if not space or (self.algorithm == "evolution" and len(usable) < self.population_size):
            return plan
        nni_space = {name: _encode(name, dist) for name, dist in space.items()}
        maximize = study.direction == StudyDirection.MAXIMIZE
        trials = study.get_trials(deepcopy=False)
        seen = {_key(t.params, space) for t in trials if t.number != trial.number}
        with _quiet_nni():
            for _ in range(MAX_ATTEMPTS):  # a copy of an earlier trial is redrawn
                if self.algorithm == "tpe":
                    proposal = _tpe(nni_space, usable, maximize, tuner_seed, self.n_startup_trials)
                else:
                    population = _population(usable, self.population_size, maximize, self.seed)
                    proposal = _evolution(nni_space, population, maximize, tuner_seed)
                plan.proposal = {k: _decode(space[k], v) for k, v in proposal.items()}
                if _key(plan.proposal, space) not in seen:
                    break
                tuner_seed = int(rng.integers(2**31))
        return plan


def _check_single_objective(study: optuna.Study) -> None:
    if len(study.directions) != 1:
        raise ValueError(
            f"NNI's HPO tuners are single-objective; this study has "
            f"{len(study.directions)} objectives. Use 'nsga2' or 'evolution' instead."
        )


def _usable(study: optuna.Study, number: int) -> list[FrozenTrial]:
    """COMPLETE trials with a finite value, by number, other than trial ``number``."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    out = [
        t
        for t in trials
        if t.number != number
        and t.values is not None
        and len(t.values) == 1
        and math.isfinite(t.values[0])
    ]
    return sorted(out, key=lambda t: t.number)


def _shared_space(trials: Sequence[FrozenTrial]) -> dict[str, BaseDistribution]:
    """Distributions every trial has, equal in all (single-valued ones left out)."""
    if not trials:
        return {}
    shared = {k: d for k, d in trials[0].distributions.items() if not d.single()}
    for t in trials[1:]:
        shared = {k: d for k, d in shared.items() if t.distributions.get(k) == d}
    return dict(sorted(shared.items()))


def _encode(name: str, dist: BaseDistribution) -> dict[str, Any]:
    """NNI's search-space entry of one distribution, through archtune's adapter."""
    try:
        return param_to_nni(param_from_optuna(dist))
    except ValueError as e:
        values = _grid(dist)
        if len(values) > MAX_CHOICES:
            raise ValueError(
                f"Parameter {name!r}: {e} archtune writes such a parameter as an NNI choice "
                f"of its values, up to {MAX_CHOICES}, and this one has {len(values)}. Use a "
                "coarser step, a float, or another controller."
            ) from e
        return {"_type": "choice", "_value": values}


def _key(params: Mapping[str, Any], space: Mapping[str, Any]) -> frozenset[Any]:
    """Identity of the modelled part of a parameter set; the type keeps 1 apart from True."""
    return frozenset((k, type(v).__name__, v) for k, v in params.items() if k in space)


def _grid(dist: BaseDistribution) -> list[Any]:
    """The values of an int or a stepped float distribution."""
    if isinstance(dist, IntDistribution):
        return list(range(dist.low, dist.high + 1, dist.step))
    if isinstance(dist, FloatDistribution) and dist.step is not None:
        n = round((dist.high - dist.low) / dist.step)
        return [min(dist.low + k * dist.step, dist.high) for k in range(n + 1)]
    raise ValueError(f"{dist!r} has no finite grid.")


def _decode(dist: BaseDistribution, value: Any) -> Any:
    """NNI's value in Optuna's type: ints as int, stepped floats snapped to the grid."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        return value
    if isinstance(dist, IntDistribution):
        return round(float(value))
    if isinstance(dist, FloatDistribution):
        value = float(value)
        if dist.step is not None:
            k = round((value - dist.low) / dist.step)
            value = min(dist.low + k * dist.step, dist.high)
        return value
    return value


def _tpe(
    space: dict[str, Any], trials: Sequence[FrozenTrial], maximize: bool, seed: int, startup: int
) -> dict[str, Any]:
    from nni.algorithms.hpo.tpe_tuner import Record, TpeTuner
    from nni.common.hpo_utils import format_parameters

    mode = "maximize" if maximize else "minimize"
    tuner = TpeTuner(optimize_mode=mode, seed=seed, tpe_args={"n_startup_jobs": startup})
    tuner.update_search_space(space)
    # What NNI's import_data does, without its deduplicator's history: that one
    # JSON-encodes every parameter of every trial (seconds at 100 trials), and archtune
    # redraws copies itself.
    sign = -1.0 if maximize else 1.0
    for t in trials:
        formatted = format_parameters({k: t.params[k] for k in space}, tuner.space)
        for key, value in formatted.items():
            tuner._history[key].append(Record(value, sign * t.values[0]))
    return dict(tuner.generate_parameters(0))


def _population(
    trials: Sequence[FrozenTrial], size: int, maximize: bool, seed: int
) -> list[FrozenTrial]:
    """NNI's evolution population, replayed from the usable trials (by number).

    The first ``size`` trials form it; then, as NNI drops the loser of each proposal's
    tournament of two and adds each result, every later trial replaces the worse of two
    members drawn from ``default_rng([seed, trial.number, 1])``.
    """
    sign = 1.0 if maximize else -1.0
    population = list(trials[:size])
    for t in trials[size:]:
        i, j = np.random.default_rng([seed, t.number, 1]).choice(size, 2, replace=False)
        worse = i if sign * population[i].values[0] < sign * population[j].values[0] else j
        population.pop(int(worse))
        population.append(t)
    return population


def _evolution(
    space: dict[str, Any], trials: Sequence[FrozenTrial], maximize: bool, seed: int
) -> dict[str, Any]:
    from nni.algorithms.hpo.evolution_tuner import EvolutionTuner, Individual

    mode = "maximize" if maximize else "minimize"
    tuner = EvolutionTuner(optimize_mode=mode, population_size=len(trials))
    tuner.update_search_space(space)
    # NNI's tuner keeps its population in memory; archtune rebuilds it from the study.
    tuner.random_state = np.random.RandomState(seed)
    tuner.population = [
        Individual(config=_indexed(space, t.params), result=t.values[0] * (1 if maximize else -1))
        for t in trials
    ]
    with _seeded_global_random(seed):
        return dict(tuner.generate_parameters(0))


def _indexed(space: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters in the evolution tuner's own format: choices carry their ``_index``."""
    out: dict[str, Any] = {}
    for key, spec in space.items():
        value = params[key]
        if spec["_type"] == "choice":
            index = next(
                i for i, c in enumerate(spec["_value"]) if type(c) is type(value) and c == value
            )
            value = {"_index": index, "_value": value}
        out[key] = value
    return out


@contextlib.contextmanager
def _seeded_global_random(seed: int) -> Iterator[None]:
    """Seed Python's global ``random`` (NNI's evolution uses it), then restore it."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


@contextlib.contextmanager
def _quiet_nni() -> Iterator[None]:
    """Raise NNI's loggers to ERROR while it runs."""
    _check_nni()
    names = ["nni"] + [n for n in logging.root.manager.loggerDict if n.startswith("nni.")]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _check_nni() -> None:
    try:  # NNI sets its loggers up when imported: import before _quiet_nni
        import nni.algorithms.hpo.evolution_tuner
        import nni.algorithms.hpo.tpe_tuner  # noqa: F401
    except ImportError as e:  # pragma: no cover - nni is a dependency of this module only
        raise ImportError("The nni-* controllers need NNI 3.0: pip install 'nni==3.0'.") from e


@register_controller(
    "nni-tpe", "NNI 3 TPE tuner through archtune's NNI adapter (Bergstra et al., 2011)"
)
def make_tpe(seed: int | None = None, n_startup_trials: int = 10) -> optuna.samplers.BaseSampler:
    """A :class:`NniTunerSampler` running NNI's TPE."""
    _check_nni()
    return NniTunerSampler("tpe", seed=seed, n_startup_trials=n_startup_trials)


@register_controller(
    "nni-evolution",
    "NNI 3 naive evolution tuner through archtune's NNI adapter (Real et al., 2017)",
)
def make_evolution(
    seed: int | None = None, population_size: int = 10
) -> optuna.samplers.BaseSampler:
    """A :class:`NniTunerSampler` running NNI's naive evolution."""
    _check_nni()
    return NniTunerSampler("evolution", seed=seed, population_size=population_size)
