"""Study creation, loading and run-argument validation (all before any Ray work)."""

from __future__ import annotations

import optuna
import pytest

from spaces import Categorical, Float, Int, ResNetSpace, SearchSpace, TrainingSpace
from studies import Study
from trainers import ImageClassifier


def _space(width=(8, 16)) -> SearchSpace:
    return SearchSpace(
        {
            "model": ResNetSpace(stages=1, depth=Int(1, 2), width=Categorical(list(width))),
            "train": TrainingSpace(lr=Float(1e-3, 1e-2, log=True)),
        }
    )


def test_create_records_space_and_objective_for_optuna_and_archtune(db_url: str) -> None:
    Study.create("s", _space(), objective="val_acc", direction="maximize", storage=db_url)
    loaded = Study.load("s", db_url)
    assert loaded.space == _space() and loaded.objective == "val_acc"
    assert loaded.direction == "maximize" and loaded.best_trial is None
    plain = optuna.load_study(study_name="s", storage=db_url)
    assert plain.direction == optuna.study.StudyDirection.MAXIMIZE


def test_existing_names_and_mismatches_are_refused(db_url: str) -> None:
    Study.create("s", _space(), objective="val_acc", storage=db_url)
    with pytest.raises(ValueError, match="already exists"):
        Study.create("s", _space(), objective="val_acc", storage=db_url)
    again = Study.create("s", _space(), "val_acc", storage=db_url, load_if_exists=True)
    assert again.name == "s"
    with pytest.raises(ValueError, match="different space"):
        Study.create("s", _space(width=(4,)), "val_acc", storage=db_url, load_if_exists=True)
    with pytest.raises(ValueError, match="exists with objective"):
        Study.create("s", _space(), "val_loss", "minimize", storage=db_url, load_if_exists=True)
    with pytest.raises(KeyError, match=r"studies there: \['s'\]"):
        Study.load("other", db_url)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": " "}, ValueError, "non-empty"),
        ({"direction": "up"}, ValueError, "direction must be one of"),
        ({"objective": ""}, ValueError, "objective must name"),
        ({"space": SearchSpace({"model": ResNetSpace()})}, ValueError, "no decisions"),
        ({"space": {"x": 1}}, TypeError, "must be a SearchSpace"),
    ],
)
def test_create_validates(db_url: str, kwargs, error, match) -> None:
    args = {"name": "s", "space": _space(), "objective": "val_acc", "storage": db_url, **kwargs}
    with pytest.raises(error, match=match):
        Study.create(**args)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"scheduler": "hyperband9"}, ValueError, r"Unknown scheduler 'hyperband9'; choose one"),
        ({"num_trials": 0}, ValueError, "num_trials must be a positive integer"),
        ({"max_concurrent": -1}, ValueError, "max_concurrent must be a positive"),
        ({"resources_per_trial": {"cpu": -1}}, ValueError, "must be a number >= 0"),
        ({"resources_per_trial": {"cpu": 0, "gpu": 0}}, ValueError, "positive 'cpu' or 'gpu'"),
        ({"address": "somewhere"}, ValueError, "is not a Ray address"),
        ({"controller": "annealing"}, ValueError, "Unknown controller 'annealing'"),
        ({"controller": 42}, TypeError, "must be an Optuna sampler"),
        ({"trainer": object()}, TypeError, "must be an archtune Trainer"),
        ({"resume_stopped": "yes"}, ValueError, "resume_stopped must be True or False"),
        (
            {"scheduler": "asha", "scheduler_options": {"grace": 2}},
            ValueError,
            r"takes no option\(s\) \['grace'\]; it takes \['brackets', 'grace_period'",
        ),
        (
            {"scheduler": "fifo", "scheduler_options": {"grace_period": 2}},
            ValueError,
            "Scheduler 'fifo' takes no option",
        ),
        (
            {"scheduler": "asha", "scheduler_options": {"reduction_factor": 1}},
            ValueError,
            r"\['reduction_factor'\] must be an integer >= 2",
        ),
        (
            {"scheduler": "median", "scheduler_options": {"grace_period": 2.5}},
            ValueError,
            r"\['grace_period'\] must be an integer >= 1",
        ),
        ({"scheduler": "asha", "scheduler_options": [3]}, TypeError, "must be a dict"),
        (
            {"scheduler": "asha", "scheduler_options": {"grace_period": 2}},
            ValueError,
            "grace_period=2 is more than the trainer's 1 epochs",
        ),
    ],
)
def test_run_validates_before_starting_anything(db_url: str, kwargs, error, match) -> None:
    study = Study.create("s", _space(), objective="val_acc", storage=db_url)
    args = {"trainer": ImageClassifier(epochs=1), **kwargs}
    with pytest.raises(error, match=match):
        study.run(**args)
    assert study.trials == []


