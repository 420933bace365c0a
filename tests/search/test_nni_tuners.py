"""NNI 3 tuners as samplers: space conversion, determinism, usefulness, edge cases."""

from __future__ import annotations

import math
import random

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from search import make_controller
from search.nni_tuners import (
    MAX_CHOICES,
    NniTunerSampler,
    _decode,
    _encode,
    _shared_space,
    _usable,
)
from search.optuna_access import study_storage, trial_id
from spaces import Categorical, Float, Int, SearchSpace
from spaces.optuna_adapter import suggest

optuna.logging.set_verbosity(optuna.logging.WARNING)
NAMES = ["nni-tpe", "nni-evolution"]
OPTIONS = {"nni-tpe": {"n_startup_trials": 5}, "nni-evolution": {"population_size": 6}}


def _space() -> SearchSpace:
    return SearchSpace(
        {
            "width": Int(8, 64, log=True),
            "depth": Int(1, 9, step=2),
            "blocks": Int(1, 4),
            "lr": Float(1e-4, 1e-1, log=True),
            "drop": Float(0.05, 0.45, step=0.1),  # low off NNI's grid: written as a choice
            "decay": Float(0.0, 1.0, step=0.25),
            "mom": Float(0.0, 1.0),
            "act": Categorical(["relu", "gelu", "silu"]),
            "se": Categorical([True, False]),
        }
    )


def _score(c: dict) -> float:
    return (
        -abs(math.log10(c["lr"]) + 2.5)
        - abs(c["depth"] - 5) / 4
        - abs(c["mom"] - 0.9)
        - c["drop"]
        + 0.3 * (c["act"] == "gelu")
        + math.log2(c["width"]) / 6
    )


def _run(sampler: optuna.samplers.BaseSampler, n: int, space: SearchSpace) -> list[dict]:
    study = optuna.create_study(direction="maximize", sampler=sampler)
    configs = []
    for _ in range(n):
        trial = study.ask()
        config = space.unflatten(suggest(trial, space))
        configs.append(config)
        study.tell(trial, _score(config))
    return configs


def test_encoding_goes_through_the_adapter_and_keeps_every_value_exact() -> None:
    assert _encode("lr", FloatDistribution(1e-4, 0.1, log=True)) == {
        "_type": "loguniform",
        "_value": [1e-4, 0.1],
    }
    assert _encode("n", IntDistribution(1, 4)) == {"_type": "randint", "_value": [1, 5]}
    assert _encode("d", IntDistribution(1, 9, step=2))["_value"] == [1, 3, 5, 7, 9]
    assert _encode("w", IntDistribution(8, 64, log=True))["_value"] == list(range(8, 65))
    assert _encode("p", FloatDistribution(0.05, 0.45, step=0.1))["_type"] == "choice"
    assert _encode("q", FloatDistribution(0.0, 1.0, step=0.25))["_type"] == "quniform"
    assert _decode(FloatDistribution(0.0, 1.0, step=0.25), 0.7500000001) == 0.75
    assert _decode(IntDistribution(1, 4), 3.0) == 3
    with pytest.raises(ValueError, match="up to 1000"):
        _encode("big", IntDistribution(1, 10 * MAX_CHOICES, log=True))


@pytest.mark.parametrize("name", NAMES)
def test_proposals_lie_in_the_space(name: str) -> None:
    space = _space()
    configs = _run(make_controller(name, seed=0, **OPTIONS[name]), 25, space)
    for config in configs:
        assert space.check_config(config) == config
    assert len({str(c) for c in configs}) == len(configs)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_sequence_and_global_random_untouched(name: str) -> None:
    random.seed(5)
    np.random.seed(5)
    before = (random.getstate(), np.random.get_state()[1].copy())
    runs = [_run(make_controller(name, seed=s, **OPTIONS[name]), 14, _space()) for s in (3, 3, 4)]
    assert runs[0] == runs[1] != runs[2]
    assert random.getstate() == before[0]
    assert (np.random.get_state()[1] == before[1]).all()


