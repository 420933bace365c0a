"""The driver lease (one live driver per study), and what the next driver does with the
trials a dead one left RUNNING. Real SQLite files, real processes; no Ray."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import timedelta

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from search.optuna_access import trial_id
from spaces import Float, SearchSpace
from studies import lease as lease_module
from studies.lease import DriverAlive, Lease, _now, live_drivers
from studies.objectives import Objectives
from studies.recorder import Recorder
from studies.records import ATTR_PROPOSED, ATTR_TRAINER_ID
from studies.storage import DriverRow, open_storage
from studies.trial import RESUME_KEY, RESUME_REPORT_KEY
from trainers.base import ATTR_CHECKPOINT


def _row(storage, host: str, pid: int, start: float, beat_ago_s: float) -> None:
    now = _now()
    with storage.session() as s:
        s.add(
            DriverRow(
                study_id=1,
                host=host,
                pid=pid,
                process_start=start,
                started_at=now - timedelta(seconds=beat_ago_s),
                beat_at=now - timedelta(seconds=beat_ago_s),
            )
        )


def test_one_live_driver_per_study(db_url: str) -> None:
    storage = open_storage(db_url)
    first = Lease.acquire(storage, 1, "s")
    with pytest.raises(DriverAlive, match=rf"pid {os.getpid()} on host {socket.gethostname()}"):
        Lease.acquire(storage, 1, "s")
    other = Lease.acquire(storage, 2, "t")  # another study is free
    first.release()
    Lease.acquire(storage, 1, "s").release()
    other.release()
    assert live_drivers(storage, 1) == live_drivers(storage, 2) == []


def test_a_killed_driver_on_this_host_is_dead_at_once(db_url: str) -> None:
    storage = open_storage(db_url)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    start = lease_module._process_start(child.pid)
    _row(storage, socket.gethostname(), child.pid, start, beat_ago_s=0)
    assert [d.pid for d in live_drivers(storage, 1)] == [child.pid]
    child.kill()
    child.wait()
    assert live_drivers(storage, 1) == [], "its process is gone, however fresh its heartbeat"
    Lease.acquire(storage, 1, "s").release()  # the dead one's lease is cleared


def test_a_reused_pid_is_not_the_driver(db_url: str) -> None:
    storage = open_storage(db_url)
    _row(storage, socket.gethostname(), os.getpid(), start=1.0, beat_ago_s=0)
    assert live_drivers(storage, 1) == [], "this pid, but a process started at another time"


def test_another_hosts_driver_lives_by_its_heartbeat(db_url: str) -> None:
    storage = open_storage(db_url)
    _row(storage, "elsewhere", 1, 1.0, beat_ago_s=10)
    with pytest.raises(DriverAlive, match="on host elsewhere"):
        Lease.acquire(storage, 1, "s")
    with storage.session() as s:
        s.execute(sa.update(DriverRow).values(beat_at=_now() - timedelta(seconds=1000)))
    Lease.acquire(storage, 1, "s").release()


def test_a_lease_taken_away_is_noticed(db_url: str, monkeypatch) -> None:
    monkeypatch.setattr(lease_module, "HEARTBEAT_S", 0.05)
    storage = open_storage(db_url)
    held = Lease.acquire(storage, 1, "s")
    with storage.session() as s:
        s.execute(sa.delete(DriverRow))
    assert held.lost.wait(timeout=5), "the run is told to stop"
    held.release()


def test_two_drivers_starting_together_leave_one_lease(db_url: str) -> None:
    """Both may pass the first check; the one recorded first keeps the study."""
    storage = open_storage(db_url)
    code = (
        "import sys, time; from studies.lease import Lease, DriverAlive; "
        "from studies.storage import open_storage; s = open_storage(sys.argv[1]); "
        "ok = True\n"
        "try: lease = Lease.acquire(s, 1, 'x')\n"
        "except DriverAlive: ok = False\n"
        "print('held' if ok else 'refused', flush=True); time.sleep(3)"
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    racers = [
        subprocess.Popen([sys.executable, "-c", code, db_url], stdout=subprocess.PIPE, env=env)
        for _ in range(3)
    ]
    time.sleep(0.5)
    outcomes = sorted(p.communicate(timeout=60)[0].decode().strip() for p in racers)
    assert outcomes.count("held") == 1, outcomes
    assert len(live_drivers(storage, 1)) <= 1


def _interrupted_study(db_url: str, tmp_path, epochs_done: int) -> optuna.Study:
    """A study with one trial a dead driver left RUNNING after ``epochs_done`` epochs of 3,
    checkpointed."""
    storage = open_storage(db_url)
    study = optuna.create_study(study_name="i", storage=storage.optuna, direction="maximize")
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    for epoch in range(1, epochs_done + 1):
        trial.report(0.5, epoch)
        storage.add_metrics(trial_id(trial), epoch, {"epoch": epoch, "score": 0.5})
    trial.set_user_attr(ATTR_CHECKPOINT, str(checkpoint))
    trial.set_user_attr(ATTR_TRAINER_ID, "t")
    trial.set_user_attr(ATTR_PROPOSED, True)
    return study


def _adopting(study: optuna.Study, db_url: str) -> Recorder:
    running = study.get_trials(states=(TrialState.RUNNING,))
    return Recorder(
        study,
        open_storage(db_url),
        SearchSpace({"x": Float(0.0, 1.0)}),
        Objectives.parse("score", "maximize"),
        budget=lambda c: 3,
        num_trials=1,
        trainer_id="t",
        adopt=running,
    )


def test_an_interrupted_trial_goes_on_as_itself_from_its_checkpoint(db_url, tmp_path) -> None:
    study = _interrupted_study(db_url, tmp_path, epochs_done=2)
    rec = _adopting(study, db_url)
    config = rec.ask("ray-1")
    assert config[RESUME_KEY] == str(tmp_path / "checkpoint")
    assert config[RESUME_REPORT_KEY] == {"epoch": 2, "score": 0.5}
    rec.result("ray-1", {"epoch": 2, "score": 0.5})  # the epoch reported again: not new
    rec.complete("ray-1", {"epoch": 3, "score": 0.7})
    rec.close()
    (trial,) = study.trials
    assert trial.state == TrialState.COMPLETE and trial.value == 0.7
    assert trial.intermediate_values == {1: 0.5, 2: 0.5, 3: 0.7}
    rows = open_storage(db_url).metrics([trial_id(trial)])[trial_id(trial)]
    assert [step for step, _ in rows["score"]] == [1, 2, 3], "no epoch recorded twice"
    assert rec.restarted == 1 and rec.asked == 1


def test_an_interrupted_trial_checkpointed_at_its_last_epoch_completes(db_url, tmp_path) -> None:
    study = _interrupted_study(db_url, tmp_path, epochs_done=3)
    rec = _adopting(study, db_url)
    again = rec.ask("ray-1")[RESUME_REPORT_KEY]
    rec.complete("ray-1", again)  # nothing left to train: its report again is its result
    rec.close()
    (trial,) = study.trials
    assert trial.state == TrialState.COMPLETE and trial.value == 0.5
