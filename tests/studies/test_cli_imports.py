"""What the reading commands import: a user's ``archtune ls`` does not pay for Ray Tune.

Each command runs as the user runs it, ``python -m studies.cli ...`` in a new process,
under ``-X importtime``, which names every module the process imported. ``--help``,
``ls``, ``show`` and ``rm`` must import none of Ray, PyTorch, pandas (nor the trainers'
or the controllers' modules); ``ls`` and ``show`` of a database that is up to date open
it read-only, without Optuna's storage and Alembic, and leave the file as it was.
(``-X importtime`` logs a package's submodules, not always the package itself: match by
prefix.)
Behaviour, not timing: no assertion here measures time.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from studies.cli_views import newest_revision
from studies.migrations import head_revision
from studies.storage import open_storage

# What no reading command may import: Ray Tune, PyTorch, pandas and what pulls them in.
HEAVY = ("ray", "torch", "pandas", "pyarrow", "sklearn", "plotly", "dash", "tensorboardX")
# The search stack and the trainers that run trials (trainers.base, constants only, is fine).
STACKS = ("search", "trainers.image_classifier", "trainers.distributed", "studies.experiment")


def _imports(argv: list[str], cwd: Path) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """Run ``archtune *argv`` as a command; the modules it imported, and the process."""
    env = {k: v for k, v in os.environ.items() if k != "ARCHTUNE_STORAGE"}
    env.pop("ARCHTUNE_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "studies.cli", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    names = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", proc.stderr, re.M))
    assert "studies.cli_views" in names, proc.stderr[-2000:]  # the log was read
    return names, proc


def _loaded(names: set[str], roots: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(n == r or n.startswith(r + ".") for r in roots))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def database(tmp_path: Path) -> tuple[str, Path]:
    """An archtune database (tables at the newest revision) with one small study, ``tiny``."""
    path = tmp_path / "studies.db"
    storage = open_storage(f"sqlite:///{path}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="tiny", storage=storage.optuna, direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=3)
    storage.engine.dispose()
    return f"sqlite:///{path}", path


def test_help_imports_no_database_layer(tmp_path: Path) -> None:
    names, proc = _imports(["--help"], tmp_path)
    assert proc.returncode == 0 and "archtune" in proc.stdout
    assert _loaded(names, (*HEAVY, *STACKS, "optuna", "alembic")) == []


@pytest.mark.parametrize("command", [["ls"], ["show", "tiny"]])
def test_ls_and_show_read_only_without_ray(
    command: list[str], database: tuple[str, Path], tmp_path: Path
) -> None:
    url, path = database
    before = _digest(path)
    names, proc = _imports([*command, "--storage", url], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "tiny" in proc.stdout
    assert _loaded(names, (*HEAVY, *STACKS)) == []
    # Up to date: opened read-only, without Optuna's storage and the Alembic it loads.
    assert _loaded(names, ("alembic",)) == []
    assert _digest(path) == before, "a reading command wrote to the database"


def test_ls_of_a_plain_optuna_database_still_adds_archtune_tables(tmp_path: Path) -> None:
    """A database without archtune's tables goes through open_storage, as before."""
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(study_name="plain", storage=url).optimize(lambda t: 1.0, n_trials=1)
    names, proc = _imports(["ls", "--storage", url], tmp_path)
    assert proc.returncode == 0 and "plain" in proc.stdout, proc.stderr[-2000:]
    assert _loaded(names, (*HEAVY, *STACKS)) == []
    assert _loaded(names, ("alembic",)), "the tables are created through open_storage"


def test_ls_of_a_missing_file_creates_it_and_errors_stay_one_line(tmp_path: Path) -> None:
    names, proc = _imports(["ls"], tmp_path)  # the default, sqlite:///archtune.db
    assert proc.returncode == 0 and "No studies in sqlite:///archtune.db." in proc.stdout
    assert (tmp_path / "archtune.db").exists()
    names, proc = _imports(["show", "nope", "--storage", "sqlite:///archtune.db"], tmp_path)
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines() if not ln.startswith("import time:")]
    assert len(errors) == 1 and errors[0].startswith("archtune: error: No study 'nope'")
    assert _loaded(names, (*HEAVY, *STACKS)) == []


def test_rm_imports_no_ray(database: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = database
    names, proc = _imports(["rm", "tiny", "--yes", "--storage", url], tmp_path)
    assert proc.returncode == 0 and "Deleted study 'tiny'" in proc.stdout, proc.stderr[-2000:]
    # rm reads study ids through search.optuna_access, which loads the search package.
    assert _loaded(names, HEAVY) == []


def test_the_read_only_path_knows_the_newest_revision() -> None:
    assert newest_revision() == head_revision()


def test_errors_are_importable_from_where_they_are_raised() -> None:
    from studies import errors
    from studies.experiment import StudyFileError
    from studies.recorder import InfeasibleSearch
    from studies.storage import StorageError

    assert StorageError is errors.StorageError
    assert StudyFileError is errors.StudyFileError
    assert InfeasibleSearch is errors.InfeasibleSearch
