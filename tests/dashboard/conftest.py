"""Fixtures of the dashboard tests: Debian's Chromium for pytest-playwright, the app
served over HTTP on a free port of 127.0.0.1, and study databases to serve.

Playwright cannot download its own browser on these machines: the browser is
``/usr/bin/chromium`` (``apt-get install -y chromium``; ``.ci/run`` installs it). Without
it the browser tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from werkzeug.serving import make_server

from dashboard.app import create_app
from studies.readonly import open_readonly
from studies.records import ATTR_ERROR, ATTR_NODE, ATTR_STATS, ATTR_TRACEBACK
from studies.storage import open_storage

CHROMIUM = os.environ.get("ARCHTUNE_CHROMIUM", "/usr/bin/chromium")
POLL_MS = 500


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    """pytest-playwright's launch arguments: Debian's Chromium, by path."""
    if not os.path.exists(CHROMIUM):
        message = f"no browser at {CHROMIUM}: apt-get install -y chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return {
        "executable_path": CHROMIUM,
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
        ],
    }


@pytest.fixture
def serve() -> Iterator[Callable[[str], str]]:
    """``serve(url)``: the dashboard over ``url`` on a free port; returns its base URL."""
    servers: list[Any] = []

    def start(url: str) -> str:
        app = create_app(open_readonly(url), poll_ms=POLL_MS)
        server = make_server("127.0.0.1", 0, app.server, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def single_study(url: str, name: str = "single", n: int = 12) -> optuna.Study:
    """A study written as archtune writes one: params, values, per-epoch metric rows,
    stats, a node, a pruned and a failed trial with its traceback."""
    storage = open_storage(url)
    study = optuna.create_study(study_name=name, storage=storage.optuna, direction="maximize")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["val_acc"])
    for i in range(n):
        trial = study.ask()
        depth = trial.suggest_int("model/depth", 1, 4)
        lr = trial.suggest_float("train/lr", 1e-4, 1e-1, log=True)
        trial.suggest_categorical("train/optimizer", ["sgd", "adamw"])
        trial.set_user_attr(ATTR_STATS, {"params": 1000 * depth, "flops": 5e5 * depth})
        trial.set_user_attr(ATTR_NODE, f"host-{i % 2} (10.0.0.{i % 2}, node 0000000{i % 2})")
        acc = 0.5 + 0.04 * depth + 0.01 * (lr > 1e-2) + 0.001 * i
        for epoch in (1, 2, 3):
            trial.report(acc * epoch / 3, epoch)
            storage.add_metrics(
                trial._trial_id, epoch, {"val_acc": acc * epoch / 3, "train_loss": 1 / epoch}
            )
        if i == 3:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif i == 5:
            trial.set_user_attr(ATTR_ERROR, "RuntimeError: out of memory")
            trial.set_user_attr(ATTR_TRACEBACK, 'Traceback:\n  File "t.py", line 1\nRuntimeError')
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, acc)
    return study


def multi_study(url: str, name: str = "multi", n: int = 10) -> optuna.Study:
    """A plain Optuna study of two objectives (no archtune attribute at all)."""
    study = optuna.create_study(study_name=name, storage=url, directions=["maximize", "minimize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["val_acc", "latency_ms"])
    for i in range(n):
        trial = study.ask()
        x = trial.suggest_float("x", 0, 1)
        study.tell(trial, [x, (x + 0.1 * (i % 3)) ** 2 * 10])
    return study


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A scratch SQLite file holding a single- and a two-objective study."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    single_study(url)
    multi_study(url)
    return url
