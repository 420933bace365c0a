"""A teacher named by study and trial, found in the driver before a run (studies.teacher).

The studies are written with archtune's own ``Study.create`` and trials told by hand
(no Ray, no training): each trial's checkpoint is a real archtune checkpoint of a small
ResNet on the digits' shape, or a directory that is gone.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import optuna
import pytest

from spaces import Categorical, Float, Int, ResNetSpace, SearchSpace, TrainingSpace
from studies.objectives import Objectives
from studies.plan import plan_run
from studies.records import ATTR_REPEAT_OF
from studies.settings import RunSettings
from studies.storage import StorageError
from studies.study import Study
from studies.teacher import find_teacher, resolve_teacher
from trainers import ImageClassifier, Trainer, trainer_from_json
from trainers.base import ATTR_CHECKPOINT
from trainers.checkpoint import CHECKPOINT_FILE, model_state, save_checkpoint
from trainers.teacher import TeacherSource

COMPLETE, FAIL, PRUNED = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.FAIL,
    optuna.trial.TrialState.PRUNED,
)


def _space() -> SearchSpace:
    return SearchSpace(
        {
            "model": ResNetSpace(stages=1, depth=1, width=Categorical([4, 8])),
            "train": TrainingSpace(lr=Float(1e-3, 1e-1, log=True)),
        }
    )


def _checkpoint(directory: Path, width: int, classes: int = 10) -> str:
    """A Ray-style checkpoint directory holding a real checkpoint of a width-``width`` net."""
    space = _space()
    config = {"model": {"stages": 1, "depth": 1, "width": width}, "train": {"lr": 0.01}}
    net = space["model"].build(config["model"], input_shape=(1, 8, 8), num_classes=classes)
    state = model_state(net, space, config, input_shape=(1, 8, 8), num_classes=classes)
    directory.mkdir(parents=True)
    save_checkpoint(state, directory / CHECKPOINT_FILE)
    return str(directory)


def _tell(study: Study, value: Any, state: Any = COMPLETE, **attrs: Any) -> None:
    trial = study.optuna.ask()
    for key, attr in attrs.items():
        trial.set_user_attr(key, attr)
    study.optuna.tell(trial, value if state == COMPLETE else None, state=state)


@pytest.fixture(scope="module")
def teachers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``teachers`` (maximise val_acc): 0 COMPLETE 0.8; 1 COMPLETE 0.9 (the best);
    2 FAIL; 3 PRUNED; 4 COMPLETE 0.7 without a checkpoint; 5 COMPLETE 0.6 whose
    directory is gone; 6 a repeat of 1, answered from the record (no checkpoint of its
    own); 7 RUNNING. ``front`` has two objectives; ``empty`` no trial; ``failed`` one FAIL.
    """
    root = tmp_path_factory.mktemp("teachers")
    url = f"sqlite:///{root / 'studies.db'}"
    dirs = {n: _checkpoint(root / f"trial-{n}", width) for n, width in ((0, 4), (1, 8))}
    dirs[5] = str(root / "gone")
    study = Study.create("teachers", _space(), "val_acc", "maximize", storage=url)
    _tell(study, 0.8, **{ATTR_CHECKPOINT: dirs[0]})
    _tell(study, 0.9, **{ATTR_CHECKPOINT: dirs[1]})
    _tell(study, None, FAIL)
    _tell(study, None, PRUNED, **{ATTR_CHECKPOINT: dirs[0]})
    _tell(study, 0.7)
    _tell(study, 0.6, **{ATTR_CHECKPOINT: dirs[5]})
    _tell(study, 0.9, **{ATTR_REPEAT_OF: 1})
    study.optuna.ask()  # 7: RUNNING
    front = Study.create(
        "front", _space(), ["val_acc", "params"], ["maximize", "minimize"], storage=url
    )
    for values in ((0.9, 500.0), (0.8, 100.0), (0.7, 900.0)):
        trial = front.optuna.ask()
        trial.set_user_attr(ATTR_CHECKPOINT, dirs[0])
        front.optuna.tell(trial, values)
    Study.create("empty", _space(), "val_acc", storage=url)
    _tell(Study.create("failed", _space(), "val_acc", storage=url), None, FAIL)
    return {"url": url, "dirs": dirs, "root": root}


def _digest(url: str) -> str:
    return hashlib.sha256(Path(url.removeprefix("sqlite:///")).read_bytes()).hexdigest()


def test_best_is_the_best_complete_trial_with_its_checkpoint_and_architecture(
    teachers: dict[str, Any],
) -> None:
    url = teachers["url"]
    before = _digest(url)
    found = find_teacher({"study": "teachers", "trial": "best"}, url)
    assert (found.study, found.trial, found.values) == ("teachers", 1, (0.9,))
    assert found.checkpoint == teachers["dirs"][1]
    assert found.architecture == {"family": "resnet", "stages": 1, "depth": 1, "width": 8}
    assert found.source.to_json() == {"study": "teachers", "trial": 1}, "no storage stored"
    assert _digest(url) == before, "finding a teacher must not write the database"
    by_number = find_teacher({"study": "teachers", "trial": 0}, url)
    assert by_number.checkpoint == teachers["dirs"][0] and by_number.architecture["width"] == 4


def test_a_storage_of_its_own_wins_and_is_kept(teachers: dict[str, Any], tmp_path: Path) -> None:
    other = f"sqlite:///{tmp_path / 'elsewhere.db'}"  # the distilling study's: not opened
    found = find_teacher({"study": "teachers", "trial": "best", "storage": teachers["url"]}, other)
    assert found.trial == 1
    assert found.source.to_json()["storage"] == teachers["url"]
    assert not (tmp_path / "elsewhere.db").exists()


