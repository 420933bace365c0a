"""Where a trial's time went (studies.overhead): the record, the driver's clock fed the
workers' stamps, the worker's stamps, the recorder's writes, and a real Ray Tune run."""

from __future__ import annotations

import math
import time
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from spaces import Categorical, Constraint, Float, Int, ResNetSpace, SearchSpace, TrainingSpace
from studies import Study, load_study_record, open_storage
from studies.objectives import Objectives
from studies.overhead import (
    PHASES,
    READY_KEY,
    SENT_KEY,
    STARTED_KEY,
    Overhead,
    TrialClock,
)
from studies.reads import StudyReader
from studies.recorder import Recorder
from studies.records import ATTR_OVERHEAD, ATTR_REPEAT_OF
from studies.trial import TuneSession, reported_keys

ACC = Objectives.parse("acc", "maximize")


def _stamped(started: float, sent: float, ready: float | None = None, **metrics: Any) -> dict:
    out = {**metrics, STARTED_KEY: started, SENT_KEY: sent, "archtune_keys": list(metrics)}
    if ready is not None:
        out[READY_KEY] = ready
    return out


# -- the record ----------------------------------------------------------------------------


def test_an_overhead_goes_to_json_and_back() -> None:
    o = Overhead(0.1, 0.2, 1.5, 8.0, 0.05, epochs=3, runs=1)
    assert o.to_json() == {
        "propose_s": 0.1,
        "queue_s": 0.2,
        "startup_s": 1.5,
        "train_s": 8.0,
        "record_s": 0.05,
        "epochs": 3,
        "runs": 1,
    }
    assert Overhead.from_json(o.to_json()) == o
    assert o.total_s == pytest.approx(9.85, abs=1e-5)
    assert Overhead(propose_s=0.3).to_json() == {"propose_s": 0.3}  # a repeat: nothing else


@pytest.mark.parametrize(
    "bad",
    [
        [1, 2],
        "3",
        {"queue_s": -1.0},
        {"train_s": math.nan},
        {"train_s": math.inf},
        {"runs": 1.5},
        {"propose_s": True},
        {"startup_s": "2"},
    ],
)
def test_what_is_not_an_overhead_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="verhead"):
        Overhead.from_json(bad)


def test_runs_add_up_and_missing_phases_stay_missing() -> None:
    a = Overhead(propose_s=1.0, queue_s=2.0, train_s=3.0, epochs=2, runs=1)
    b = Overhead(queue_s=0.5, startup_s=1.0, train_s=1.0, record_s=0.25, epochs=1, runs=1)
    both = a + b
    assert (both.propose_s, both.queue_s, both.startup_s, both.train_s) == (1.0, 2.5, 1.0, 4.0)
    assert (both.record_s, both.epochs, both.runs) == (0.25, 3, 2)
    assert (Overhead() + Overhead()).to_json() == {}


# -- the driver's clock ---------------------------------------------------------------------


def test_the_phases_follow_each_other_without_gaps() -> None:
    clock = TrialClock()
    clock.proposed(began=100.0, now=100.2)
    clock.seen(_stamped(101.0, 102.0))  # reported before training: no ready time
    for sent in (105.0, 108.0):
        clock.seen(_stamped(101.0, sent, ready=103.0, acc=0.5))
    clock.seen(_stamped(101.0, 108.0, ready=103.0, acc=0.5), final=True)  # Ray's repeat
    o = clock.overhead(now=108.5)
    assert (o.propose_s, o.queue_s, o.startup_s, o.train_s, o.record_s) == pytest.approx(
        (0.2, 0.8, 2.0, 5.0, 0.5)
    )
    assert (o.epochs, o.runs) == (2, 1)
    assert o.total_s == pytest.approx(108.5 - 100.0)


def test_clock_skew_is_clamped_at_zero() -> None:
    clock = TrialClock()
    clock.proposed(began=100.0, now=100.5)
    # The worker's clock is 10 s behind the driver's.
    clock.seen(_stamped(91.0, 95.0, ready=92.0), final=True)
    o = clock.overhead(now=106.0)
    assert o.queue_s == 0.0 and o.record_s == pytest.approx(11.0, abs=1e-5)
    assert (o.startup_s, o.train_s) == (1.0, 3.0)  # one machine's clock: exact


