"""Bad input, once more: study names, the files made from them, `archtune rm`, a search
whose constraints reject everything, and a custom trainer resumed from the command line."""

from __future__ import annotations

import io
import json
import os
import re
import textwrap
from datetime import datetime
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

import trainers.base as trainer_base
from spaces import Float, SearchSpace
from studies import Experiment, Study
from studies.cli import main
from studies.lease import DriverAlive, Lease
from studies.names import MAX_NAME_LENGTH, check_study_name, file_slug
from studies.records import ATTR_RUN
from studies.storage import DriverRow, MetricRow, open_storage
from tests.studies.toy import ToyTrainer
from trainers.base import ATTR_CHECKPOINT

HOSTILE = [
    "cifar/resnet",
    "../../etc/passwd",
    "..",
    ".hidden",
    "-rf",
    "run 3",
    "<img src=x onerror=alert(1)>",
    "a[/bold]b",
    "C:\\Windows\\system32",
    "con",
    "Ünïcödé 研究",
    "x" * MAX_NAME_LENGTH,
]


def _space() -> SearchSpace:
    return SearchSpace({"x": Float(0.0, 1.0)})


# Names --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", HOSTILE)
def test_unusual_names_are_legal_study_names(name: str) -> None:
    assert check_study_name(name) == name


@pytest.mark.parametrize(
    ("name", "error", "match"),
    [
        ("", ValueError, "must be a non-empty string"),
        ("   ", ValueError, "must be a non-empty string"),
        ("a\nb", ValueError, r"control character \('\\n' at position 1\)"),
        ("tab\there", ValueError, "control character"),
        ("\x1b[31mred", ValueError, "control character"),
        ("null\x00", ValueError, "control character"),
        ("right\u202eleft", ValueError, "control character"),
        ("line\u2028sep", ValueError, "control character"),
        (" padded", ValueError, "starts or ends with a space"),
        ("padded ", ValueError, "starts or ends with a space"),
        ("x" * (MAX_NAME_LENGTH + 1), ValueError, "513 characters long"),
        (42, TypeError, "must be a string"),
        (None, TypeError, "must be a string"),
    ],
)
def test_bad_names_say_what_is_allowed(name: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match) as info:
        check_study_name(name)
    if error is ValueError:
        assert "1 to 512 characters" in str(info.value)
        assert "\n" not in str(info.value), "the message is one line"


def test_the_length_limit_is_optunas_column() -> None:
    from optuna.storages._rdb import models

    column = models.StudyModel.__table__.c.study_name
    assert column.type.length == models.MAX_INDEXED_STRING_LENGTH == MAX_NAME_LENGTH


@pytest.mark.parametrize("name", HOSTILE)
def test_a_slug_never_leaves_its_directory(tmp_path: Path, name: str) -> None:
    slug = file_slug(name)
    assert re.fullmatch(r"[a-z0-9][a-z0-9._-]*", slug), slug
    assert len(slug) <= 73 and not slug.endswith(".")
    path = os.path.join(tmp_path, f"{slug}.html")
    assert os.path.dirname(os.path.normpath(path)) == str(tmp_path)
    Path(path).write_text("ok")  # a name the file system takes


def test_slugs_keep_plain_names_and_keep_distinct_names_apart() -> None:
    assert file_slug("digits-resnet") == "digits-resnet"
    assert file_slug("digits_resnet.v2") == "digits_resnet.v2"
    names = [*HOSTILE, "Digits", "digits", "a b", "a-b", "a/b", "x" * 100, "x" * 101]
    slugs = [file_slug(n) for n in names]
    assert len(set(slugs)) == len(names), "no two names share a file"
    assert file_slug("a b") == file_slug("a b"), "the same name, the same file"


def test_a_bad_name_is_refused_before_anything_is_written(db_url: str) -> None:
    with pytest.raises(ValueError, match="control character"):
        Study.create("two\nlines", _space(), "score", storage=db_url)
    assert optuna.get_all_study_names(db_url) == []
    with pytest.raises(ValueError, match="starts or ends with a space"):
        Experiment(name="x ", space=_space(), objective="score", trainer=ToyTrainer())