def test_objective_must_be_reported_by_the_trainer(db_url: str) -> None:
    study = Study.create("s", _space(), objective="accuracy", storage=db_url)
    with pytest.raises(ValueError, match=r"does not report; it reports \['epoch', 'val_acc'"):
        study.run(ImageClassifier(epochs=1))


def test_resume_stopped_needs_a_trainer_that_reports_its_epoch(db_url: str) -> None:
    class NoEpochs(ImageClassifier):
        metrics = ("val_acc", "val_loss")

    study = Study.create("s", _space(), objective="val_acc", storage=db_url)
    with pytest.raises(ValueError, match=r"resume_stopped needs a trainer that reports 'epoch'"):
        study.run(NoEpochs(epochs=1), scheduler="asha", resume_stopped=True)


def test_resume_rebuilds_the_controller_with_its_options() -> None:
    from search import ControllerSpec, controller_spec
    from studies.plan import make_sampler

    stored = ControllerSpec("tpe", seed=3, options={"n_startup_trials": 4})
    plan = make_sampler(stored, trials_before=6)
    tpe = plan.sampler
    assert type(tpe).__name__ == "TPESampler" and tpe._n_startup_trials == 4
    # Optuna's samplers keep their random state in memory: resumed with the old seed they
    # would replay their first proposals, so the seed moves on by the trials already run.
    assert plan.spec.seed == 9 and controller_spec(tpe)[0] == plan.spec
    assert make_sampler("random").spec.name == "random"


def test_resume_keeps_the_seed_of_a_rebuildable_controller() -> None:
    from search import ControllerSpec, controller_spec, make_controller
    from studies.plan import make_sampler

    stored = ControllerSpec("evolution", 5, {"population_size": 8, "tournament_size": 3})
    plan = make_sampler(stored, trials_before=6)
    assert plan.spec == stored and controller_spec(plan.sampler)[0] == stored
    drawn = controller_spec(make_controller("rl"))[0].seed
    assert isinstance(drawn, int), "the seed a rebuildable controller drew is kept for resume"


def test_a_controller_named_by_string_stores_the_seed_it_drew() -> None:
    from search import controller_spec
    from studies.plan import make_sampler

    plan = make_sampler("evolution")
    assert isinstance(plan.spec.seed, int) and plan.spec.seed == plan.sampler.seed
    assert controller_spec(plan.sampler)[0] == plan.spec
    assert make_sampler(plan.spec, trials_before=7).spec == plan.spec, "resumed as itself"


def test_resume_checks_everything_before_touching_stale_trials(db_url: str) -> None:
    import json

    from studies.records import ATTR_RUN, ATTR_TRAINER

    study = Study.create("s", _space(), objective="val_acc", storage=db_url)
    study.optuna.set_user_attr(ATTR_TRAINER, json.dumps(ImageClassifier(epochs=1).to_json()))
    run = {"num_trials": 2, "controller": {"name": "tpe", "options": {"bogus": 1}}}
    study.optuna.set_user_attr(ATTR_RUN, json.dumps(run))
    study.optuna.ask()  # left RUNNING by a driver that died
    with pytest.raises(TypeError, match=r"no option\(s\) \['bogus'\]"):
        Study.load("s", db_url).resume(progress=False)
    assert [t.state.name for t in study.trials] == ["RUNNING"], "nothing changed"
