"""Watching a run: the settings that ask for it, and the monitors' common rules."""

from __future__ import annotations

import dataclasses
import json
import socket
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from search import ControllerSpec
from spaces import Float, SearchSpace
from studies import RunSettings, Study
from studies.cli import main
from studies.monitor import MonitorError, MonitorGroup, RunMonitor, TrialEnd, monitoring
from studies.records import ATTR_RUN, ATTR_TRAINER
from studies.settings import run_record
from tests.studies.toy import ToyTrainer


def test_monitor_settings_are_checked_once_and_not_stored(tmp_path: Path) -> None:
    settings = RunSettings(tensorboard=tmp_path, metrics_port=0, metrics_host="0.0.0.0")
    assert settings.tensorboard == str(tmp_path), "a path is kept as text"
    stored = json.loads(json.dumps(settings.to_json()))
    assert not {"tensorboard", "metrics_port", "metrics_host"} & set(stored)
    assert RunSettings.from_json(stored) == RunSettings(), "how to watch is the resumer's choice"
    for bad in (-1, 65536, True, "8000", 1.5):
        with pytest.raises(ValueError, match="metrics_port must be a port number"):
            RunSettings(metrics_port=bad)
    with pytest.raises(ValueError, match="tensorboard must be a directory path"):
        RunSettings(tensorboard="")
    with pytest.raises(ValueError, match="metrics_host must be an address"):
        dataclasses.replace(settings, metrics_host=" ")


def test_a_monitor_that_raises_is_dropped_and_the_others_go_on() -> None:
    seen: list[int] = []

    class Broken(RunMonitor):
        def trial_started(self, number, params):
            raise OSError("disk full")

    class Counting(RunMonitor):
        def trial_started(self, number, params):
            seen.append(number)

    broken, counting = Broken(), Counting()
    group = MonitorGroup([broken, counting])
    group.trial_started(0, {})
    group.trial_started(1, {})
    assert seen == [0, 1] and group.monitors == [counting]
    group.trial_finished(TrialEnd(1, "COMPLETE", (0.5,)))  # the base class does nothing


def test_nested_monitoring_blocks_share_the_outer_ones_monitors() -> None:
    settings = RunSettings(metrics_port=0)
    with monitoring(settings) as outer:
        with monitoring(settings) as inner:
            assert inner is outer, "the port is bound once"
        assert len(outer.monitors) == 1
    with monitoring(RunSettings()) as none:
        assert none.monitors == [] and none is not outer


def test_a_failed_monitor_leaves_none_open(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = RunSettings(tensorboard=str(tmp_path / "tb"), metrics_port=port)
        with pytest.raises(MonitorError, match=f"127.0.0.1:{port}"), monitoring(settings):
            pass
    with monitoring(RunSettings(metrics_port=port)) as group:  # freed: it binds now
        assert len(group.monitors) == 1


def _run_study(db_url: str) -> Study:
    """A study that looks run once (its run record and trainer stored), without Ray."""
    study = Study.create("watched", SearchSpace({"x": Float(0.0, 1.0)}), "score", storage=db_url)
    trainer = ToyTrainer(epochs=1, seconds=0.0)
    record = run_record(RunSettings(num_trials=2), ControllerSpec("random"), 0)
    study.optuna.set_user_attr(ATTR_RUN, json.dumps(record))
    study.optuna.set_user_attr(ATTR_TRAINER, json.dumps(trainer.to_json()))
    return study


def test_resume_with_a_port_in_use_is_one_line_and_writes_nothing(
    db_url: str, tmp_path: Path, capsys
) -> None:
    _run_study(db_url)
    before = optuna.load_study(study_name="watched", storage=db_url).user_attrs
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = ["resume", "watched", "--storage", db_url, "--metrics-port", str(port)]
        assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"Cannot serve metrics on 127.0.0.1:{port}" in err
    study = optuna.load_study(study_name="watched", storage=db_url)
    assert study.trials == [] and study.user_attrs == before
    with sa.create_engine(db_url).connect() as db:  # no driver lease was taken
        assert db.execute(sa.text("SELECT COUNT(*) FROM archtune_drivers")).scalar() == 0
    # The TensorBoard directory is checked there too: a file in its way.
    (tmp_path / "board").write_text("not a directory")
    argv = ["resume", "watched", "--storage", db_url, "--tensorboard", str(tmp_path / "board")]
    assert main(argv) == 2
    assert "is not writable" in capsys.readouterr().err
