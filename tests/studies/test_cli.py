"""The archtune command line, on real studies: demo, run, resume, ls, show, report, errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from studies.cli import main

pytestmark = pytest.mark.slow

STUDY_FILE = textwrap.dedent(
    """
    from spaces import Categorical, Float, Int, ResNetSpace, SearchSpace, TrainingSpace
    from studies import Experiment
    from trainers import ImageClassifier

    experiment = Experiment(
        name="cli-study",
        space=SearchSpace({
            "model": ResNetSpace(stages=1, depth=Int(1, 2), width=Categorical([8, 16])),
            "train": TrainingSpace(lr=Float(1e-3, 1e-2, log=True)),
        }),
        objective="val_acc",
        trainer=ImageClassifier(dataset="digits", epochs=1),
        controller="@CONTROLLER@",
        seed=0,
        num_trials=2,
        storage="sqlite:///@DB@",
    )
    """
)


def _study_file(tmp_path: Path, controller: str = "random") -> Path:
    path = tmp_path / "study.py"
    text = STUDY_FILE.replace("@DB@", str(tmp_path / "cli.db"))
    path.write_text(text.replace("@CONTROLLER@", controller))
    return path


def test_demo_runs_a_real_study_and_writes_a_report(tmp_path: Path) -> None:
    env = {**os.environ, "ARCHTUNE_DEBUG": "1"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "studies.cli", "demo", "--trials", "8", "--epochs", "2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Best trial #" in proc.stdout and '"model"' in proc.stdout
    assert "8/8" in proc.stderr, "the progress bar shows trials done / total"
    assert "Trial status" not in proc.stdout + proc.stderr, "no Ray status tables"
    study = optuna.load_study(
        study_name="demo-digits-resnet", storage=f"sqlite:///{tmp_path}/archtune.db"
    )
    assert len(study.trials) == 8
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
    report = tmp_path / "demo-digits-resnet.html"
    assert report.exists() and "demo-digits-resnet" in report.read_text()


@pytest.mark.usefixtures("ray_session")
def test_run_then_ls_show_report_resume(tmp_path: Path, capsys) -> None:
    path = _study_file(tmp_path)
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["run", str(path), "--trials", "3"]) == 0
    out = capsys.readouterr().out
    assert "Best trial #" in out
    assert len(optuna.load_study(study_name="cli-study", storage=db).trials) == 3

    assert main(["ls", "--storage", db]) == 0
    out = capsys.readouterr().out
    assert "cli-study" in out and "val_acc" in out

    assert main(["show", "cli-study", "--storage", db]) == 0
    out = capsys.readouterr().out
    assert "model/depth" in out and "COMPLETE" in out

    target = tmp_path / "r.html"
    assert main(["report", "cli-study", "-o", str(target), "--storage", db]) == 0
    assert target.exists() and "cli-study" in target.read_text()

    assert main(["resume", "cli-study", "--storage", db]) == 0
    assert "has run all its trials" in capsys.readouterr().out
    assert main(["resume", "cli-study", "--trials", "1", "--storage", db]) == 0
    assert len(optuna.load_study(study_name="cli-study", storage=db).trials) == 4


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["run", "{tmp}/missing.py"], "does not exist"),
        (["run", "{tmp}/empty.py"], "defines no Experiment"),
        (["run", "{tmp}/broken.py"], "Importing .* failed: ValueError: Float"),
        (["run", "{tmp}/badctl.py"], "Unknown controller 'magic'; choose one of"),
        (["ls", "--storage", "nonsense"], "Malformed storage URL"),
        (["ls", "--storage", "sqlite:////no/such/dir/x.db"], "does not exist"),
        (["show", "nope", "--storage", "sqlite:///{tmp}/x.db"], "No study 'nope'"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, capsys, argv, match) -> None:
    (tmp_path / "empty.py").write_text("x = 1\n")
    (tmp_path / "broken.py").write_text("from spaces import Float\nFloat(2.0, 1.0)\n")
    badctl = _study_file(tmp_path, controller="magic").read_text()
    (tmp_path / "badctl.py").write_text(badctl)
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("archtune: error:"), err
    assert re.search(match, lines[0]), err
