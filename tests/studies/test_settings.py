"""One shape for a run: RunSettings, the Experiment that holds one, and what a study stores."""

from __future__ import annotations

import dataclasses
import json

import optuna
import pytest

from search import ControllerSpec, make_controller
from spaces import Float, SearchSpace
from studies import Experiment, Study
from studies.records import ATTR_RUN
from studies.settings import RunSettings, load_run_record, run_record
from tests.studies.toy import ToyTrainer


def test_defaults_live_in_one_place_and_survive_the_json_round_trip() -> None:
    settings = RunSettings()
    assert (settings.num_trials, settings.max_concurrent, settings.max_retries) == (20, 2, 2)
    assert settings.scheduler == "fifo" and settings.resources_per_trial == {"cpu": 1}
    custom = RunSettings(
        num_trials=7,
        scheduler="asha",
        scheduler_options={"grace_period": 3},
        resources_per_trial={"cpu": 2, "gpu": 0},
        run_dir="/tmp/runs",
        max_retries=0,
        reuse_finished=False,
        resume_stopped=True,
    )
    stored = json.loads(json.dumps(custom.to_json()))
    assert "address" not in stored, "where to run is the resumer's choice"
    assert stored["scheduler_options"] == {"grace_period": 3, "reduction_factor": 3, "brackets": 1}
    assert RunSettings.from_json(stored) == custom


def test_options_equal_to_the_defaults_compare_equal() -> None:
    a = RunSettings(scheduler="asha", scheduler_options={"grace_period": 1})
    assert a == RunSettings(scheduler="asha") and a.scheduler_options == {}
    with pytest.raises(ValueError, match=r"Scheduler 'median' takes no option\(s\)"):
        dataclasses.replace(
            RunSettings(scheduler="asha", scheduler_options={"reduction_factor": 2}),
            scheduler="median",
        )


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunSettings().num_trials = 3  # type: ignore[misc]


def test_an_older_study_record_reads_back_with_defaults() -> None:
    old = {  # as archtune stored a run before RunSettings was one object
        "num_trials": 4,
        "max_concurrent": 1,
        "scheduler": "asha",
        "resources_per_trial": {"cpu": 1},
        "run_dir": None,
        "controller": "random",
        "finished_before": 2,
    }
    settings, spec, before = load_run_record(old)
    assert settings == RunSettings(num_trials=4, max_concurrent=1, scheduler="asha")
    assert spec == ControllerSpec("random") and before == 2
    again = load_run_record(json.loads(json.dumps(run_record(settings, spec, before))))
    assert again == (settings, spec, before)


def _experiment(tmp_path, **kwargs) -> Experiment:
    args = {
        "name": "exp",
        "space": SearchSpace({"x": Float(0.0, 1.0)}),
        "objective": "score",
        "trainer": ToyTrainer(epochs=2, seconds=0.0),
        "storage": f"sqlite:///{tmp_path / 'exp.db'}",
        **kwargs,
    }
    return Experiment(**args)


def test_experiment_holds_one_settings_object_and_takes_every_setting(tmp_path) -> None:
    exp = _experiment(
        tmp_path, num_trials=3, max_retries=0, reuse_finished=False, scheduler="median"
    )
    assert exp.settings == RunSettings(
        num_trials=3, max_retries=0, reuse_finished=False, scheduler="median"
    )
    from_settings = _experiment(tmp_path, settings=exp.settings, trainer=exp.trainer)
    assert from_settings == exp
    changed = exp.replace(num_trials=9, storage="sqlite:///other.db", max_concurrent=None)
    assert changed.settings == dataclasses.replace(exp.settings, num_trials=9)
    assert changed.storage == "sqlite:///other.db" and exp.settings.num_trials == 3
    with pytest.raises(TypeError, match=r"Unknown run setting\(s\) \['trials'\]"):
        exp.replace(trials=2)


def test_a_seed_goes_with_a_controller_named_by_string(tmp_path) -> None:
    assert _experiment(tmp_path, controller="evolution", seed=4).controller == ControllerSpec(
        "evolution", seed=4
    )
    with pytest.raises(TypeError, match="seed applies to a controller given by name"):
        _experiment(tmp_path, controller=make_controller("tpe"), seed=4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"controller": "annealing"}, "Unknown controller 'annealing'"),
        ({"scheduler": "hyperband"}, "Unknown scheduler"),
        ({"objective": "accuracy"}, "does not report"),
        ({"direction": "up"}, "direction must be one of"),
    ],
)
def test_a_bad_experiment_leaves_nothing_in_the_database(tmp_path, kwargs, match) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        _experiment(tmp_path, **kwargs).run(progress=False)
    storage = f"sqlite:///{tmp_path / 'exp.db'}"
    assert optuna.get_all_study_names(storage) == [], "no study was created"


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_a_corrected_experiment_can_use_the_name_a_refused_one_had(tmp_path) -> None:
    with pytest.raises(ValueError, match="does not report"):
        _experiment(tmp_path, objective="acc").run(progress=False)
    fixed = _experiment(tmp_path, num_trials=1, run_dir=str(tmp_path / "runs"))
    study = fixed.run(progress=False)
    assert study.objective == "score" and len(study.trials) == 1


def test_study_run_refuses_positional_settings_of_the_old_signature(db_url: str) -> None:
    study = Study.create("s", SearchSpace({"x": Float(0.0, 1.0)}), "score", storage=db_url)
    with pytest.raises(TypeError, match=r"settings must be a studies\.RunSettings"):
        study.run(ToyTrainer(), "random", 5)  # type: ignore[arg-type]
    assert study.trials == [] and ATTR_RUN not in study.optuna.user_attrs


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_a_foreign_sampler_is_stored_by_class_and_resumed_as_itself(db_url, tmp_path) -> None:
    space = SearchSpace({"x": Float(0.0, 1.0)})
    study = Study.create("cma", space, objective="score", storage=db_url)
    with pytest.warns(UserWarning, match="records only its class"):
        study.run(
            ToyTrainer(epochs=1, seconds=0.0),
            optuna.samplers.QMCSampler(seed=1),
            num_trials=2,
            max_concurrent=1,
            run_dir=str(tmp_path / "runs"),
            progress=False,
        )
    run = json.loads(study.optuna.user_attrs[ATTR_RUN])
    assert run["controller"] == {"name": "optuna.samplers.QMCSampler", "seed": None, "options": {}}
    again = Study.load("cma", db_url)
    assert again.resume(num_trials=1, progress=False) == 1
    assert type(again.optuna.sampler) is optuna.samplers.QMCSampler, "not TPE"
    assert len(again.trials) == 3
