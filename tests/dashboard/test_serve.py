"""The dashboard server without a browser: ``archtune dashboard`` as a real process, the
database opened read-only (SQLite and PostgreSQL), the 404s and the CSV export over
HTTP, and the one-line errors (exit status 2) for what cannot be served."""

from __future__ import annotations

import csv
import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from dashboard.app import create_app
from dashboard.paths import parse_path, study_path, trial_path
from studies.readonly import open_readonly
from studies.reads import StudyReader
from studies.storage import StorageError
from tests.dashboard.conftest import multi_study, single_study

ARCHTUNE = [sys.executable, "-m", "studies.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [*ARCHTUNE, *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_paths_quote_any_study_name() -> None:
    for name in ("plain", "a/b", "x y?#%", "<img src=x onerror=alert(1)>", "ü/..%2F"):
        assert parse_path(study_path(name)) == ("study", name)
        assert parse_path(trial_path(name, 7)) == ("trial", name, "7")
    assert parse_path("/") == ("home",)


def test_the_database_is_opened_read_only(storage_url: str) -> None:
    single_study(storage_url, n=2)
    db = open_readonly(storage_url)
    assert StudyReader(db).names() == ["single"]
    with pytest.raises(sa.exc.DBAPIError, match=r"(?i)read.?only"), db.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM trials"))
    assert len(optuna.load_study(study_name="single", storage=storage_url).trials) == 2


def test_a_plain_optuna_database_opens_without_archtune_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    multi_study(url, n=4)
    db = open_readonly(url)
    assert not db.archtune_tables
    reader = StudyReader(db)
    assert [t.values is not None for t in reader.load_record("multi").trials] == [True] * 4
    assert reader.trial("multi", 2).record.metrics == {}
    client = create_app(db).server.test_client()
    assert client.get(study_path("multi")).status_code == 200
    assert client.get(trial_path("multi", 4)).status_code == 404


def test_404s_and_the_csv_export_over_http(storage_url: str) -> None:
    single_study(storage_url, n=4)
    client = create_app(open_readonly(storage_url)).server.test_client()
    assert client.get("/").status_code == 200
    assert client.get(trial_path("single", 3)).status_code == 200
    for path in (study_path("nope"), trial_path("single", 4), "/study/single/trial/x", "/x"):
        page = client.get(path)
        assert page.status_code == 404, path
        assert 'href="/study/single"' in page.text  # it lists what exists
    got = client.get("/export/trials.csv?study=single")
    assert got.status_code == 200 and got.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(got.text)))
    assert [r["#"] for r in rows] == ["0", "1", "2", "3"]
    assert [r["State"] for r in rows] == ["COMPLETE", "COMPLETE", "COMPLETE", "PRUNED"]
    assert all(r["params"] == str(1000 * int(r["model/depth"])) for r in rows)
    assert {"val_acc", "model/depth", "train/lr", "FLOPs", "Node", "Error"} <= set(rows[0])
    assert client.get("/export/trials.csv?study=nope").status_code == 404


def test_the_password_is_never_shown(pg_url: str) -> None:
    single_study(pg_url, n=1)
    password = sa.engine.make_url(pg_url).password
    assert password
    client = create_app(open_readonly(pg_url)).server.test_client()
    for path in ("/", study_path("nope")):
        assert password not in client.get(path).text
    wrong = sa.engine.make_url(pg_url).set(password="not-" + password)
    done = _cli("dashboard", "--storage", wrong.render_as_string(hide_password=False))
    assert done.returncode == 2
    assert password not in done.stderr and "***" in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


@pytest.mark.slow
def test_archtune_dashboard_serves_until_interrupted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    single_study(url, n=3)
    port = _free_port()
    proc = subprocess.Popen(
        [*ARCHTUNE, "dashboard", "--storage", url, "--port", str(port)],
        stderr=subprocess.PIPE,
        text=True,
        # As a shell script's background job starts it: with SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        first = proc.stderr.readline() if proc.stderr else ""
        assert first.startswith(f"archtune dashboard on http://127.0.0.1:{port}/"), first
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/study/single") as r:
                    assert r.status == 200
                    break
            except urllib.error.URLError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/study/other")
        assert missing.value.code == 404
        # A second server on the same port: one line, exit status 2.
        taken = _cli("dashboard", "--storage", url, "--port", str(port))
        assert taken.returncode == 2
        assert taken.stderr.strip().splitlines() == [
            f"archtune: error: Cannot serve on 127.0.0.1:{port}: address already in use. "
            "Pass another --port (or stop what listens there)."
        ]
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C stops it all the same
        assert proc.wait(timeout=60) == 0
        if proc.stderr:
            proc.stderr.close()


def test_what_cannot_be_served_is_one_line_and_exit_status_2(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sa.create_engine(f"sqlite:///{other}").begin() as conn:
        conn.execute(sa.text("CREATE TABLE notes (id INTEGER)"))
    cases = {
        f"sqlite:///{tmp_path / 'missing.db'}": "No study database at",
        f"sqlite:///{other}": "is not an Optuna study database (no table 'studies')",
        "postgresql://u:secret@127.0.0.1:1/db": "Cannot open storage postgresql://u:***@",
        "nonsense": "Malformed storage URL",
    }
    for url, message in cases.items():
        done = _cli("dashboard", "--storage", url)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], done.stderr
        assert "secret" not in done.stderr
    with pytest.raises(StorageError, match="No study database"):
        open_readonly(f"sqlite:///{tmp_path / 'missing.db'}")
    assert not (tmp_path / "missing.db").exists(), "nothing is created"


def test_a_loopback_server_answers_loopback_host_names_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    single_study(url, n=1)
    client = create_app(open_readonly(url), hosts={"localhost", "127.0.0.1", "::1"})
    server = client.server.test_client()
    assert server.get("/", headers={"Host": "127.0.0.1:8050"}).status_code == 200
    assert server.get("/", headers={"Host": "[::1]:8050"}).status_code == 200
    rebound = server.get("/", headers={"Host": "attacker.example:8050"})
    assert rebound.status_code == 403 and "single" not in rebound.text


def test_csv_cells_a_spreadsheet_would_run_are_quoted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = single_study(url, n=1)
    bad = study.ask({"tag": optuna.distributions.CategoricalDistribution(["=1+1"])})
    bad.set_user_attr("archtune:error", "@SUM(A1)")
    study.tell(bad, state=optuna.trial.TrialState.FAIL)
    got = (
        create_app(open_readonly(url)).server.test_client().get("/export/trials.csv?study=single")
    )
    rows = list(csv.DictReader(io.StringIO(got.text)))
    assert rows[1]["tag"] == "'=1+1" and rows[1]["Error"] == "'@SUM(A1)"
    assert float(rows[0]["val_acc"]) > 0  # numbers stay numbers
