"""The Optuna adapter: conversions both ways, and real Optuna sampling inside the space."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from spaces import Categorical, Fixed, Float, Int, SearchSpace, from_optuna, to_optuna


def _space() -> SearchSpace:
    return SearchSpace(
        {
            "a": Int(1, 9, step=2),
            "b": Int(2, 64, log=True),
            "g": {
                "lr": Float(1e-5, 1.0, log=True),
                "p": Float(0.0, 0.8, step=0.2),
                "c": Categorical(["x", None, 3]),
            },
            "k": Fixed(7),
        }
    )


def test_to_optuna_keeps_bounds_inclusive_and_skips_constants() -> None:
    dists = to_optuna(_space())
    assert set(dists) == {"a", "b", "g/lr", "g/p", "g/c"}
    assert dists["a"] == IntDistribution(1, 9, step=2)
    assert dists["b"] == IntDistribution(2, 64, log=True)
    assert dists["g/lr"] == FloatDistribution(1e-5, 1.0, log=True)
    assert dists["g/p"] == FloatDistribution(0.0, 0.8, step=0.2)
    assert dists["g/c"] == CategoricalDistribution(["x", None, 3])


def test_round_trip_through_optuna() -> None:
    space = _space()
    back = from_optuna(to_optuna(space))
    assert back.decisions() == space.decisions()


def test_optuna_samples_lie_in_the_space() -> None:
    space = _space()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(50):
        trial = study.ask(fixed_distributions=to_optuna(space))
        config = space.unflatten(trial.params)  # raises if a value lies outside
        assert config["k"] == 7
        study.tell(trial, 0.0)


def test_from_optuna_rejects_a_name_used_as_group_and_leaf() -> None:
    with pytest.raises(ValueError, match="group name"):
        from_optuna({"a/b": IntDistribution(1, 2), "a": IntDistribution(1, 2)})