def test_a_trial_ray_restarts_adds_its_runs_up() -> None:
    clock = TrialClock()
    clock.proposed(began=0.0, now=1.0)
    clock.seen(_stamped(2.0, 6.0, ready=3.0))
    clock.restarted(now=10.0)  # the worker died in its second epoch
    clock.seen(_stamped(12.0, 15.0, ready=13.0))
    clock.seen(_stamped(12.0, 17.0, ready=13.0), final=True)
    o = clock.overhead(now=18.0)
    assert (o.queue_s, o.startup_s, o.train_s, o.record_s) == (3.0, 2.0, 7.0, 1.0)
    assert (o.epochs, o.runs) == (3, 2)


def test_an_error_report_ends_the_trial_and_is_no_epoch() -> None:
    clock = TrialClock()
    clock.proposed(began=0.0, now=0.0)
    clock.seen(_stamped(1.0, 4.0, ready=2.0))
    clock.seen(_stamped(1.0, 5.0), error=True)  # no ready: it keeps the one it had
    o = clock.overhead(now=5.5)
    assert (o.startup_s, o.train_s, o.record_s, o.epochs) == (1.0, 3.0, 0.5, 1)


def test_results_without_stamps_leave_only_the_proposal() -> None:
    clock = TrialClock()
    clock.proposed(began=0.0, now=0.25)
    clock.seen({"epoch": 1, "acc": 0.5})
    clock.seen(None, final=True)
    assert clock.overhead(now=9.0).to_json() == {"propose_s": 0.25}


# -- the worker's stamps --------------------------------------------------------------------


def test_the_worker_stamps_each_report_and_they_are_no_metrics(monkeypatch) -> None:
    sent: list[dict] = []
    monkeypatch.setattr("studies.trial.report", lambda payload, **kw: sent.append(payload))
    monkeypatch.setattr("studies.trial.get_checkpoint", lambda: None)
    monkeypatch.setattr("studies.trial._node_id", lambda: None)
    session = TuneSession(started=50.0)
    session.report({"epoch": 1, "acc": 0.5})  # a trainer that never restores
    assert sent[0][READY_KEY] == 50.0 and sent[0][SENT_KEY] >= 50.0
    session.restore()
    session.restore()  # only the first call marks the start of training
    ready = session.ready
    assert ready is not None and ready >= 50.0
    session.report({"epoch": 2, "acc": 0.6})
    assert sent[1][STARTED_KEY] == 50.0 and sent[1][READY_KEY] == ready
    assert reported_keys(sent[1]) == {"epoch", "acc"}
    bare = {k: v for k, v in sent[1].items() if k != "archtune_keys"}
    assert reported_keys(bare) == {"epoch", "acc"}, "stamps are Ray-side keys"


# -- the recorder ---------------------------------------------------------------------------


def _recorder(db_url: str, name: str, **options: Any) -> Recorder:
    storage = open_storage(db_url)
    study = optuna.create_study(
        study_name=name,
        storage=storage.optuna,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        load_if_exists=True,
    )
    space = options.pop("space", SearchSpace({"x": Float(0.0, 1.0)}))
    return Recorder(study, storage, space, ACC, budget=lambda c: 2, num_trials=9, **options)


def _attr(db_url: str, name: str) -> list[dict | None]:
    trials = optuna.load_study(study_name=name, storage=db_url).trials
    return [t.user_attrs.get(ATTR_OVERHEAD) for t in trials]


def test_a_told_trial_records_its_overhead_once(db_url: str) -> None:
    rec = _recorder(db_url, "o")
    rec.ask("a")
    t0 = time.time()
    rec.result("a", _stamped(t0 + 0.1, t0 + 0.3, ready=t0 + 0.2, epoch=1, acc=0.5))
    last = _stamped(t0 + 0.1, t0 + 0.4, ready=t0 + 0.2, epoch=2, acc=0.6)
    rec.result("a", last)
    rec.complete("a", last)
    rec.close()
    (o,) = _attr(db_url, "o")
    assert set(o) == {*PHASES, "epochs", "runs"} and (o["epochs"], o["runs"]) == (2, 1)
    assert o["train_s"] == pytest.approx(0.2, abs=1e-5) and o["startup_s"] == pytest.approx(
        0.1, abs=1e-5
    )
    assert all(o[p] >= 0 for p in PHASES)
    record = load_study_record(open_storage(db_url), "o")
    assert record.trials[0].overhead == o and not set(record.trials[0].metrics) & {
        STARTED_KEY,
        READY_KEY,
        SENT_KEY,
    }