def test_a_repeat_answered_from_the_record_uses_the_trial_it_repeats(
    teachers: dict[str, Any],
) -> None:
    found = find_teacher({"study": "teachers", "trial": 6}, teachers["url"])
    assert found.trial == 6 and found.checkpoint == teachers["dirs"][1]


@pytest.mark.parametrize(
    ("study", "trial", "error", "match"),
    [
        ("nope", 0, ValueError, r"No study 'nope'.*\['empty', 'failed', 'front', 'teachers'\]"),
        ("nope", "best", ValueError, r"No study 'nope'"),
        ("teachers", 99, ValueError, "has no trial 99; its trials are numbered 0 to 7"),
        ("teachers", 2, ValueError, r"is FAIL, not COMPLETE.*COMPLETE: \[0, 1, 4, 5, 6\]"),
        ("teachers", 3, ValueError, "is PRUNED, not COMPLETE"),
        ("teachers", 7, ValueError, "not COMPLETE"),
        ("teachers", 4, ValueError, "no recorded checkpoint .*'archtune:checkpoint'"),
        ("teachers", 5, FileNotFoundError, r"is gone: expected .*gone[/\\]checkpoint\.pt"),
        ("front", "best", ValueError, r"2 objectives .*'trial': N \(front: \[0, 1\]\)"),
        ("empty", "best", ValueError, "no COMPLETE trial"),
        ("failed", "best", ValueError, "no COMPLETE trial"),
    ],
)
def test_errors_say_what_is_wrong(
    teachers: dict[str, Any], study: str, trial: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        find_teacher({"study": study, "trial": trial}, teachers["url"])


def test_a_missing_database_is_named_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    with pytest.raises(StorageError, match=r"teacher's study 's'.*absent\.db"):
        find_teacher({"study": "s", "trial": "best"}, f"sqlite:///{path}")
    assert not path.exists()
    with pytest.raises(ValueError, match="names no storage"):
        find_teacher({"study": "s", "trial": "best"})


def test_resolve_teacher_hands_the_checkpoint_to_the_trainer(teachers: dict[str, Any]) -> None:
    trainer = ImageClassifier(epochs=1, teacher={"study": "teachers", "trial": "best"})
    found = resolve_teacher(trainer, teachers["url"])
    assert found is not None and found.trial == 1
    assert trainer.spec()["teacher"] == {"study": "teachers", "trial": 1}
    assert trainer._teacher_path == teachers["dirs"][1]
    # What the study stores rebuilds a trainer that finds the same trial (a resume).
    again = trainer_from_json(json.loads(json.dumps(trainer.to_json())))
    assert resolve_teacher(again, teachers["url"]).checkpoint == found.checkpoint  # type: ignore[union-attr]
    assert again.identity() == trainer.identity()
    # Nothing to resolve: no teacher, or a checkpoint path.
    assert resolve_teacher(ImageClassifier(epochs=1), teachers["url"]) is None
    path = ImageClassifier(epochs=1, teacher=teachers["dirs"][0])
    assert resolve_teacher(path, teachers["url"]) is None


def test_a_teacher_that_does_not_fit_the_data_is_refused_before_the_run(
    teachers: dict[str, Any], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'three.db'}"
    study = Study.create("three-classes", _space(), "val_acc", storage=url)
    _tell(study, 0.5, **{ATTR_CHECKPOINT: _checkpoint(tmp_path / "c3", 4, classes=3)})
    trainer = ImageClassifier(epochs=1, teacher={"study": "three-classes", "trial": "best"})
    with pytest.raises(ValueError, match="3 classes vs the data's 10"):
        resolve_teacher(trainer, url)


class _OwnTeacherTrainer(Trainer):
    """A trainer with a study teacher but no way to receive its checkpoint."""

    name = "test_own_teacher"
    metrics = ("epoch", "val_acc")
    max_epochs = 1

    def __init__(self) -> None:
        self.teacher = TeacherSource.parse({"study": "teachers", "trial": "best"})

    def check_space(self, space: SearchSpace) -> None: ...

    def run(self, config: Any, space: SearchSpace, session: Any) -> dict[str, float]:
        return {}

    def spec(self) -> dict[str, Any]:
        return {}


def test_a_trainer_that_cannot_take_the_checkpoint_says_so(teachers: dict[str, Any]) -> None:
    with pytest.raises(TypeError, match="has no use_teacher"):
        resolve_teacher(_OwnTeacherTrainer(), teachers["url"])


def test_plan_run_finds_the_teacher_in_the_study_database(teachers: dict[str, Any]) -> None:
    space = SearchSpace(
        {
            "model": ResNetSpace(stages=1, depth=Int(1, 2), width=8),
            "train": TrainingSpace(distill_alpha=Float(0.1, 0.9)),
        }
    )
    objectives, url = Objectives.parse("val_acc", "maximize"), teachers["url"]
    trainer = ImageClassifier(epochs=1, teacher={"study": "teachers", "trial": "best"})
    plan = plan_run(space, objectives, trainer, "random", RunSettings(), 0, storage=url)
    assert plan.teacher is not None and plan.teacher.trial == 1
    assert trainer.spec()["teacher"] == {"study": "teachers", "trial": 1}
    bad = ImageClassifier(epochs=1, teacher={"study": "teachers", "trial": 5})
    with pytest.raises(FileNotFoundError, match="is gone"):
        plan_run(space, objectives, bad, "random", RunSettings(), 0, storage=url)


def test_a_teacher_storage_with_a_password_is_refused() -> None:
    with pytest.raises(ValueError, match="must not hold a password"):
        TeacherSource(study="s", trial="best", storage="postgresql://u:s3cret@db/x")
    assert TeacherSource(study="s", trial=1, storage="postgresql://u@db/x").storage
