"""Studies through real Ray Tune into a real SQLite file, checked with Optuna's own API."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.trial import TrialState

from spaces import Categorical, Constraint, Float, Int, ResNetSpace, SearchSpace, TrainingSpace
from studies import Study, load_study_record, open_storage
from studies.records import (
    ATTR_ARCH_ID,
    ATTR_ERROR,
    ATTR_REJECTED,
    ATTR_REPEAT_OF,
    ATTR_RESUMED_FROM,
    ATTR_RUN,
    ATTR_TRACEBACK,
)
from tests.studies.toy import (
    CountingTrainer,
    DyingTrainer,
    FadingTrainer,
    FlakyClassifier,
    RaisingTrainer,
    ToyTrainer,
)
from trainers import ImageClassifier
from trainers.base import ATTR_CHECKPOINT
from trainers.checkpoint import model_from_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_session")]


def _digits_space() -> SearchSpace:
    return SearchSpace(
        {
            "model": ResNetSpace(stages=2, depth=Int(1, 2), width=Categorical([8, 16])),
            "train": TrainingSpace(lr=Float(1e-3, 1e-2, log=True)),
        }
    )


def test_digits_study_records_every_trial(db_url: str, tmp_path) -> None:
    study = Study.create("e2e", _digits_space(), objective="val_acc", storage=db_url)
    wanted = [
        {"model/depth": 1, "model/width": 16, "train/lr": 0.005},
        {"model/depth": 2, "model/width": 8, "train/lr": 0.005},  # raises after epoch 1
        {"model/depth": 1, "model/width": 16, "train/lr": 0.002},
    ]
    for params in wanted:
        study.optuna.enqueue_trial(params)
    study.run(
        FlakyClassifier(dataset="digits", epochs=2),
        controller="random",
        num_trials=4,
        max_concurrent=2,
        scheduler="fifo",
        run_dir=str(tmp_path / "runs"),
        progress=False,
    )

    loaded = optuna.load_study(study_name="e2e", storage=db_url)
    trials = loaded.trials
    assert len(trials) == 4
    for t, params in zip(trials, wanted, strict=False):
        assert t.params == pytest.approx(params)
    failed = trials[1]
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs[ATTR_ERROR] == "RuntimeError: width 8 is cursed"
    assert 'toy.py", line' in failed.user_attrs[ATTR_TRACEBACK]
    assert "\x1b[" not in failed.user_attrs[ATTR_TRACEBACK], "terminal colours are stripped"
    assert failed.intermediate_values == {1: 0.1}
    ok = [t for t in trials if t.params["model/width"] == 16]
    assert ok and all(t.state == TrialState.COMPLETE for t in ok)
    for t in ok:
        assert sorted(t.intermediate_values) == [1, 2]
        assert t.value == pytest.approx(t.intermediate_values[2])
        assert t.value > 0.5
    # The last checkpoint of a trial is recorded, and the network it holds runs.
    import torch

    net = model_from_checkpoint(ok[0].user_attrs[ATTR_CHECKPOINT])
    assert net(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    record = load_study_record(open_storage(db_url), "e2e")
    for t in record.trials:
        if t.state == "COMPLETE":
            for name in ("val_loss", "train_loss", "train_acc", "seconds", "samples_per_s", "lr"):
                assert [s for s, _ in t.metrics[name]] == [1, 2], name
    assert study.best_trial is not None and study.best_trial.state == TrialState.COMPLETE
    assert study.best_config()["model"]["width"] == 16


def _run_asha(
    name: str, xs: tuple[float, ...], db_url: str, tmp_path, trainer=None, **options
) -> Study:
    """Trials of the toy objective at ``xs`` in order, one at a time, under ASHA."""
    study = Study.create(
        name,
        SearchSpace({"x": Float(0.0, 1.0)}),
        objective="score",
        storage=db_url,
        load_if_exists=True,
    )
    for x in xs:
        study.optuna.enqueue_trial({"x": x})
    study.run(
        trainer or ToyTrainer(epochs=4),
        controller="random",
        num_trials=len(xs),
        max_concurrent=1,
        scheduler="asha",
        run_dir=str(tmp_path / "runs"),
        progress=False,
        **options,
    )
    return study


def test_asha_stopped_trials_are_pruned_not_complete(db_url: str, tmp_path) -> None:
    _run_asha("asha", (0.9, 0.1, 0.2, 0.95), db_url, tmp_path)
    trials = optuna.load_study(study_name="asha", storage=db_url).trials
    by_x = {round(t.params["x"], 2): t for t in trials}
    assert by_x[0.9].state == TrialState.COMPLETE
    assert by_x[0.1].state == TrialState.PRUNED
    assert by_x[0.1].intermediate_values == {1: 0.1}
    assert by_x[0.1].value == pytest.approx(0.1), "Optuna keeps the last intermediate value"
    for t in trials:
        full = len(t.intermediate_values) == 4
        assert (t.state == TrialState.COMPLETE) == full
        assert t.state in (TrialState.COMPLETE, TrialState.PRUNED)


def test_asha_grace_period_is_kept_and_stored_for_resume(db_url: str, tmp_path) -> None:
    study = _run_asha(
        "asha-grace", (0.9, 0.1), db_url, tmp_path, scheduler_options={"grace_period": 2}
    )
    by_x = {round(t.params["x"], 2): t for t in study.optuna.trials}
    # With grace 2 the first rung is at epoch 2: the weak trial runs 2 epochs, not 1.
    assert by_x[0.1].state == TrialState.PRUNED
    assert by_x[0.1].intermediate_values == {1: 0.1, 2: 0.1}
    assert by_x[0.9].state == TrialState.COMPLETE
    run = json.loads(study.optuna.user_attrs[ATTR_RUN])
    assert run["scheduler_options"] == {"grace_period": 2, "reduction_factor": 3, "brackets": 1}


def test_a_trial_stopped_at_its_last_epoch_is_complete(db_url: str, tmp_path) -> None:
    # Where the epochs are the grace period times a power of the reduction factor (here
    # 3 = 1 x 3), Ray's ASHA (2.x) also has a rung at the last epoch and may stop a trial
    # there. Whatever its verdict, that trial trained in full: COMPLETE, with its last
    # value (the nasbench replay relies on this and has no rung there).
    # x=0.9 ends at 0.1; x=0.95 passes the rung at epoch 1 (0.95 >= 0.9) and ends at 0.05,
    # below the 0.1 recorded at the rung at epoch 3, where ASHA judges it last.
    study = _run_asha("asha-last-rung", (0.9, 0.95), db_url, tmp_path, FadingTrainer(epochs=3))
    by_x = {round(t.params["x"], 2): t for t in study.optuna.trials}
    late = by_x[0.95]
    assert late.state == TrialState.COMPLETE
    assert late.value == pytest.approx(0.05)
    assert list(late.intermediate_values) == [1, 2, 3]
    assert study.best_trial.params["x"] == pytest.approx(0.9)


def test_a_stopped_trial_proposed_again_goes_on_from_its_checkpoint(db_url: str, tmp_path) -> None:
    # Checkpoints every epoch, resumes from a checkpoint, reports where it started from.
    trainer = DyingTrainer(str(tmp_path), die_after=0, epochs=4)
    study = _run_asha(
        "asha-resume", (0.9, 0.1, 0.1), db_url, tmp_path, trainer, resume_stopped=True
    )
    _, stopped, judged = study.optuna.trials
    assert stopped.state == TrialState.PRUNED and stopped.intermediate_values == {1: 0.1}
    # Proposed again, it is judged again at epoch 1 before any training, and stopped.
    assert judged.user_attrs[ATTR_RESUMED_FROM] == stopped.number
    assert judged.state == TrialState.PRUNED and judged.intermediate_values == {1: 0.1}
    record = load_study_record(open_storage(db_url), "asha-resume")
    assert record.trials[judged.number].metrics == {}, "it trained no epoch"
    # Proposed in a new run, whose fresh ASHA (no other trial at its rungs) lets it go on.
    _run_asha("asha-resume", (0.1,), db_url, tmp_path, trainer, resume_stopped=True)
    again = study.optuna.trials[-1]
    assert again.user_attrs[ATTR_RESUMED_FROM] == judged.number
    assert again.state == TrialState.COMPLETE
    assert again.intermediate_values == {1: 0.1, 2: 0.1, 3: 0.1, 4: 0.1}
    # It trained epochs 2 to 4 only, from the checkpoint of epoch 1.
    record = load_study_record(open_storage(db_url), "asha-resume")
    assert record.trials[again.number].metrics["resumed_from"] == [(2, 1), (3, 1), (4, 1)]
    assert json.loads(study.optuna.user_attrs[ATTR_RUN])["resume_stopped"] is True


def test_resume_runs_the_rest_and_does_not_charge_a_cut_off_proposal(
    db_url: str, tmp_path
) -> None:
    study = Study.create(
        "resume", SearchSpace({"x": Float(0.0, 1.0)}), objective="score", storage=db_url
    )
    study.run(
        ToyTrainer(epochs=2),
        controller="random",
        num_trials=2,
        run_dir=str(tmp_path / "runs"),
        progress=False,
    )
    # Simulate a driver that died: the run asked for 5 trials, one was left RUNNING while
    # it was being proposed (no configuration yet): it is failed, but not charged to the
    # run, which trains 3 more (issue 15: interrupted is not failed).

    run = json.loads(study.optuna.user_attrs[ATTR_RUN])
    study.optuna.set_user_attr(ATTR_RUN, json.dumps({**run, "num_trials": 5}))
    study.optuna.ask()
    again = Study.load("resume", db_url)
    assert again.resume(progress=False) == 3
    states = [t.state for t in optuna.load_study(study_name="resume", storage=db_url).trials]
    assert states.count(TrialState.COMPLETE) == 5
    assert states[2] == TrialState.FAIL
    assert len(states) == 6


def test_repeated_proposals_are_answered_from_the_record_not_trained(
    db_url: str, tmp_path
) -> None:
    space = SearchSpace({"x": Categorical([0.0, 1.0, 2.0])})
    study = Study.create("repeats", space, objective="score", storage=db_url)
    trainer = CountingTrainer(str(tmp_path))
    options = {"controller": "random", "max_concurrent": 1, "progress": False}
    study.run(trainer, num_trials=3, run_dir=str(tmp_path / "runs"), **options)
    trained = (tmp_path / "trained").read_text().split()
    assert sorted(trained) == ["0.0", "1.0", "2.0"], "each configuration trained once"
    trials = optuna.load_study(study_name="repeats", storage=db_url).trials
    firsts = {t.params["x"]: t for t in trials if ATTR_REPEAT_OF not in t.user_attrs}
    assert len(firsts) == 3 and all(t.state == TrialState.COMPLETE for t in trials)
    for t in trials:
        if ATTR_REPEAT_OF in t.user_attrs:
            assert t.user_attrs[ATTR_REPEAT_OF] == firsts[t.params["x"]].number
            assert t.value == t.params["x"]
    assert study.n_trained() == 3
    # The space is used up: a further run trains nothing and stops its search.
    study.run(trainer, num_trials=2, run_dir=str(tmp_path / "runs"), **options)
    assert len((tmp_path / "trained").read_text().split()) == 3
    # With reuse turned off, repeats are trained again.
    study.run(
        trainer, num_trials=2, run_dir=str(tmp_path / "runs"), reuse_finished=False, **options
    )
    assert len((tmp_path / "trained").read_text().split()) == 5
    assert study.n_trained() == 5


def test_constraints_reject_big_networks_before_training(db_url: str, tmp_path) -> None:
    space = SearchSpace(
        {
            "model": ResNetSpace(stages=1, depth=1, width=Categorical([4, 64])),
            "train": TrainingSpace(),
        },
        constraints=[Constraint("params", max=5_000)],
    )
    study = Study.create("constrained", space, objective="val_acc", storage=db_url)
    for width in (64, 4, 64, 4):
        study.optuna.enqueue_trial({"model/width": width})
    study.run(
        ImageClassifier(dataset="digits", epochs=1),
        controller="random",
        num_trials=2,
        run_dir=str(tmp_path / "runs"),
        progress=False,
    )
    trials = optuna.load_study(study_name="constrained", storage=db_url).trials
    trained = [t for t in trials if t.state == TrialState.COMPLETE]
    rejected = [t for t in trials if ATTR_REJECTED in t.user_attrs]
    assert [t.params["model/width"] for t in trained] == [4, 4]
    assert [t.params["model/width"] for t in rejected] == [64, 64]
    assert all(t.state == TrialState.FAIL and not t.intermediate_values for t in rejected)
    assert rejected[0].user_attrs[ATTR_REJECTED].startswith("params = ")
    ids = {t.user_attrs[ATTR_ARCH_ID] for t in trained}
    assert len(ids) == 1, "the same network gets the same arch_id"


def test_a_trial_whose_worker_died_restarts_from_its_checkpoint(db_url: str, tmp_path) -> None:
    study = Study.create(
        "dying", SearchSpace({"x": Float(0.0, 1.0)}), objective="score", storage=db_url
    )
    study.optuna.enqueue_trial({"x": 0.5})
    study.run(
        DyingTrainer(str(tmp_path), die_after=1, epochs=3),
        controller="random",
        num_trials=1,
        max_concurrent=1,
        run_dir=str(tmp_path / "runs"),
        progress=False,
    )
    (trial,) = optuna.load_study(study_name="dying", storage=db_url).trials
    assert (tmp_path / "died-0.5").exists(), "the first attempt's worker really died"
    assert trial.state == TrialState.COMPLETE
    assert trial.intermediate_values == {1: 0.5, 2: 0.5, 3: 0.5}
    record = load_study_record(open_storage(db_url), "dying")
    resumed = dict(record.trials[0].metrics["resumed_from"])
    assert resumed[2] == 1 and resumed[3] == 1, "the restart went on from epoch 1's checkpoint"
    # The restart is recorded: after which epoch, where, and Ray's word for the death.
    (restart,) = record.trials[0].restarts
    assert restart["epoch"] == 1 and restart["error"], restart
    assert restart["node"] == record.trials[0].node and record.trials[0].node is not None


def test_errors_raised_by_a_trial_are_not_retried(db_url: str, tmp_path) -> None:
    study = Study.create(
        "no-retry", SearchSpace({"x": Float(0.0, 1.0)}), objective="score", storage=db_url
    )
    study.run(
        RaisingTrainer(str(tmp_path)),
        controller="random",
        num_trials=1,
        max_retries=3,
        run_dir=str(tmp_path / "runs"),
        progress=False,
    )
    (trial,) = optuna.load_study(study_name="no-retry", storage=db_url).trials
    assert trial.state == TrialState.FAIL
    assert (
        trial.user_attrs[ATTR_ERROR] == "FloatingPointError: Training loss became nan in epoch 2"
    )
    assert "toy.py" in trial.user_attrs[ATTR_TRACEBACK]
    assert (tmp_path / "starts").read_text().count("start") == 1, "ran once, not retried"
    assert "archtune:restarts" not in trial.user_attrs


def test_a_trial_trains_data_parallel_on_two_workers(db_url: str, tmp_path) -> None:
    space = SearchSpace(
        {
            "model": ResNetSpace(stages=2, depth=1, width=8),
            "train": TrainingSpace(lr=Float(2e-3, 4e-3)),
        }
    )
    study = Study.create("ddp", space, objective="val_acc", storage=db_url)
    study.run(
        ImageClassifier(dataset="digits", epochs=2),
        controller="random",
        num_trials=1,
        max_concurrent=1,
        resources_per_trial={"cpu": 2, "workers": 2},
        run_dir=str(tmp_path / "runs"),
        progress=False,
    )
    (trial,) = optuna.load_study(study_name="ddp", storage=db_url).trials
    assert trial.state == TrialState.COMPLETE, trial.user_attrs.get(ATTR_ERROR)
    assert sorted(trial.intermediate_values) == [1, 2]
    assert trial.value > 0.6, "two gloo workers averaging gradients still learn digits"
    # Both ranks trained: each epoch saw the whole (drop-last) training split once.
    single = ImageClassifier(dataset="digits", epochs=2).load_data()
    record = load_study_record(open_storage(db_url), "ddp")
    seen = (
        dict(record.trials[0].metrics["samples_per_s"])[1]
        * dict(record.trials[0].metrics["seconds"])[1]
    )
    assert seen == pytest.approx(single.num_train // 64 * 64, rel=1e-6)


def test_a_study_distils_from_a_trial_of_an_earlier_study(db_url: str, tmp_path) -> None:
    teacher = Study.create("teacher", _digits_space(), objective="val_acc", storage=db_url)
    teacher.optuna.enqueue_trial({"model/depth": 1, "model/width": 16, "train/lr": 0.005})
    teacher.run(
        ImageClassifier(dataset="digits", epochs=3),
        controller="random",
        num_trials=1,
        run_dir=str(tmp_path / "runs"),
        progress=False,
    )
    space = SearchSpace(
        {
            "model": ResNetSpace(stages=2, depth=1, width=8),
            # alpha = 1: the students never see a label, only the teacher's outputs.
            "train": TrainingSpace(lr=Float(3e-3, 6e-3), distill_alpha=1.0),
        }
    )
    student = Study.create("student", space, objective="val_acc", storage=db_url)
    student.run(
        ImageClassifier(
            dataset="digits",
            epochs=3,
            teacher={"study": "teacher", "trial": 0, "storage": db_url},
        ),
        controller="random",
        num_trials=2,
        run_dir=str(tmp_path / "runs"),
        progress=False,
    )
    trials = optuna.load_study(study_name="student", storage=db_url).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2, [
        t.user_attrs.get(ATTR_ERROR) for t in trials
    ]
    assert all(t.value > 0.5 for t in trials), "label-free students learn from the teacher"
