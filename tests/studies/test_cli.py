"""The archtune command line, on real studies: demo, run, resume, ls, show, report, errors."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
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


@pytest.fixture
def ray_record_of_a_gone_cluster() -> Iterator[str]:
    """A Ray temp dir (for ``RAY_TMPDIR``) whose ``ray_current_cluster`` names a cluster
    that is gone, as ``ray start`` leaves it when killed: a plain ``ray.init()`` tries to
    join it (and is refused ``num_cpus`` there), the way the suite once failed beside
    another Ray user of the machine. Short, as Ray's socket paths live under it."""
    temp = tempfile.mkdtemp(prefix="atr-", dir="/tmp")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.makedirs(os.path.join(temp, "ray"))
    with open(os.path.join(temp, "ray", "ray_current_cluster"), "w") as f:
        f.write(f"127.0.0.1:{port}")
    yield temp
    shutil.rmtree(temp, ignore_errors=True)


def test_demo_runs_a_real_study_and_writes_a_report(
    tmp_path: Path, ray_record_of_a_gone_cluster: str
) -> None:
    # The demo runs on a Ray instance of its own, whatever `ray start` recorded here.
    env = {**os.environ, "ARCHTUNE_DEBUG": "1", "RAY_TMPDIR": ray_record_of_a_gone_cluster}
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
    out, err = capsys.readouterr()
    assert "Best trial #" in out
    assert len(optuna.load_study(study_name="cli-study", storage=db).trials) == 3
    # Not a terminal (captured, as in a CI log): one line per finished trial, as it ends.
    lines = [ln for ln in err.splitlines() if ln.startswith("cli-study: trial ")]
    assert [ln.split("[")[1].split("]")[0] for ln in lines] == ["1/3", "2/3", "3/3"], err
    assert all("val_acc" in ln and "best val_acc: " in ln for ln in lines)
    assert "Continuing" not in err

    assert main(["ls", "--storage", db]) == 0
    out = capsys.readouterr().out
    assert "cli-study" in out and "val_acc" in out

    assert main(["show", "cli-study", "--storage", db]) == 0
    out = capsys.readouterr().out
    assert "depth=" in out and "COMPLETE" in out
    # An 80-column terminal: every row fits, no value cut to an ellipsis.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("COLUMNS", "80")
        assert main(["show", "cli-study", "--storage", db]) == 0
    narrow = capsys.readouterr().out
    table = narrow.split("Best trial")[0].splitlines()
    assert max(len(line) for line in table) <= 80 and "…" not in narrow, narrow
    assert "depth=" in narrow and "lr=" in narrow

    target = tmp_path / "r.html"
    assert main(["report", "cli-study", "-o", str(target), "--storage", db]) == 0
    assert target.exists() and "cli-study" in target.read_text()

    assert main(["resume", "cli-study", "--storage", db]) == 0
    assert "has run all its trials" in capsys.readouterr().out
    best = optuna.load_study(study_name="cli-study", storage=db).best_value
    assert main(["resume", "cli-study", "--trials", "1", "--storage", db]) == 0
    assert len(optuna.load_study(study_name="cli-study", storage=db).trials) == 4
    err = capsys.readouterr().err
    assert "Continuing study 'cli-study': 3 trials recorded, running 1 more." in err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("cli-study: trial 3 ")]
    shown = float(line.split("best val_acc: ")[1].split()[0])
    assert shown >= round(best, 4) - 1e-9, "the line shows the study's best, not the run's"


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


