"""Regularized evolution: proposals, lineage, aging, reproducibility, and that it optimises."""

from __future__ import annotations

import math
import shutil
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from search import make_controller
from search.evolution import (  # importing it registers "evolution"
    LINEAGE_ATTR,
    RegularizedEvolutionSampler,
    _mutate,
    _pareto_ranks,
)
from spaces import Categorical, Float, Int, SearchSpace
from spaces.optuna_adapter import param_from_optuna, suggest

optuna.logging.set_verbosity(optuna.logging.WARNING)

FLAT = SearchSpace(
    {
        "op": Categorical(["conv3", "conv5", "pool", "skip"]),
        "depth": Int(1, 6),
        "width": Int(8, 128, log=True),
        "stride": Int(1, 7, step=2),
        "lr": Float(1e-4, 1e-1, log=True),
        "drop": Float(0.0, 0.5, step=0.1),
        "decay": Float(0.0, 1.0),
        "bias": Categorical([True, False]),
    }
)
CONDITIONAL = SearchSpace(
    {
        "block": Categorical(["basic", "bottleneck"]),
        "depth": Int(1, 4),
        "neck": Int(2, 8, when={"block": "bottleneck"}),
        "se": Categorical([True, False], when={"block": "bottleneck"}),
        "se_ratio": Float(0.1, 0.5, when={"se": True}),
        "lr": Float(1e-4, 1e-1, log=True),
    }
)


def _score(params: dict[str, Any]) -> float:
    """A smooth-ish toy objective over either space (larger is better)."""
    score = -abs(math.log10(params["lr"]) + 2.5) - abs(params["depth"] - 3) / 2
    score += 0.5 * (params.get("block") == "bottleneck") + 0.2 * params.get("neck", 0) / 8
    return score + 0.3 * (params.get("op") == "conv5") - params.get("drop", 0.0)


def _sampler(seed: int = 0, **kwargs: Any) -> RegularizedEvolutionSampler:
    options = {"population_size": 8, "tournament_size": 3, **kwargs}
    return RegularizedEvolutionSampler(seed=seed, **options)


def _run(study: optuna.Study, space: SearchSpace, n: int) -> list[dict[str, Any]]:
    proposals = []
    for _ in range(n):
        trial = study.ask()
        params = suggest(trial, space)
        proposals.append(params)
        study.tell(trial, _score(params))
    return proposals


