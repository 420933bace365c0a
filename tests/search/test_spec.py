"""Controller specs: what a study stores to make its controller again on resume."""

from __future__ import annotations

import optuna
import pytest

from search import (
    ControllerSpec,
    controller_spec,
    list_controllers,
    make_controller,
    multi_objective_controllers,
)
from search.spec import importable


def test_make_controller_remembers_its_spec_without_writing_onto_the_sampler() -> None:
    sampler = make_controller("tpe", seed=3, n_startup_trials=4)
    assert controller_spec(sampler) == (ControllerSpec("tpe", 3, {"n_startup_trials": 4}), True)
    assert not [k for k in vars(sampler) if k.startswith("archtune")]


def test_a_rebuildable_controller_records_the_seed_it_drew() -> None:
    spec, exact = controller_spec(make_controller("rl"))
    assert exact and isinstance(spec.seed, int)
    again = spec.build()
    assert controller_spec(again)[0] == spec and again.seed == spec.seed


def test_a_foreign_sampler_is_recorded_by_its_public_import_path() -> None:
    spec, exact = controller_spec(optuna.samplers.CmaEsSampler(seed=1))
    assert not exact
    assert spec == ControllerSpec("optuna.samplers.CmaEsSampler")
    assert type(spec.build()) is optuna.samplers.CmaEsSampler


def test_a_spec_by_import_path_passes_its_seed_and_options() -> None:
    spec = ControllerSpec("optuna.samplers.QMCSampler", seed=5, options={"qmc_type": "halton"})
    sampler = spec.build()
    assert type(sampler) is optuna.samplers.QMCSampler
    assert controller_spec(sampler) == (spec, True)
    with pytest.raises(TypeError, match=r"takes no option\(s\) \['sigma'\]; its options"):
        ControllerSpec("optuna.samplers.QMCSampler", options={"sigma": 1}).build()


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("annealing", r"Unknown controller 'annealing'; choose one of \[.*'tpe'.*\] or give"),
        ("optuna.samplers.NoSuchSampler", "AttributeError"),
        ("optuna.study.Study", "'optuna.study.Study' is <class"),
    ],
)
def test_an_unknown_name_or_path_says_what_it_accepts(name: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ControllerSpec(name).build()


def test_a_class_another_process_cannot_import_is_marked_so() -> None:
    class Local(optuna.samplers.RandomSampler):
        pass

    spec, exact = controller_spec(Local())
    assert not exact and not importable(spec)
    assert importable(ControllerSpec("tpe"))
    assert importable(ControllerSpec("optuna.samplers.CmaEsSampler"))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": ""}, "non-empty string"),
        ({"name": "tpe", "seed": "0"}, "seed must be an int"),
        ({"name": "tpe", "options": [1]}, "must be a dict"),
        ({"name": "tpe", "options": {"f": print}}, "not JSON-able"),
    ],
)
def test_bad_specs_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        ControllerSpec(**kwargs)


def test_json_round_trip_and_the_old_bare_name() -> None:
    spec = ControllerSpec("evolution", 2, {"population_size": 8})
    assert ControllerSpec.from_json(spec.to_json()) == spec
    assert ControllerSpec.from_json("random") == ControllerSpec("random")


def test_one_rule_for_the_seed_of_a_continued_run() -> None:
    # Rebuildable controllers continue the same search with their seed ...
    for name in ("evolution", "rl", "nni-tpe"):
        assert ControllerSpec(name, seed=4).continued(10).seed == 4
    # ... the others would replay their first proposals, so they move on by the trial count.
    assert ControllerSpec("tpe", seed=4).continued(10).seed == 14
    assert ControllerSpec("tpe", seed=4).continued(0).seed == 4
    assert ControllerSpec("tpe").continued(10).seed is None


def test_multi_objective_controllers_are_listed_and_work_in_plain_optuna() -> None:
    names = multi_objective_controllers()
    assert {"evolution", "nsga2", "tpe", "random", "gp", "rl"} <= set(names)
    assert not {"nni-tpe", "nni-evolution"} & set(names)
    assert set(names) <= set(list_controllers())
    for name in names:
        study = optuna.create_study(
            directions=["maximize", "minimize"], sampler=make_controller(name, seed=0)
        )
        study.optimize(
            lambda t: (t.suggest_float("x", 0, 1), t.suggest_int("w", 1, 8) / 8), n_trials=12
        )
        assert study.best_trials, name