def test_a_hostile_name_is_shown_literally_and_reported_next_to_the_database(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "../[/bold]<img src=x onerror=alert(1)>"
    Study.create(name, _space(), "score", storage=db_url)
    assert main(["ls", "--storage", db_url]) == 0
    assert "[/bold]<img" in capsys.readouterr().out, "markup in a name prints as text"
    assert main(["show", name, "--storage", db_url]) == 0
    assert name in capsys.readouterr().out
    assert main(["report", name, "--storage", db_url]) == 0
    out = capsys.readouterr().out
    written = Path(out.split("Report: ", 1)[1].strip())
    assert written.parent == tmp_path and written.name == f"{file_slug(name)}.html"
    assert "<img src=x" not in written.read_text(), "the page escapes the name"


# archtune rm --------------------------------------------------------------------------
def _recorded_study(url: str, name: str, run_dir: Path) -> int:
    """A study with 3 finished trials, a metric row each, a checkpoint recorded on one,
    a stale driver lease and a run record; returns its Optuna study id."""
    study = Study.create(name, _space(), "score", storage=url)
    storage = open_storage(url)
    for i in range(3):
        trial = study.optuna.ask({"x": optuna.distributions.FloatDistribution(0.0, 1.0)})
        storage.add_metrics(trial._trial_id, 1, {"score": 0.1 * i})
        if i == 0:
            checkpoint = run_dir / f"{file_slug(name)}-0" / "trial_00000" / "checkpoint_000001"
            trial.set_user_attr(ATTR_CHECKPOINT, str(checkpoint))
        study.optuna.tell(trial, 0.1 * i)
    study.optuna.set_user_attr(ATTR_RUN, json.dumps({"run_dir": str(run_dir)}))
    sid = study.optuna._study_id
    long_ago = datetime(2000, 1, 1)
    with storage.session() as s:  # a driver on another host, dead long ago
        s.add(DriverRow(study_id=sid, host="gone", pid=1, process_start=0.0,
                        started_at=long_ago, beat_at=long_ago))  # fmt: skip
    return sid


def _rows(url: str) -> tuple[int, int]:
    with open_storage(url).session() as s:
        metrics = s.scalar(sa.select(sa.func.count()).select_from(MetricRow))
        drivers = s.scalar(sa.select(sa.func.count()).select_from(DriverRow))
    return int(metrics or 0), int(drivers or 0)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_rm_deletes_the_study_and_every_row_of_it_and_keeps_the_checkpoints(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    _recorded_study(db_url, "keep", runs)
    _recorded_study(db_url, "old one", runs)
    assert _rows(db_url) == (6, 2)
    assert main(["rm", "old one", "--yes", "--storage", db_url]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Deleted study 'old one'" in out and "3 trial(s) and 3 metric row(s)" in out
    assert f"left in place, under {runs / file_slug('old one')}-0" in out
    assert optuna.get_all_study_names(db_url) == ["keep"]
    assert _rows(db_url) == (3, 1), "only the other study's rows remain"
    assert len(Study.load("keep", db_url).trials) == 3


def test_rm_without_yes_and_without_a_terminal_refuses(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    _recorded_study(db_url, "s", tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO("s\n"))
    assert main(["rm", "s", "--storage", db_url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no terminal to ask on. Add --yes: archtune rm s --yes" in err[0]
    assert optuna.get_all_study_names(db_url) == ["s"] and _rows(db_url) == (3, 1)


def test_rm_at_a_terminal_deletes_only_when_the_name_is_typed(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    _recorded_study(db_url, "s", tmp_path)
    monkeypatch.setattr("sys.stdin", _Terminal("yes\n"))
    assert main(["rm", "s", "--storage", db_url]) == 1
    assert "Type its name to confirm" in capsys.readouterr().err
    assert optuna.get_all_study_names(db_url) == ["s"]
    monkeypatch.setattr("sys.stdin", _Terminal("s\n"))
    assert main(["rm", "s", "--storage", db_url]) == 0
    assert optuna.get_all_study_names(db_url) == [] and _rows(db_url) == (0, 0)


def test_rm_of_an_unknown_study_lists_those_there_are(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _recorded_study(db_url, "mine", tmp_path)
    assert main(["rm", "nope", "--yes", "--storage", db_url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No study 'nope'" in err[0] and "['mine']" in err[0]


def test_rm_refuses_while_a_live_driver_runs_the_study(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sid = _recorded_study(db_url, "busy", tmp_path)
    lease = Lease.acquire(open_storage(db_url), sid, "busy")  # this process: alive
    try:
        assert main(["rm", "busy", "--yes", "--storage", db_url]) == 2
        err = capsys.readouterr().err
        assert "being run by a live driver" in err and "cannot delete it" in err
        with pytest.raises(DriverAlive):
            Study.delete("busy", db_url)
    finally:
        lease.release()
    assert optuna.get_all_study_names(db_url) == ["busy"]
    deleted = Study.delete("busy", db_url)
    assert deleted is not None and deleted.trials == 3 and deleted.metric_rows == 3
    assert deleted.run_dir == str(tmp_path) and optuna.get_all_study_names(db_url) == []


def test_study_delete_asks_confirm_after_the_checks(db_url: str, tmp_path: Path) -> None:
    _recorded_study(db_url, "s", tmp_path)
    asked: list[int] = []
    assert Study.delete("s", db_url, confirm=lambda n: asked.append(n) or False) is None
    assert asked == [3] and optuna.get_all_study_names(db_url) == ["s"]
    assert _rows(db_url) == (3, 1), "nothing is written before confirm says yes"
    with pytest.raises(KeyError, match=r"No study 'other'.*\['s'\]"):
        Study.delete("other", db_url, confirm=lambda n: pytest.fail("asked"))


# A search whose constraints reject everything ------------------------------------------
CONSTRAINED_FILE = textwrap.dedent(
    """
    from spaces import Categorical, Constraint, Float, SearchSpace
    from studies import Experiment
    from tests.studies.toy import CostTrainer

    experiment = Experiment(
        name="too-tight",
        space=SearchSpace(
            {"x": Float(0.0, 1.0), "width": Categorical([1, 2]), "kind": "wide"},
            constraints=[Constraint("params", max=10)],
        ),
        objective="score",
        trainer=CostTrainer(epochs=1, seconds=0.0),
        controller="random",
        seed=0,
        num_trials=3,
        scheduler="fifo",
        storage="sqlite:///@DB@",
    )
    """
)


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_a_search_the_constraints_reject_entirely_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from studies.recorder import MAX_INFEASIBLE

    path = tmp_path / "tight.py"
    path.write_text(CONSTRAINED_FILE.replace("@DB@", str(tmp_path / "t.db")))
    assert main(["run", str(path)]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("archtune:")]
    assert len(err) == 1, err
    assert f"{MAX_INFEASIBLE} proposals in a row broke the constraints" in err[0]
    assert "this run trained no trial" in err[0]
    assert re.search(r"\(the last: params = [12]000 > max 10\)", err[0]), err[0]
    trials = optuna.load_study(study_name="too-tight", storage=f"sqlite:///{tmp_path}/t.db")
    assert len(trials.trials) == MAX_INFEASIBLE, "the rejected proposals stay recorded"
    assert all(t.state == TrialState.FAIL for t in trials.trials)


# A custom trainer from the study file, resumed from the command line --------------------
TRAINER_FILE = textwrap.dedent(
    """
    from spaces import Float, SearchSpace
    from studies import Experiment
    from trainers import Trainer


    class FileTrainer(Trainer):
        name = "test_bad_input_file_trainer"
        metrics = ("epoch", "score")

        def __init__(self, epochs=1):
            self.max_epochs = epochs

        def check_space(self, space):
            if "x" not in space:
                raise ValueError("FileTrainer needs x")

        def run(self, config, space, session):
            metrics = {"epoch": 1, "score": float(config["x"])}
            session.report(metrics, {"epoch": 1})
            return metrics

        def spec(self):
            return {"epochs": self.max_epochs}


    experiment = Experiment(
        name="file trainer/v1",
        space=SearchSpace({"x": Float(0.0, 1.0)}),
        objective="score",
        trainer=FileTrainer(),
        controller="random",
        seed=0,
        num_trials=2,
        scheduler="fifo",
        storage="sqlite:///@DB@",
    )
    """
)


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_a_trainer_defined_in_the_study_file_resumes_from_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "study.py"
    path.write_text(TRAINER_FILE.replace("@DB@", str(tmp_path / "f.db")))
    db = f"sqlite:///{tmp_path / 'f.db'}"
    name = "file trainer/v1"
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"Report: {tmp_path / file_slug(name)}.html" in out
    stored = json.loads(Study.load(name, db).optuna.user_attrs["archtune:trainer"])
    assert stored["class"].endswith(":FileTrainer") and stored["file"] == str(path)

    # As in a new process: the study file's trainer is not loaded or registered.
    monkeypatch.setattr(trainer_base, "_STUDY_FILES", {})
    monkeypatch.delitem(trainer_base._TRAINERS, "test_bad_input_file_trainer")
    assert main(["resume", name, "--trials", "1", "--storage", db]) == 0, capsys.readouterr()
    study = Study.load(name, db)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3

    assert main(["rm", name, "--yes", "--storage", db]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "3 trial(s)" in out
    assert f"left in place, under {tmp_path / 'archtune_runs' / file_slug(name)}-0" in out
    assert (tmp_path / "archtune_runs").is_dir(), "rm keeps the checkpoints"
