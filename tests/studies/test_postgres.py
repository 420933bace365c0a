"""A real study on a real PostgreSQL server, end to end, and its password shown nowhere.

Every test here gets a new database of its own (the ``pg_url`` fixture of
tests/conftest.py) on the server ``ARCHTUNE_TEST_POSTGRES_URL`` names: skipped without
one, failed under ``CI=true`` (.ci/run starts one). The URL reaches the CLI through
``ARCHTUNE_STORAGE``, as a user keeps it off the command line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from spaces import Float, SearchSpace
from studies import Study, load_study_record, open_storage
from studies.cli import main
from studies.records import ATTR_RUN
from tests.studies.toy import ToyTrainer


def _password(url: str) -> str:
    """The URL's password (.ci/run's server has one); skips the test for a URL without."""
    password = make_url(url).password
    if not password:
        pytest.skip("ARCHTUNE_TEST_POSTGRES_URL has no password to hide")
    return password


def _with(url: str, **parts: object) -> str:
    return make_url(url).set(**parts).render_as_string(hide_password=False)


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``archtune ARGV``'s exit status and everything it printed."""
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out + captured.err


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_a_study_runs_resumes_and_is_read_back_on_postgresql(
    pg_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    space = SearchSpace({"x": Float(0.0, 1.0)})
    study = Study.create("pg-study", space, objective="score", storage=pg_url)
    runs = str(tmp_path / "runs")
    study.run(ToyTrainer(epochs=2), "random", num_trials=3, run_dir=runs, progress=False)
    # As if the driver had been asked for 5 trials and died after 3: resume runs the rest.
    run = json.loads(study.optuna.user_attrs[ATTR_RUN])
    study.optuna.set_user_attr(ATTR_RUN, json.dumps({**run, "num_trials": 5}))
    assert Study.load("pg-study", pg_url).resume(progress=False) == 2

    trials = optuna.load_study(study_name="pg-study", storage=pg_url).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5
    assert all(t.value == t.params["x"] and t.intermediate_values for t in trials)
    record = load_study_record(open_storage(pg_url), "pg-study")
    assert all([s for s, _ in t.metrics["score"]] == [1, 2] for t in record.trials)

    monkeypatch.setenv("ARCHTUNE_STORAGE", pg_url)
    monkeypatch.chdir(tmp_path)  # `report` without -o writes NAME.html here
    status, out = _cli(["ls"], capsys)
    assert status == 0 and "pg-study" in out and "score" in out
    status, out = _cli(["show", "pg-study"], capsys)
    assert status == 0 and out.count("COMPLETE") == 5 and "Best trial #" in out
    shown = out
    status, out = _cli(["report", "pg-study"], capsys)
    report = tmp_path / "pg-study.html"
    assert status == 0 and "pg-study.html" in out and report.exists()
    page = report.read_text()
    assert "pg-study" in page
    password = make_url(pg_url).password
    if password:
        assert password not in shown + out + page
        assert password not in repr(Study.load("pg-study", pg_url))


@pytest.mark.parametrize(
    ("case", "match"),
    [
        pytest.param(
            "wrong study name", r"No study 'nope' in postgresql://[^ ]*:\*\*\*@", id="no-study"
        ),
        pytest.param(
            "unreachable server",
            r"Cannot open storage postgresql://[^ ]*:\*\*\*@.*port 1 failed",
            id="unreachable",
        ),
        pytest.param(
            "wrong password",
            r"Cannot open storage .*password authentication failed",
            id="wrong-password",
        ),
    ],
)
@pytest.mark.parametrize("given_by", ["ARCHTUNE_STORAGE", "--storage"])
def test_errors_through_the_cli_never_show_the_password(
    pg_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    match: str,
    given_by: str,
) -> None:
    password = _password(pg_url)
    open_storage(pg_url)  # a database that exists, with no study in it
    url = {
        "wrong study name": pg_url,
        "unreachable server": _with(pg_url, host="127.0.0.1", port=1),
        "wrong password": _with(pg_url, password="Wr0ng-pa55word"),
    }[case]
    argv = ["show", "nope"]
    if given_by == "--storage":
        argv += ["--storage", url]
    else:
        monkeypatch.setenv("ARCHTUNE_STORAGE", url)

    status, out = _cli(argv, capsys)

    assert status == 2
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("archtune: error: "), out
    assert re.search(match, lines[0]), out
    for secret in (password, "Wr0ng-pa55word"):
        assert secret not in out


def test_study_errors_from_python_never_show_the_password(pg_url: str) -> None:
    password = _password(pg_url)
    space = SearchSpace({"x": Float(0.0, 1.0)})
    study = Study.create("pg-twice", space, objective="score", storage=pg_url)
    with pytest.raises(ValueError, match=r"already exists in postgresql://.*:\*\*\*@") as info:
        Study.create("pg-twice", space, objective="score", storage=pg_url)
    assert password not in str(info.value)
    with pytest.raises(KeyError, match=r"No study 'nope'") as missing:
        Study.load("nope", pg_url)
    with pytest.raises(KeyError, match=r"No study 'nope'") as unrecorded:
        load_study_record(study.storage, "nope")
    for text in (str(missing.value), str(unrecorded.value), repr(study), repr(study.storage)):
        assert password not in text and ":***@" in text
