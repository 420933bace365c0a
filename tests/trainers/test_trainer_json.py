"""A trainer's stored form: its class is found again in a new process, from its module,
its study file, or a script passed on purpose; records without a class load as before."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import trainers.base as base
from spaces import SearchSpace
from tests.studies.toy import ToyTrainer
from trainers import ImageClassifier, Trainer, TrialSession, trainer_from_json
from trainers.base import import_study_file

STUDY_FILE = textwrap.dedent(
    """
    from trainers import Trainer

    class FileTrainer(Trainer):
        name = "test_json_file_trainer"
        metrics = ("epoch", "score")

        def __init__(self, epochs=1):
            self.max_epochs = epochs

        def check_space(self, space):
            pass

        def run(self, config, space, session):
            return {"epoch": 1, "score": 0.0}

        def spec(self):
            return {"epochs": self.max_epochs}

    if __name__ == "__main__":
        open(__file__ + ".ran", "w").close()
    """
)


class UnnamedToy(ToyTrainer):
    """A subclass that keeps its parent's registered name."""

    def run(self, config: Mapping[str, Any], space: SearchSpace, session: TrialSession):
        return {"epoch": 1, "score": 1.0}


@pytest.fixture
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a new process: no study file loaded, the file's trainer not registered."""
    monkeypatch.setattr(base, "_STUDY_FILES", {})
    monkeypatch.setattr(base, "_TRAINERS", dict(base._TRAINERS))
    base._TRAINERS.pop("test_json_file_trainer", None)


def _study_file(tmp_path: Path, name: str = "study.py") -> Path:
    path = tmp_path / name
    path.write_text(STUDY_FILE)
    return path


def test_a_built_in_trainer_is_stored_by_name_as_before() -> None:
    data = ImageClassifier(epochs=2).to_json()
    assert set(data) == {"trainer", "kwargs"}
    assert ImageClassifier(epochs=2).identity() == data
    assert trainer_from_json(data).spec() == ImageClassifier(epochs=2).spec()


def test_a_trainer_in_an_importable_module_is_stored_by_its_class() -> None:
    data = ToyTrainer(epochs=4).to_json()
    assert data["class"] == "tests.studies.toy:ToyTrainer" and "file" not in data
    again = trainer_from_json(data)
    assert type(again) is ToyTrainer and again.max_epochs == 4
    # A record written before classes were stored loads by the registered name.
    old = trainer_from_json({"trainer": "test_toy", "kwargs": {"epochs": 2}})
    assert type(old) is ToyTrainer


def test_a_subclass_without_its_own_name_comes_back_as_itself() -> None:
    data = UnnamedToy(epochs=1).to_json()
    assert data["trainer"] == "test_toy"
    assert type(trainer_from_json(data)) is UnnamedToy


@pytest.mark.usefixtures("fresh_process")
def test_a_trainer_from_a_study_file_comes_back_in_a_new_process(tmp_path: Path) -> None:
    path = _study_file(tmp_path)
    trainer = import_study_file(str(path)).FileTrainer(epochs=3)
    data = trainer.to_json()
    assert data["class"] == "archtune_study_file:FileTrainer"
    assert data["file"] == str(path.resolve())
    identity = trainer.identity()
    assert identity == {
        "trainer": "test_json_file_trainer",
        "kwargs": {"epochs": 3},
        "class": "FileTrainer",
    }
    base._STUDY_FILES.clear()  # a new process: the file is loaded again, once
    base._TRAINERS.pop("test_json_file_trainer")
    again = trainer_from_json(data)
    assert type(again).__name__ == "FileTrainer" and type(again) is not type(trainer)
    assert again.max_epochs == 3 and again.identity() == identity
    assert type(trainer_from_json(data)) is type(again), "the file runs once per process"
    assert not Path(f"{path}.ran").exists(), "a study file's __main__ block does not run"


@pytest.mark.usefixtures("fresh_process")
def test_loading_a_study_file_twice_is_not_a_duplicate_name(tmp_path: Path) -> None:
    path = _study_file(tmp_path)
    first = import_study_file(str(path)).FileTrainer
    second = import_study_file(str(path)).FileTrainer
    assert first is not second and base._TRAINERS["test_json_file_trainer"] is second
    with pytest.raises(ValueError, match="already registered"):
        type("Other", (ToyTrainer,), {"name": "test_json_file_trainer"})


@pytest.mark.usefixtures("fresh_process")
def test_a_moved_study_file_is_named_again(tmp_path: Path) -> None:
    path = _study_file(tmp_path)
    data = import_study_file(str(path)).FileTrainer().to_json()
    moved = path.rename(tmp_path / "moved.py")
    base._STUDY_FILES.clear()
    with pytest.raises(ValueError, match=r"study file .*study\.py.* is gone; .*--study-file"):
        trainer_from_json(data)
    assert type(trainer_from_json(data, study_file=str(moved))).__name__ == "FileTrainer"


@pytest.mark.usefixtures("fresh_process")
def test_a_main_script_is_not_run_again_unless_passed(tmp_path: Path) -> None:
    script = _study_file(tmp_path, "train.py")
    data = {
        "trainer": "test_json_file_trainer",
        "kwargs": {"epochs": 2},
        "class": "__main__:FileTrainer",
        "file": str(script),
    }
    with pytest.raises(ValueError, match=r"run as __main__.*importable module.*--study-file"):
        trainer_from_json(data)
    again = trainer_from_json(data, study_file=str(script))
    assert type(again).__name__ == "FileTrainer" and again.max_epochs == 2
    assert not Path(f"{script}.ran").exists(), "loaded as a module, not run as a script"


def test_a_main_class_is_stored_with_the_script(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    cls = type("ScriptToy", (ToyTrainer,), {"__module__": "__main__"})
    monkeypatch.setattr(sys.modules["__main__"], "__file__", "/work/scripts/train.py")
    data = cls().to_json()
    assert data["class"] == "__main__:ScriptToy" and data["file"] == "/work/scripts/train.py"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"trainer": "nope"}, r"Unknown trainer 'nope'; known trainers: .*--study-file"),
        (
            {"trainer": "x", "class": "no_such_module_xyz:T"},
            r"module 'no_such_module_xyz', which cannot be imported",
        ),
        (
            {"trainer": "x", "class": "tests.studies.toy:Missing"},
            r"tests.studies.toy:Missing is not a Trainer",
        ),
        ({"trainer": "x", "class": "m:f.<locals>.T"}, "defined inside a function"),
        ({"trainer": "x", "class": "m:T", "file": "/no/such/study.py"}, "is gone"),
    ],
)
def test_a_class_that_cannot_be_found_says_how_to_fix_it(data: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        trainer_from_json(data)


def test_a_file_that_is_not_python_or_raises_is_one_import_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ImportError, match="is not a Python file"):
        import_study_file(str(text))
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ImportError, match=r"Importing .* failed: RuntimeError: boom"):
        import_study_file(str(broken))


def test_every_trainer_subclass_gets_a_location() -> None:
    class Local(Trainer):  # defined in a function: stored, but cannot be found again
        name = "test_json_local"
        metrics = ("epoch",)

        def check_space(self, space: SearchSpace) -> None: ...

        def run(self, config: Any, space: SearchSpace, session: TrialSession) -> dict:
            return {}

        def spec(self) -> dict[str, Any]:
            return {}

    try:
        data = Local().to_json()
        assert "<locals>" in data["class"]
        with pytest.raises(ValueError, match="inside a function"):
            trainer_from_json(data)
    finally:
        base._TRAINERS.pop("test_json_local", None)
