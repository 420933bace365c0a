"""The Recorder's rules, driven directly (the Ray adapters only forward to it)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

import optuna
import pytest
from optuna.trial import TrialState

from spaces import Categorical, Constraint, Float, SearchSpace
from studies.objectives import Objectives
from studies.recorder import Recorder
from studies.records import (
    ATTR_ARCH_ID,
    ATTR_ERROR,
    ATTR_REJECTED,
    ATTR_REPEAT_OF,
    ATTR_RESUMED_FROM,
    ATTR_TRACEBACK,
    ATTR_TRAINER_ID,
    load_study_record,
)
from studies.storage import open_storage
from studies.trial import RESUME_KEY, RESUME_REPORT_KEY
from trainers.base import ATTR_CHECKPOINT

ACC = Objectives.parse("acc", "maximize")


@pytest.fixture
def db_url(storage_url: str) -> str:
    """Every recorder test runs on SQLite and on PostgreSQL (tests/conftest.py)."""
    return storage_url


@pytest.fixture
def recorder(db_url: str) -> Iterator[Recorder]:
    storage = open_storage(db_url)
    study = optuna.create_study(
        study_name="r",
        storage=storage.optuna,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    space = SearchSpace({"x": Float(0.0, 1.0), "c": Categorical(["a", "b"]), "k": 3})
    finished: list[optuna.trial.FrozenTrial] = []
    rec = Recorder(
        study,
        storage,
        space,
        ACC,
        budget=lambda config: 3,
        num_trials=4,
        on_finish=finished.append,
    )
    rec.finished = finished  # type: ignore[attr-defined]
    yield rec
    rec.close()


def _report(rec: Recorder, key: str, epoch: int, acc: float) -> dict:
    result = {
        "epoch": epoch,
        "acc": acc,
        "loss": 1.0 / epoch,
        "archtune_keys": ["epoch", "acc", "loss"],
        "training_iteration": epoch,
        "time_total_s": 0.1,
    }
    rec.result(key, result)
    return result


def test_ask_nests_a_config_and_stops_after_num_trials(recorder: Recorder) -> None:
    configs = [recorder.ask(f"t{i}") for i in range(5)]
    assert configs[4] is None
    for c in configs[:4]:
        assert 0.0 <= c["x"] <= 1.0 and c["c"] in ("a", "b") and c["k"] == 3


def test_full_budget_is_complete_short_is_pruned(recorder: Recorder, db_url: str) -> None:
    recorder.ask("full")
    recorder.ask("short")
    for e in (1, 2):
        _report(recorder, "full", e, 0.5 + e / 10)
    last = {"epoch": 3, "acc": 0.9, "loss": 0.1, "archtune_keys": ["epoch", "acc", "loss"]}
    recorder.complete("full", last)  # the final report arrives only with completion
    short = _report(recorder, "short", 1, 0.2)
    recorder.complete("short", short)  # repeated last result must not duplicate rows
    recorder.flush()
    study = optuna.load_study(study_name="r", storage=db_url)
    full, pruned = study.trials
    assert full.state == TrialState.COMPLETE and full.value == pytest.approx(0.9)
    assert full.intermediate_values == {1: 0.6, 2: 0.7, 3: 0.9}
    assert pruned.state == TrialState.PRUNED and pruned.intermediate_values == {1: 0.2}
    assert [t.number for t in recorder.finished] == [0, 1]
    record = load_study_record(open_storage(db_url), "r")
    assert record.trials[0].metrics["loss"] == [(1, 1.0), (2, 0.5), (3, 0.1)]
    assert record.trials[1].metrics["acc"] == [(1, 0.2)]
    assert "time_total_s" not in record.trials[0].metrics


def test_failure_keeps_reason_and_traceback(recorder: Recorder, db_url: str) -> None:
    recorder.ask("bad")
    _report(recorder, "bad", 1, 0.3)
    recorder.fail("bad", "ValueError: boom", traceback="Traceback ...\nValueError: boom")
    recorder.flush()
    (t,) = optuna.load_study(study_name="r", storage=db_url).trials
    assert t.state == TrialState.FAIL
    assert t.user_attrs[ATTR_ERROR] == "ValueError: boom"
    assert t.user_attrs[ATTR_TRACEBACK].endswith("ValueError: boom")
    assert t.intermediate_values == {1: 0.3}, "what was reported before the failure is kept"


@pytest.mark.parametrize(
    ("last", "match"),
    [
        ({"epoch": 3, "acc": math.nan}, "was nan at epoch 3"),
        ({"epoch": 3, "loss": 0.1}, "reported no 'acc'"),
        (None, "reported no 'acc'"),
    ],
)
def test_unusable_final_results_fail(recorder: Recorder, db_url: str, last, match) -> None:
    recorder.ask("t")
    recorder.complete("t", last)
    recorder.flush()
    (t,) = optuna.load_study(study_name="r", storage=db_url).trials
    assert t.state == TrialState.FAIL
    assert re.search(match, t.user_attrs[ATTR_ERROR])


def test_open_trials_fail_when_the_run_ends(recorder: Recorder, db_url: str) -> None:
    recorder.ask("a")
    recorder.ask("b")
    _report(recorder, "a", 1, 0.4)
    recorder.fail_open_trials("The run stopped.")
    recorder.flush()
    states = [t.state for t in optuna.load_study(study_name="r", storage=db_url).trials]
    assert states == [TrialState.FAIL, TrialState.FAIL]
    recorder.complete("a", {"epoch": 3, "acc": 0.9})  # late events for told trials are ignored


def _constrained(db_url: str, limit: float) -> Recorder:
    storage = open_storage(db_url)
    study = optuna.create_study(
        study_name="c", storage=storage.optuna, sampler=optuna.samplers.RandomSampler(seed=1)
    )
    space = SearchSpace(
        {"width": Categorical([8, 64])}, constraints=[Constraint("params", max=limit)]
    )
    calls: list[set[str]] = []

    def stats(config, metrics):
        calls.append(metrics)
        return {"params": config["width"] ** 2 * 10}

    rec = Recorder(study, storage, space, ACC, budget=lambda c: 1, num_trials=3, stats=stats)
    rec.calls = calls  # type: ignore[attr-defined]
    return rec


def test_proposals_breaking_constraints_are_rejected_without_training(db_url: str) -> None:
    rec = _constrained(db_url, limit=10_000)
    configs = [rec.ask(f"t{i}") for i in range(3)]
    assert [c["width"] for c in configs] == [8, 8, 8]
    assert rec.calls[0] == {"params"}
    rec.flush()
    trials = optuna.load_study(study_name="c", storage=db_url).trials
    rejected = [t for t in trials if ATTR_REJECTED in t.user_attrs]
    assert rec.rejected == len(rejected) > 0
    for t in rejected:
        assert t.state == TrialState.FAIL and t.params["width"] == 64
        assert t.user_attrs[ATTR_REJECTED] == "params = 4.096e+04 > max 1e+04"
    assert all(ATTR_ARCH_ID in t.user_attrs for t in trials)


def test_search_stops_when_nothing_meets_the_constraints(db_url: str, monkeypatch) -> None:
    monkeypatch.setattr("studies.recorder.MAX_REJECTIONS", 5)
    rec = _constrained(db_url, limit=1)
    assert rec.ask("t0") is None
    assert rec.rejected == 5 and "loosen them" in rec.stopped


def test_writes_happen_off_the_calling_thread_but_in_order(recorder: Recorder, db_url) -> None:
    import threading

    writers: set[str] = set()
    recorder.on_finish = lambda t: writers.add(threading.current_thread().name)
    recorder.ask("t")
    for e in (1, 2, 3):
        _report(recorder, "t", e, e / 10)
    recorder.complete("t", {"epoch": 3, "acc": 0.3, "archtune_keys": ["epoch", "acc"]})
    recorder.close()
    (t,) = optuna.load_study(study_name="r", storage=db_url).trials
    assert t.intermediate_values == {1: 0.1, 2: 0.2, 3: 0.3} and t.state == TrialState.COMPLETE
    assert writers == {"archtune-writer"}


def test_a_proposal_whose_statistics_fail_is_rejected_not_fatal(db_url: str) -> None:
    rec = _constrained(db_url, limit=10_000)

    def stats(config, metrics):
        if config["width"] == 64:
            raise RuntimeError("cannot build")
        return {"params": 1}

    rec.stats = stats
    configs = [rec.ask(f"t{i}") for i in range(3)]
    assert [c["width"] for c in configs] == [8, 8, 8]
    rec.flush()
    rejected = [
        t
        for t in optuna.load_study(study_name="c", storage=db_url).trials
        if ATTR_REJECTED in t.user_attrs
    ]
    assert rejected and all(
        "RuntimeError: cannot build" in t.user_attrs[ATTR_REJECTED] for t in rejected
    )
    rec.close()


def _reusing(
    db_url: str, trainer_id: str = "A", reuse: bool = True, seed: int = 3, resume: bool = False
) -> Recorder:
    storage = open_storage(db_url)
    study = optuna.create_study(
        study_name="rep",
        storage=storage.optuna,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=seed),
        load_if_exists=True,
    )
    space = SearchSpace({"width": Categorical([8, 16]), "act": "relu"})
    return Recorder(
        study,
        storage,
        space,
        ACC,
        budget=lambda c: 2,
        num_trials=10,
        trainer_id=trainer_id,
        reuse=reuse,
        resume=resume,
    )


def _train(rec: Recorder, key: str, acc: float, epochs: int = 2) -> dict:
    config = rec.ask(key)
    assert config is not None
    for e in range(1, epochs + 1):
        last = _report(rec, key, e, acc)
    rec.checkpoint(key, f"/ckpt/{key}")
    rec.complete(key, last)
    return config


def test_repeats_of_completed_trials_take_their_result_without_training(
    db_url: str, monkeypatch
) -> None:
    monkeypatch.setattr("studies.recorder.MAX_REJECTIONS", 50)
    rec = _reusing(db_url)
    first = _train(rec, "t0", 0.7)
    second = _train(rec, "t1", 0.9)
    # Two configurations in the space: both trained once, then the search is used up.
    assert {first["width"], second["width"]} == {8, 16}
    assert rec.ask("t2") is None and "used up" in rec.stopped
    rec.close()
    assert rec.asked == 2 and rec.repeated >= 50
    trials = optuna.load_study(study_name="rep", storage=db_url).trials
    trained = {t.params["width"]: t for t in trials if ATTR_REPEAT_OF not in t.user_attrs}
    assert len(trained) == 2
    repeats = [t for t in trials if ATTR_REPEAT_OF in t.user_attrs]
    assert len(repeats) == rec.repeated
    for t in repeats:
        original = trained[t.params["width"]]
        assert t.state == TrialState.COMPLETE and t.value == original.value
        assert t.user_attrs[ATTR_REPEAT_OF] == original.number < t.number
        assert t.user_attrs[ATTR_CHECKPOINT] == original.user_attrs[ATTR_CHECKPOINT]
        assert t.user_attrs[ATTR_TRAINER_ID] == "A"


def test_a_new_driver_reuses_the_record_but_not_other_trainers_or_pruned_trials(
    db_url: str,
) -> None:
    rec = _reusing(db_url)
    _train(rec, "t0", 0.7)
    done = rec.ask("t1")  # the other width, stopped early by a scheduler: PRUNED
    _report(rec, "t1", 1, 0.5)
    rec.complete("t1", _report(rec, "t1", 1, 0.5))
    rec.close()
    again = _reusing(db_url, seed=11)  # e.g. `archtune resume`: rebuilt from storage
    config = again.ask("t2")
    assert config == done  # the PRUNED width is trained again; the COMPLETE one is not
    assert again.asked == 1
    again.close()
    other = _reusing(db_url, trainer_id="B", seed=11)  # another recipe: nothing reused
    assert other.ask("t3") is not None and other.repeated == 0
    other.close()


def test_without_reuse_repeats_are_trained(db_url: str) -> None:
    rec = _reusing(db_url, reuse=False)
    widths = [_train(rec, f"t{i}", 0.5)["width"] for i in range(6)]
    rec.close()
    assert len(widths) == 6 > len(set(widths)) and rec.repeated == 0


def _stop(rec: Recorder, key: str, checkpoint: str, epoch: int = 1) -> dict:
    """Train ``key`` until a scheduler stops it after ``epoch`` (of 2): PRUNED."""
    config = rec.ask(key)
    assert config is not None
    for e in range(1, epoch + 1):
        last = _report(rec, key, e, 0.1 * e)
    rec.checkpoint(key, checkpoint)
    rec.complete(key, last)
    return config


def _repeat(rec: Recorder, config: dict, key: str = "again") -> dict:
    """What ``rec`` sends to Ray when the controller proposes ``config`` again."""
    rec.study.enqueue_trial({"width": config["width"]})
    out = rec.ask(key)
    assert out is not None
    return out


def test_a_repeat_of_a_stopped_trial_goes_on_from_its_checkpoint(db_url: str, tmp_path) -> None:
    rec = _reusing(db_url, resume=True)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    stopped = _stop(rec, "t0", str(ckpt))
    config = _repeat(rec, stopped, "t1")
    assert config.pop(RESUME_KEY) == str(ckpt)
    # Sent again first, so the scheduler judges it again before any training.
    assert config.pop(RESUME_REPORT_KEY) == {"epoch": 1, "acc": pytest.approx(0.1)}
    assert config == stopped
    _report(rec, "t1", 1, 0.1)  # that report again: not a new epoch
    rec.complete("t1", _report(rec, "t1", 2, 0.8))  # trains epoch 2 only, then completes
    rec.close()
    assert rec.resumed == 1 and rec.asked == 2
    first, second = optuna.load_study(study_name="rep", storage=db_url).trials
    assert first.state == TrialState.PRUNED
    assert second.state == TrialState.COMPLETE and second.value == pytest.approx(0.8)
    assert second.user_attrs[ATTR_RESUMED_FROM] == first.number
    # The epochs before the checkpoint are carried over, so the curve is whole; the metric
    # rows of epoch 1 stay with the trial that trained it.
    assert second.intermediate_values == pytest.approx({1: 0.1, 2: 0.8})
    record = load_study_record(open_storage(db_url), "rep")
    assert record.trials[1].metrics["acc"] == [(2, pytest.approx(0.8))]


def test_a_trial_resumed_and_stopped_again_is_the_one_to_go_on_from(db_url: str, tmp_path) -> None:
    rec = _reusing(db_url, resume=True)
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    stopped = _stop(rec, "t0", str(first))
    assert _repeat(rec, stopped, "t1")[RESUME_KEY] == str(first)
    rec.checkpoint("t1", str(second))
    rec.complete("t1", {"epoch": 1, "acc": 0.2, "archtune_keys": ["epoch", "acc"]})
    assert _repeat(rec, stopped, "t2")[RESUME_KEY] == str(second)
    rec.close()


def test_resume_needs_the_option_the_same_trainer_and_a_checkpoint_it_can_read(
    db_url: str, tmp_path
) -> None:
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    rec = _reusing(db_url, resume=True)
    stopped = _stop(rec, "t0", str(ckpt))
    rec.close()

    def sent(**options) -> dict:
        driver = _reusing(db_url, **options)
        try:
            return _repeat(driver, stopped)
        finally:
            driver.close()

    # A new driver on the study (e.g. `archtune resume`) finds the stopped trial there.
    assert sent(resume=True, seed=11)[RESUME_KEY] == str(ckpt)
    assert RESUME_KEY not in sent(resume=False)  # the default: trained from scratch
    assert RESUME_KEY not in sent(resume=True, trainer_id="B")  # another recipe
    ckpt.rmdir()  # e.g. the run directory was deleted, or is on storage out of reach
    assert RESUME_KEY not in sent(resume=True)


def test_a_new_driver_answers_repeats_of_a_space_with_constants(db_url: str) -> None:
    # The space fixes "act"; Optuna stores only the sampled "width", and a driver that
    # reads the record back must still recognise the configuration.
    rec = _reusing(db_url)
    done = _train(rec, "t0", 0.7)
    rec.close()
    again = _reusing(db_url, seed=11)
    again.study.enqueue_trial({"width": done["width"]})
    again.ask("t1")
    again.close()
    assert again.repeated == 1


def test_ask_sees_every_earlier_tell_and_writes_on_one_thread(db_url: str) -> None:
    import threading
    import time

    seen: list[tuple[int, str]] = []

    class Watching(optuna.samplers.RandomSampler):
        def sample_independent(self, study, trial, name, distribution):
            done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            seen.append((len(done), threading.current_thread().name))
            return super().sample_independent(study, trial, name, distribution)

    storage = open_storage(db_url)
    study = optuna.create_study(study_name="w", storage=storage.optuna, sampler=Watching(seed=0))
    space = SearchSpace({"x": Float(0.0, 1.0)})
    rec = Recorder(study, storage, space, ACC, budget=lambda c: 1, num_trials=3)
    slow_write = rec.storage.add_metrics

    def slow(*args):  # the tell queued behind this epoch lands late
        time.sleep(0.3)
        slow_write(*args)

    rec.storage.add_metrics = slow  # type: ignore[method-assign]
    rec.ask("a")
    rec.complete("a", {"epoch": 1, "acc": 0.5, "archtune_keys": ["epoch", "acc"]})
    rec.ask("b")  # asked while the tell of "a" is still queued: it waits for it
    rec.close()
    assert [n for n, _ in seen] == [0, 1]
    assert {name for _, name in seen} == {"archtune-writer"}