@pytest.mark.parametrize("name", NAMES)
def test_beats_random_search_on_a_toy_objective(name: str) -> None:
    space = SearchSpace(
        {
            "lr": Float(1e-4, 1e-1, log=True),
            "mom": Float(0.0, 1.0),
            "depth": Int(1, 9, step=2),
            "act": Categorical(["relu", "gelu", "silu"]),
            "drop": Float(0.0, 0.5),
            "width": Int(8, 64, log=True),
        }
    )
    n = {"nni-tpe": 50, "nni-evolution": 80}[name]  # evolution needs its population first
    gaps = []
    for seed in range(4):
        ours = max(map(_score, _run(make_controller(name, seed=seed), n, space)))
        rand = max(map(_score, _run(optuna.samplers.RandomSampler(seed=seed), n, space)))
        gaps.append(ours - rand)
    assert np.mean(gaps) > 0.1, gaps  # 12 seeds: TPE +0.27..0.43, evolution +0.25..0.51


def test_failed_pruned_and_nan_trials_are_not_reported() -> None:
    study = optuna.create_study(sampler=NniTunerSampler("tpe", seed=0))
    for i in range(8):
        trial = study.ask()
        x = trial.suggest_float("x", 0, 1)
        if i % 4 == 0:  # only here: would shrink the modelled space if it counted
            trial.suggest_int("only_failed", 0, 3)
        if i % 4 == 0:
            study.tell(trial, state=TrialState.FAIL)
        elif i % 4 == 1:
            study.tell(trial, state=TrialState.PRUNED)
        elif i % 4 == 2:
            with pytest.warns(UserWarning, match="nan is not acceptable"):
                study.tell(trial, math.nan)
        else:
            study.tell(trial, x)
    assert [t.number for t in _usable(study, -1)] == [3, 7]
    assert list(_shared_space(_usable(study, -1))) == ["x"]


def test_space_is_what_every_usable_trial_shares() -> None:
    study = optuna.create_study(sampler=NniTunerSampler("evolution", seed=0, population_size=2))
    for i in range(4):
        trial = study.ask()
        trial.suggest_categorical("a", ["p", "q"])
        if i % 2:
            trial.suggest_float("b", 0, 1)
        study.tell(trial, float(i))
    space = _shared_space(_usable(study, -1))
    assert space == {"a": CategoricalDistribution(["p", "q"])}
    trial = study.ask()  # "b" is conditional here: drawn at random, still in range
    assert 0 <= trial.suggest_float("b", 0, 1) <= 1


@pytest.mark.parametrize("name", NAMES)
def test_several_objectives_are_refused(name: str) -> None:
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=make_controller(name, seed=0)
    )
    with pytest.raises(ValueError, match="single-objective"):
        study.ask().suggest_float("x", 0, 1)


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="population_size"):
        make_controller("nni-evolution", population_size=1)
    with pytest.raises(TypeError, match="population_size"):
        make_controller("nni-tpe", population_size=4)
    with pytest.raises(ValueError, match="choose one of"):
        NniTunerSampler("smac")
    with pytest.raises(TypeError, match="seed"):
        NniTunerSampler("tpe", seed="0")  # type: ignore[arg-type]


def test_nni_stays_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    _run(NniTunerSampler("tpe", seed=0, n_startup_trials=2), 5, _space())
    out = capsys.readouterr()
    assert "random seed" not in out.out + out.err


@pytest.mark.parametrize("name", NAMES)
def test_a_rebuilt_sampler_proposes_what_the_original_would(name: str) -> None:
    space = _space()
    study = optuna.create_study(
        direction="maximize", sampler=make_controller(name, seed=3, **OPTIONS[name])
    )
    for i in range(14):
        trial = study.ask()
        config = space.unflatten(suggest(trial, space))
        study.tell(trial, state=TrialState.FAIL) if i == 4 else study.tell(trial, _score(config))
    trial = study.ask()
    original = suggest(trial, space)
    # A fresh sampler (a crash, another process) has no cache: it rebuilds from the study.
    fresh = make_controller(name, seed=3, **OPTIONS[name])
    plan = fresh._plan(study, study_storage(study).get_trial(trial_id(trial)))
    assert plan.proposal and all(original[k] == v for k, v in plan.proposal.items())