def _lineage(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    return trial.system_attrs[LINEAGE_ATTR]


@pytest.mark.parametrize("space", [FLAT, CONDITIONAL], ids=["flat", "conditional"])
def test_proposals_lie_in_the_space_and_follow_conditions(space: SearchSpace) -> None:
    study = optuna.create_study(direction="maximize", sampler=_sampler())
    for params in _run(study, space, 40):
        assert sorted(params) == sorted(space.active(params))
        config = space.unflatten(params)
        assert space.check_config(config) == config
    evolved = [t for t in study.trials if _lineage(t)["parent"] is not None]
    assert len(evolved) == 32  # random until 8 trials finished, then always a child


def test_child_differs_from_its_parent_in_exactly_one_decision() -> None:
    study = optuna.create_study(direction="maximize", sampler=_sampler())
    _run(study, FLAT, 40)
    for child in study.trials[8:]:
        lineage = _lineage(child)
        parent = study.trials[lineage["parent"]]
        changed = {k for k in child.params if child.params[k] != parent.params[k]}
        assert changed == {lineage["mutated"]}


def test_conditional_children_keep_the_parent_outside_the_mutation() -> None:
    study = optuna.create_study(direction="maximize", sampler=_sampler(seed=5))
    _run(study, CONDITIONAL, 60)
    switches = {"block", "se"}  # decisions that switch others on or off
    for child in study.trials[8:]:
        lineage = _lineage(child)
        parent = study.trials[lineage["parent"]]
        if lineage["mutated"] in switches:
            assert child.params[lineage["mutated"]] != parent.params[lineage["mutated"]]
            continue
        assert set(child.params) == set(parent.params)
        changed = {k for k in child.params if child.params[k] != parent.params[k]}
        assert changed == {lineage["mutated"]}


def test_same_seed_same_sequence_other_seed_other_sequence() -> None:
    def proposals(seed: int) -> list[dict[str, Any]]:
        study = optuna.create_study(direction="maximize", sampler=_sampler(seed))
        return _run(study, CONDITIONAL, 30)

    assert proposals(11) == proposals(11)
    assert proposals(11) != proposals(12)


def test_seed_none_draws_a_seed_that_reproduces() -> None:
    sampler = RegularizedEvolutionSampler()
    assert isinstance(sampler.seed, int)
    assert RegularizedEvolutionSampler(sampler.seed).seed == sampler.seed


def test_reloaded_sampler_makes_the_same_next_proposal(tmp_path: Path) -> None:
    study = optuna.create_study(
        study_name="evo",
        storage=f"sqlite:///{tmp_path / 'a.db'}",
        direction="maximize",
        sampler=_sampler(seed=3),
    )
    _run(study, CONDITIONAL, 20)
    shutil.copy(tmp_path / "a.db", tmp_path / "b.db")
    reloaded = optuna.load_study(
        study_name="evo", storage=f"sqlite:///{tmp_path / 'b.db'}", sampler=_sampler(seed=3)
    )
    assert _run(reloaded, CONDITIONAL, 3) == _run(study, CONDITIONAL, 3)


def test_a_second_driver_on_the_same_storage_continues_the_search() -> None:
    storage = optuna.storages.InMemoryStorage()
    first = optuna.create_study(storage=storage, direction="maximize", sampler=_sampler(seed=4))
    _run(first, FLAT, 12)
    second = optuna.load_study(
        study_name=first.study_name, storage=storage, sampler=_sampler(seed=4)
    )
    _run(second, FLAT, 4)
    assert all(_lineage(t)["parent"] is not None for t in second.trials[12:])


def test_aging_the_oldest_die_even_when_best() -> None:
    dists = {"x": IntDistribution(0, 100)}
    study = optuna.create_study(sampler=_sampler(population_size=4, tournament_size=4))
    for x, value in [(0, -100.0), (10, 4.0), (20, 3.0), (30, 1.0), (40, 2.0)]:
        trial = optuna.trial.create_trial(params={"x": x}, distributions=dists, value=value)
        study.add_trial(trial)
    trial = study.ask()
    trial.suggest_int("x", 0, 100)
    study.tell(trial, 0.0)
    # The tournament covers the whole population: its best, not the dead champion.
    assert _lineage(study.trials[-1]) == {"parent": 3, "mutated": "x"}


def test_evolution_starts_after_the_startup_trials_and_the_population_grows() -> None:
    sampler = RegularizedEvolutionSampler(seed=3, population_size=12, tournament_size=6)
    assert sampler.n_startup_trials == 10  # min(10, population_size)
    study = optuna.create_study(sampler=sampler)
    _run(study, FLAT, 30)
    parents = [_lineage(t)["parent"] for t in study.trials]
    assert parents[:10] == [None] * 10
    assert all(p is not None for p in parents[10:])
    # While the population grows, parents come from every trial finished so far (the
    # 11th trial's tournament draws 5 of 10); once full, only from the 12 newest.
    assert all(p < i for i, p in enumerate(parents) if p is not None)
    assert all(p >= i - 12 for i, p in enumerate(parents) if p is not None)
    # The paper's start: the whole population random first.
    study = optuna.create_study(sampler=_sampler(population_size=12, n_startup_trials=12))
    _run(study, FLAT, 13)
    assert [_lineage(t)["parent"] is None for t in study.trials] == [True] * 12 + [False]


def test_failed_pruned_nan_and_inf_trials_are_never_parents() -> None:
    study = optuna.create_study(direction="maximize", sampler=_sampler(seed=2))
    for i in range(60):
        trial = study.ask()
        params = suggest(trial, FLAT)
        if i % 5 == 1:
            study.tell(trial, state=TrialState.FAIL)
        elif i % 5 == 2:
            trial.report(_score(params) + 100.0, step=1)  # a tempting low-fidelity value
            study.tell(trial, state=TrialState.PRUNED)
        elif i % 5 == 3:
            with pytest.warns(UserWarning, match="nan is not acceptable"):
                study.tell(trial, math.nan)  # Optuna records a NaN objective as FAIL
        else:
            study.tell(trial, math.inf if i % 10 == 4 else _score(params))
    parents = [_lineage(t)["parent"] for t in study.trials if _lineage(t)["parent"] is not None]
    assert parents
    for number in parents:
        parent = study.trials[number]
        assert parent.state == TrialState.COMPLETE and math.isfinite(parent.value)


def test_use_pruned_lets_pruned_trials_be_parents() -> None:
    study = optuna.create_study(direction="maximize", sampler=_sampler(seed=2, use_pruned=True))
    for i in range(30):
        trial = study.ask()
        params = suggest(trial, FLAT)
        if i % 2:
            trial.report(_score(params) + 100.0, step=1)
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, _score(params))
    parents = {_lineage(t)["parent"] for t in study.trials[8:]}
    assert any(study.trials[n].state == TrialState.PRUNED for n in parents)