def test_a_missing_driver_hint_prints_literally_and_without_the_password(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if the extra were not installed
    assert main(["ls", "--storage", "postgresql://u:secret@127.0.0.1:1/db"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'archtune[postgres]'" in err, "rich must not eat [postgres] as markup"
    assert "postgresql://u:***@127.0.0.1:1/db" in err and "secret" not in err


def _two_databases(tmp_path: Path) -> tuple[str, str]:
    """Two SQLite files holding one study each, named after the file."""
    from spaces import Float, SearchSpace
    from studies import Study

    urls = []
    for name in ("env", "flag"):
        url = f"sqlite:///{tmp_path / name}.db"
        Study.create(f"{name}-study", SearchSpace({"x": Float(0.0, 1.0)}), "score", storage=url)
        urls.append(url)
    return urls[0], urls[1]


def test_storage_comes_from_the_flag_else_the_variable_else_the_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env, flag = _two_databases(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARCHTUNE_STORAGE", env)
    assert main(["ls"]) == 0
    assert "env-study" in capsys.readouterr().out
    assert main(["show", "env-study"]) == 0
    assert "env-study" in capsys.readouterr().out
    assert main(["ls", "--storage", flag]) == 0
    out = capsys.readouterr().out
    assert "flag-study" in out and "env-study" not in out
    monkeypatch.setenv("ARCHTUNE_STORAGE", "")  # empty: unset, so sqlite:///archtune.db
    assert main(["ls"]) == 0
    assert "No studies in sqlite:///archtune.db." in capsys.readouterr().out
    assert (tmp_path / "archtune.db").exists()


def test_run_stores_where_the_variable_says_over_the_study_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from studies import Study
    from studies.experiment import Experiment

    def create_only(self: Experiment, address: str | None = None, **_: object) -> Study:
        return Study.create(self.name, self.space, self.objective, self.direction, self.storage)

    monkeypatch.setattr(Experiment, "run", create_only)  # where it goes, not the training
    path = _study_file(tmp_path)  # its own storage: cli.db
    env, flag = (f"sqlite:///{tmp_path / name}.db" for name in ("env", "flag"))

    monkeypatch.setenv("ARCHTUNE_STORAGE", env)
    assert main(["run", str(path)]) == 0
    assert optuna.get_all_study_names(env) == ["cli-study"]
    assert main(["run", str(path), "--storage", flag]) == 0
    assert optuna.get_all_study_names(flag) == ["cli-study"]
    monkeypatch.delenv("ARCHTUNE_STORAGE")
    assert main(["run", str(path)]) == 0
    assert optuna.get_all_study_names(f"sqlite:///{tmp_path / 'cli.db'}") == ["cli-study"]
    capsys.readouterr()


@pytest.mark.parametrize("command", ["demo", "run", "resume", "ls", "show", "report"])
def test_help_names_the_storage_variable(
    command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCHTUNE_STORAGE", "postgresql://u:secret@db/s")
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: $ARCHTUNE_STORAGE if set, else" in out
    assert "secret" not in out, "the help shows the variable's name, never its value"


def test_demo_names_its_database_without_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARCHTUNE_STORAGE", "postgresql://u:secret@127.0.0.1:1/db")
    assert main(["demo"]) == 2  # nothing listens on port 1
    captured = capsys.readouterr()
    assert "recorded in postgresql://u:***@127.0.0.1:1/db" in captured.out
    assert "Cannot open storage postgresql://u:***@127.0.0.1:1/db" in captured.err
    assert "secret" not in captured.out + captured.err


def test_show_lists_a_page_best_first_and_any_state_or_all(tmp_path: Path, capsys) -> None:
    # A plain Optuna study (any RDB study opens): 30 trials, x = 0 .. 29, every 10th failed.
    db = f"sqlite:///{tmp_path / 'plain.db'}"
    study = optuna.create_study(study_name="plain", storage=db, direction="maximize")
    for i in range(30):
        trial = study.ask()
        trial.suggest_float("x", 0.0, 100.0)
        if i % 10 == 0:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, float(i))
    capsys.readouterr()
    assert main(["show", "plain", "--limit", "3", "--storage", db]) == 0
    out = capsys.readouterr().out
    rows = [ln.split("│")[1].strip() for ln in out.splitlines() if ln.startswith("│")]
    assert rows == ["29", "28", "27"], "the 3 best complete trials, best first"
    assert "(3 of 27)" in out and "30 trials (27 complete, 3 fail)" in out
    assert "Best trial #29: value = 29.0000" in out
    assert main(["show", "plain", "--state", "FAIL", "--storage", db]) == 0
    out = capsys.readouterr().out
    rows = [ln.split("│")[1].strip() for ln in out.splitlines() if ln.startswith("│")]
    assert sorted(rows, key=int) == ["0", "10", "20"]
    assert main(["show", "plain", "--all", "--storage", db]) == 0
    rows = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("│")]
    assert len(rows) == 30
    assert main(["show", "plain", "--limit", "0", "--storage", db]) == 2
