"""Interrupted is not failed: real driver processes killed (SIGKILL), stopped (Ctrl-C,
SIGTERM), and a live driver's study refused to a second one; the database is counted
afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import psutil
import pytest
from optuna.trial import TrialState

from search.optuna_access import study_id
from studies import Study
from studies.lease import DriverAlive, live_drivers
from studies.records import ATTR_INTERRUPTED, load_study_record
from studies.storage import open_storage
from tests.studies.toy import CheckpointingTrainer

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_session")]

ROOT = Path(__file__).resolve().parents[2]

STUDY_FILE = textwrap.dedent(
    """
    from spaces import Float, SearchSpace
    from studies import Experiment
    from tests.studies.toy import CheckpointingTrainer

    experiment = Experiment(
        name="faults",
        space=SearchSpace({"x": Float(0.0, 1.0)}),
        objective="score",
        trainer=CheckpointingTrainer(@LOG@, epochs=4, seconds=@SECONDS@),
        controller="evolution",
        seed=0,
        num_trials=4,
        max_concurrent=2,
        storage=@DB@,
        run_dir=@RUNS@,
    )
    """
)


def _start_driver(tmp_path: Path, seconds: float = 0.3) -> subprocess.Popen:
    """``archtune run`` of a 4-trial study, 2 at a time, whose trials stay at their first
    epoch (checkpointed) until the test removes ``hold``."""
    (tmp_path / "hold").touch()
    study_file = tmp_path / "study.py"
    text = STUDY_FILE.replace("@LOG@", repr(str(tmp_path)))
    text = text.replace("@SECONDS@", repr(seconds)).replace("@RUNS@", repr(str(tmp_path / "runs")))
    study_file.write_text(text.replace("@DB@", repr(_url(tmp_path))))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen(
        [sys.executable, "-m", "studies.cli", "run", str(study_file)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'faults.db'}"


def _wait_for_a_checkpoint(tmp_path: Path, driver: subprocess.Popen, timeout: float = 120) -> None:
    """Until two RUNNING trials have a checkpoint recorded (so they can go on from it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert driver.poll() is None, driver.communicate()[1][-3000:]
        try:
            trials = optuna.load_study(study_name="faults", storage=_url(tmp_path)).trials
        except KeyError:  # not created yet
            trials = []
        if any(
            t.state == TrialState.RUNNING and "archtune:checkpoint" in t.user_attrs for t in trials
        ):
            return
        time.sleep(0.2)
    raise AssertionError("no trial checkpointed in time")


def _log(tmp_path: Path) -> list[tuple[str, float, int]]:
    """``(kind, x, n)`` in order: ``start`` from epoch n, or ``epoch`` n trained."""
    lines = (tmp_path / "log").read_text().split("\n")
    return [(kind, float(x), int(n)) for kind, x, n in (ln.split() for ln in lines if ln)]


def _check_nothing_trained_twice(tmp_path: Path) -> list[float]:
    """A configuration is trained from scratch again only when its first training was
    cut before any epoch ended; otherwise it goes on from a checkpoint. Returns those
    that went on from one."""
    trained: dict[float, int] = {}  # epochs ended so far, by configuration
    went_on = []
    for kind, x, n in _log(tmp_path):
        if kind == "epoch":
            trained[x] = max(trained.get(x, 0), n)
        elif n == 0:
            assert trained.get(x, 0) == 0, f"{x} trained from scratch after epoch {trained[x]}"
        else:
            assert 0 < n <= trained[x], f"{x} went on from epoch {n} it never trained"
            went_on.append(x)
    return went_on


def _integrity(tmp_path: Path) -> str:
    with sqlite3.connect(tmp_path / "faults.db") as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def _resume_and_check(tmp_path: Path) -> None:
    """Resume in this process; every configuration trained to its end, none twice, the
    interrupted ones from their checkpoint; the file intact."""
    (tmp_path / "hold").unlink(missing_ok=True)
    study = Study.load("faults", _url(tmp_path))
    study.resume(progress=False)
    trials = optuna.load_study(study_name="faults", storage=_url(tmp_path)).trials
    assert all(t.state == TrialState.COMPLETE for t in trials), "all ended, none failed"
    assert len(trials) == 4, "the run's 4 trials, none lost, none added"
    assert all(sorted(t.intermediate_values) == [1, 2, 3, 4] for t in trials)
    assert {x for kind, x, _ in _log(tmp_path)} == {t.params["x"] for t in trials}
    assert _check_nothing_trained_twice(tmp_path), (
        "an interrupted trial went on from its checkpoint"
    )
    assert _integrity(tmp_path) == "ok"
    assert Study.load("faults", _url(tmp_path)).resume(progress=False) == 0, "budget spent"
    assert live_drivers(open_storage(_url(tmp_path)), study_id(study.optuna)) == []


def _kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL the driver, then what it started (its local Ray instance), as a lost
    machine would."""
    family = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    for child in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def test_a_driver_killed_mid_study_loses_nothing_on_resume(tmp_path: Path) -> None:
    driver = _start_driver(tmp_path)
    try:
        _wait_for_a_checkpoint(tmp_path, driver)
    finally:
        _kill_tree(driver)
    before = optuna.load_study(study_name="faults", storage=_url(tmp_path)).trials
    running = [t for t in before if t.state == TrialState.RUNNING]
    assert len(running) == 2 and not [t for t in before if t.state == TrialState.FAIL]
    assert _integrity(tmp_path) == "ok"
    _resume_and_check(tmp_path)
    after = optuna.load_study(study_name="faults", storage=_url(tmp_path)).trials
    assert {t.number for t in running} <= {t.number for t in after}, "the same trials went on"


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_run_cleanly_and_a_live_driver_keeps_its_study(
    tmp_path: Path, signum: int, status: int
) -> None:
    driver = _start_driver(tmp_path)
    try:
        _wait_for_a_checkpoint(tmp_path, driver)
        # While the driver lives, nobody else may resume or run the study.
        with pytest.raises(DriverAlive, match=rf"pid {driver.pid} on host .* since"):
            Study.load("faults", _url(tmp_path)).resume(progress=False)
        with pytest.raises(DriverAlive, match="cannot run it while it runs"):
            Study.load("faults", _url(tmp_path)).run(
                CheckpointingTrainer(str(tmp_path)), "random", num_trials=1, progress=False
            )
        driver.send_signal(signum)
        out, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            _kill_tree(driver)
    assert driver.returncode == status, err[-3000:]
    name = signal.Signals(signum).name
    assert f"stopped by {name}" in err and "archtune resume faults" in err
    assert "Traceback" not in err and "Best trial" not in out
    trials = optuna.load_study(study_name="faults", storage=_url(tmp_path)).trials
    running = [t for t in trials if t.state == TrialState.RUNNING]
    assert len(running) == 2, "the open trials are kept, not failed"
    assert all(name in t.user_attrs[ATTR_INTERRUPTED][-1] for t in running)
    assert not [t for t in trials if t.state == TrialState.FAIL]
    record = load_study_record(open_storage(_url(tmp_path)), "faults")
    assert {record.trials[t.number].state for t in running} == {"INTERRUPTED"}, "as views show"
    _resume_and_check(tmp_path)


def test_a_database_that_fails_mid_run_stops_it_with_one_line(tmp_path: Path, capsys) -> None:
    from studies.cli import main

    study_file = tmp_path / "broken.py"
    study_file.write_text(
        textwrap.dedent(
            f"""
            from spaces import Float, SearchSpace
            from studies import Experiment
            from tests.studies.toy import TableDroppingTrainer

            experiment = Experiment(
                name="broken",
                space=SearchSpace({{"x": Float(0.0, 1.0)}}),
                objective="score",
                trainer=TableDroppingTrainer({str(tmp_path / "broken.db")!r}),
                controller="random",
                num_trials=2,
                max_concurrent=1,
                storage={f"sqlite:///{tmp_path / 'broken.db'}"!r},
                run_dir={str(tmp_path / "runs")!r},
            )
            """
        )
    )
    assert main(["run", str(study_file)]) == 2
    err = capsys.readouterr().err
    assert "The study database failed during the run of 'broken'" in err
    assert "no such table: archtune_metrics" in err and "archtune resume broken" in err
    assert "Traceback" not in err
    with sqlite3.connect(tmp_path / "broken.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        running = db.execute("SELECT COUNT(*) FROM trials WHERE state = 'RUNNING'").fetchone()
    assert running == (1,), "the trial that was running is kept to go on, not failed"
    storage = open_storage(f"sqlite:///{tmp_path / 'broken.db'}")
    assert live_drivers(storage, 1) == [], "the driver let go of the study"