def test_running_trials_do_not_block_and_children_are_new() -> None:
    space = SearchSpace({f"op{i}": Categorical(["a", "b", "c"]) for i in range(4)})
    study = optuna.create_study(sampler=_sampler(seed=6))
    for _ in range(10):
        trial = study.ask()
        study.tell(trial, float(sum(v == "a" for v in suggest(trial, space).values())))
    running = [study.ask() for _ in range(12)]  # asked together, none told yet
    proposals = [tuple(sorted(suggest(t, space).items())) for t in running]
    earlier = {tuple(sorted(t.params.items())) for t in study.trials[:10]}
    assert len(set(proposals)) == 12 and not set(proposals) & earlier
    for trial in running:
        study.tell(trial, 0.0)
    assert all(_lineage(t)["parent"] is not None for t in study.trials[10:])


def _best(sampler: optuna.samplers.BaseSampler, direction: str, budget: int) -> float:
    """Best of ``budget`` trials on a 6-decision toy with one optimum (distance 0)."""
    target = {"a": 3, "b": 0, "c": 4, "d": 1, "e": "y", "f": "w"}
    space = SearchSpace(
        {
            **{k: Int(0, 4) for k in "abcd"},
            **{k: Categorical(["v", "w", "x", "y", "z"]) for k in "ef"},
        }
    )
    sign = 1.0 if direction == "minimize" else -1.0
    study = optuna.create_study(direction=direction, sampler=sampler)
    for _ in range(budget):
        trial = study.ask()
        params = suggest(trial, space)
        distance = sum(
            abs(params[k] - v) if isinstance(v, int) else 2 * (params[k] != v)
            for k, v in target.items()
        )
        study.tell(trial, sign * distance)
    return sign * study.best_value


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_it_beats_random_search_at_a_fixed_budget(direction: str) -> None:
    seeds = range(5)
    evolution = [_best(make_controller("evolution", seed=s), direction, 80) for s in seeds]
    random = [_best(optuna.samplers.RandomSampler(seed=s), direction, 80) for s in seeds]
    assert statistics.median(evolution) <= statistics.median(random) - 2