def test_repeats_and_rejections_have_only_their_proposal(db_url: str, monkeypatch) -> None:
    monkeypatch.setattr("studies.recorder.MAX_REJECTIONS", 8)
    space = SearchSpace({"w": Categorical([8, 64])}, constraints=[Constraint("params", max=100)])
    params = lambda c, m: {"params": c["w"] ** 2}  # noqa: E731
    rec = _recorder(db_url, "r", space=space, stats=params, reuse=True, trainer_id="T")
    assert rec.ask("a") == {"w": 8}
    rec.complete("a", {"epoch": 2, "acc": 0.5})
    assert rec.ask("b") is None and rec.repeated and rec.rejected  # the space is used up
    rec.close()
    trials = optuna.load_study(study_name="r", storage=db_url).trials
    others = [t for t in trials if t.number > 0]
    assert any(ATTR_REPEAT_OF in t.user_attrs for t in others)
    assert any(t.state == TrialState.FAIL for t in others)
    for t in others:
        assert set(t.user_attrs[ATTR_OVERHEAD]) == {"propose_s"}


def test_an_interrupted_trial_keeps_its_time_and_the_next_run_adds_to_it(db_url: str) -> None:
    rec = _recorder(db_url, "i")
    rec.ask("a")
    t0 = time.time()
    rec.result("a", _stamped(t0 + 1.0, t0 + 4.0, ready=t0 + 2.0, epoch=1, acc=0.5))
    rec.interrupt_open_trials("Ctrl-C")
    rec.close()
    (first,) = _attr(db_url, "i")
    assert first["train_s"] == pytest.approx(2.0, abs=1e-5) and "record_s" not in first
    frozen = optuna.load_study(study_name="i", storage=db_url).trials
    again = _recorder(db_url, "i", adopt=frozen)
    again.ask("b")
    t1 = time.time()
    last = _stamped(t1 + 1.0, t1 + 6.0, ready=t1 + 3.0, epoch=2, acc=0.6)
    again.complete("b", last)
    again.close()
    (o,) = _attr(db_url, "i")
    assert o["runs"] == 2 and o["train_s"] == pytest.approx(5.0, abs=1e-5)
    assert o["startup_s"] == pytest.approx(3.0, abs=1e-5) and o["propose_s"] >= first["propose_s"]


# -- through Ray Tune -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_a_real_study_records_where_each_trials_time_went(db_url: str, tmp_path) -> None:
    space = SearchSpace(
        {
            "model": ResNetSpace(stages=2, depth=Int(1, 2), width=Categorical([8, 16])),
            "train": TrainingSpace(lr=Float(1e-3, 1e-2, log=True)),
        }
    )
    from trainers import ImageClassifier

    study = Study.create("ov", space, objective="val_acc", storage=db_url)
    study.run(
        ImageClassifier(dataset="digits", epochs=2),
        controller="random",
        num_trials=3,
        max_concurrent=2,
        scheduler="fifo",
        run_dir=str(tmp_path / "runs"),
        progress=False,
    )
    storage = open_storage(db_url)
    record = load_study_record(storage, "ov")
    done = [t for t in record.trials if t.state == "COMPLETE"]
    assert len(done) == 3
    for t in done:
        o = t.overhead
        assert o is not None and all(o[p] >= 0 for p in PHASES), o
        assert o["train_s"] > 0 and o["startup_s"] > 0 and (o["epochs"], o["runs"]) == (2, 1)
        # The phases follow each other from just before the trial was created to just
        # before its end was written (one machine: no clock skew, nothing clamped).
        total = sum(o[p] for p in PHASES)
        assert t.duration_s - 5.0 <= total <= t.duration_s + 0.5, (o, t.duration_s)
        assert not set(t.metrics) & {STARTED_KEY, READY_KEY, SENT_KEY}
    read = StudyReader(storage).load_record("ov")
    assert [t.overhead for t in read.trials] == [t.overhead for t in record.trials]


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_a_trial_ray_restarted_counts_both_runs(db_url: str, tmp_path) -> None:
    from tests.studies.toy import DyingTrainer

    space = SearchSpace({"x": Float(0.0, 1.0)})
    study = Study.create("ov-dying", space, objective="score", storage=db_url)
    study.run(
        DyingTrainer(str(tmp_path), die_after=1, epochs=3),  # its worker dies after epoch 1
        controller="random",
        num_trials=1,
        max_concurrent=1,
        run_dir=str(tmp_path / "runs"),
        progress=False,
    )
    (t,) = load_study_record(open_storage(db_url), "ov-dying").trials
    assert t.state == "COMPLETE" and len(t.restarts) == 1
    o = t.overhead
    assert (o["runs"], o["epochs"]) == (2, 3), o  # epoch 1, then 2 and 3 from its checkpoint
    assert all(o[p] >= 0 for p in PHASES) and o["train_s"] > 0
    assert sum(o[p] for p in PHASES) <= t.duration_s + 0.5  # the time it died in is in none
