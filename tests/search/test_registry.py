"""The controller registry: names, options, seeding, and use in plain Optuna."""

from __future__ import annotations

import optuna
import pytest

from search import list_controllers, make_controller, register_controller


def test_lists_builtin_controllers_with_summaries() -> None:
    controllers = list_controllers()
    assert {"random", "tpe"} <= set(controllers)
    assert all(isinstance(s, str) and s for s in controllers.values())


def test_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"choose one of \[.*'random'.*'tpe'"):
        make_controller("bayes-magic")


def test_unknown_option_lists_valid_options() -> None:
    with pytest.raises(TypeError, match=r"no option\(s\) \['population'\].*n_startup_trials"):
        make_controller("tpe", population=10)


def test_duplicate_registration_is_an_error() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_controller("tpe", "again")(lambda seed=None: optuna.samplers.RandomSampler())


def _proposals(name: str, seed: int) -> list[float]:
    study = optuna.create_study(sampler=make_controller(name, seed=seed))
    study.optimize(lambda t: (t.suggest_float("x", -5, 5) - 1) ** 2, n_trials=15)
    return [t.params["x"] for t in study.trials]


@pytest.mark.parametrize("name", ["random", "tpe"])
def test_same_seed_same_proposals_in_plain_optuna(name: str) -> None:
    assert _proposals(name, 3) == _proposals(name, 3)
    assert _proposals(name, 3) != _proposals(name, 4)