def test_multi_objective_returns_varied_pareto_optimal_trials() -> None:
    space = SearchSpace(
        {"x": Int(0, 10), **{f"c{i}": Categorical(["good", "bad", "worse"]) for i in range(3)}}
    )
    sampler = _sampler(seed=8, population_size=12, tournament_size=4)
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler)
    for _ in range(100):
        trial = study.ask()
        params = suggest(trial, space)
        penalty = sum(params[f"c{i}"] != "good" for i in range(3))
        study.tell(trial, [params["x"] + penalty, params["x"] - penalty])
    front = study.best_trials
    assert all(all(t.params[f"c{i}"] == "good" for i in range(3)) for t in front)
    assert len({t.params["x"] for t in front}) >= 6


def test_pareto_ranks_peel_fronts() -> None:
    losses = np.array([[0, 3], [1, 1], [3, 0], [2, 2], [3, 3], [1, 1]], dtype=float)
    assert _pareto_ranks(losses).tolist() == [0, 0, 0, 1, 2, 0]


@pytest.mark.parametrize(
    "dist",
    [
        CategoricalDistribution(["a", "b", 1, True]),
        IntDistribution(1, 4),
        IntDistribution(1, 1024, log=True),
        IntDistribution(0, 12, step=3),
        FloatDistribution(1e-5, 1.0, log=True),
        FloatDistribution(0.0, 0.8, step=0.1),
        FloatDistribution(-2.0, 2.0),
    ],
    ids=repr,
)
def test_mutation_moves_within_the_distribution(dist: Any) -> None:
    rng = np.random.default_rng(0)
    param = param_from_optuna(dist)
    for _ in range(200):
        value = param.sample(rng)
        child = _mutate(dist, value, rng, 0.2)
        assert param.contains(child)
        assert (type(child), child) != (type(value), value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"population_size": 1}, "population_size must be at least 2"),
        ({"population_size": 2.5}, "population_size must be an int"),
        ({"tournament_size": 0}, "tournament_size must be an int from 1"),
        ({"population_size": 4, "tournament_size": 5}, r"population_size \(4\)"),
        ({"mutation_scale": 0.0}, "mutation_scale"),
        ({"n_startup_trials": 0}, "n_startup_trials must be an int from 1"),
        ({"population_size": 6, "n_startup_trials": 7}, r"population_size \(6\)"),
        ({"n_startup_trials": 2.0}, "n_startup_trials must be an int"),
    ],
)
def test_bad_options_raise_with_a_fix(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_controller("evolution", **options)


def test_bad_seed_raises() -> None:
    with pytest.raises(TypeError, match="seed must be an int"):
        RegularizedEvolutionSampler(seed="0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-negative"):
        RegularizedEvolutionSampler(seed=-1)


def test_booleans_and_integers_stay_apart() -> None:
    space = SearchSpace({"se": Categorical([True, False]), "groups": Categorical([1, 0])})
    study = optuna.create_study(sampler=_sampler(seed=9))
    for _ in range(30):
        trial = study.ask()
        params = suggest(trial, space)
        assert type(params["se"]) is bool and type(params["groups"]) is int
        study.tell(trial, float(params["groups"]) - params["se"])


def test_one_sampler_keeps_the_histories_of_two_studies_in_one_storage_apart() -> None:
    # The sampler caches what finished trials add to the history; a study must never see
    # another's, so its proposals equal those of a fresh sampler on its own.
    def objectives(study: optuna.Study, sign: float, n: int) -> list[dict[str, Any]]:
        study.optimize(lambda t: sign * suggest(t, FLAT)["depth"], n_trials=n)
        return [t.params for t in study.trials]

    storage = optuna.storages.InMemoryStorage()
    shared = make_controller("evolution", seed=5, population_size=6, tournament_size=3)
    a = optuna.create_study(study_name="a", storage=storage, sampler=shared)
    b = optuna.create_study(study_name="b", storage=storage, sampler=shared)
    objectives(a, 1.0, 25)
    got = objectives(b, -1.0, 25)
    alone = optuna.create_study(
        sampler=make_controller("evolution", seed=5, population_size=6, tournament_size=3)
    )
    assert got == objectives(alone, -1.0, 25)
