"""What a study file declares: the space, the objective, the trainer and how to search.

``archtune run study.py`` imports the file and runs the :class:`Experiment` it defines
at module level; command-line flags override the trial count, the storage and the Ray
address. See ``examples/digits_resnet.py``.

Example:
    >>> from spaces import SearchSpace, ResNetSpace, TrainingSpace, Int
    >>> from trainers import ImageClassifier
    >>> experiment = Experiment(
    ...     name="digits-resnet",
    ...     space=SearchSpace({"model": ResNetSpace(depth=Int(1, 3)), "train": TrainingSpace()}),
    ...     objective="val_acc",
    ...     trainer=ImageClassifier(dataset="digits", epochs=5),
    ...     num_trials=20,
    ... )
    >>> experiment.controller
    'tpe'
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass, field, replace
from typing import Any

import optuna

from spaces import SearchSpace
from studies.storage import DEFAULT_STORAGE
from studies.study import Study
from trainers import Trainer


@dataclass
class Experiment:
    """A complete study definition.

    Attributes:
        name: Study name in the database.
        space: The search space.
        objective: Reported metric to optimise.
        trainer: What each trial trains.
        direction: ``"maximize"`` or ``"minimize"``.
        controller: A controller name (see ``search.list_controllers()``) or sampler.
        seed: Seed of a controller given by name.
        num_trials: Trials to run.
        max_concurrent: Trials at the same time.
        scheduler: ``"fifo"``, ``"asha"`` or ``"median"``.
        scheduler_options: The scheduler's settings, e.g. ``{"grace_period": 3}`` (see
            :meth:`Study.run`).
        resume_stopped: Train a repeat of a stopped configuration on from its checkpoint
            (see :meth:`Study.run`).
        resources_per_trial: e.g. ``{"cpu": 1, "gpu": 0}``.
        storage: Database URL.
    """

    name: str
    space: SearchSpace
    objective: str
    trainer: Trainer
    direction: str = "maximize"
    controller: str | optuna.samplers.BaseSampler = "tpe"
    seed: int | None = None
    num_trials: int = 20
    max_concurrent: int = 2
    scheduler: str = "fifo"
    scheduler_options: dict[str, int] | None = None
    resume_stopped: bool = False
    resources_per_trial: dict[str, float] = field(default_factory=lambda: {"cpu": 1})
    storage: str = DEFAULT_STORAGE

    def with_overrides(self, **changes: Any) -> Experiment:
        """A copy with the given fields replaced; ``None`` values leave a field as is."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def run(
        self, address: str | None = None, run_dir: str | None = None, progress: bool = True
    ) -> Study:
        """Create the study (or continue the one of the same name) and run it."""
        from search import make_controller

        study = Study.create(
            self.name,
            self.space,
            self.objective,
            self.direction,
            self.storage,
            load_if_exists=True,
        )
        controller = self.controller
        if isinstance(controller, str):
            # A continued study must not replay the proposals of its first run.
            seed = None if self.seed is None else self.seed + len(study.trials)
            controller = make_controller(controller, seed=seed)
        study.run(
            self.trainer,
            controller,
            num_trials=self.num_trials,
            max_concurrent=self.max_concurrent,
            scheduler=self.scheduler,
            scheduler_options=self.scheduler_options,
            resume_stopped=self.resume_stopped,
            resources_per_trial=self.resources_per_trial,
            address=address,
            run_dir=run_dir,
            progress=progress,
        )
        return study


class StudyFileError(ValueError):
    """A study file cannot be loaded or defines no single experiment."""


def load_experiment(path: str, name: str | None = None) -> Experiment:
    """Import the Python file at ``path`` and return the :class:`Experiment` it defines.

    Args:
        path: A ``.py`` file defining an ``Experiment`` at module level.
        name: Pick the experiment with this study name when the file defines several.

    Raises:
        StudyFileError: missing file, import error, or not exactly one matching experiment.
    """
    if not os.path.isfile(path):
        raise StudyFileError(f"Study file {path!r} does not exist.")
    spec = importlib.util.spec_from_file_location("archtune_study_file", path)
    if spec is None or spec.loader is None:
        raise StudyFileError(f"{path!r} is not a Python file; give a .py study file.")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise StudyFileError(f"Importing {path!r} failed: {type(e).__name__}: {e}") from e
    finally:
        sys.path.pop(0)
    found = [v for v in vars(module).values() if isinstance(v, Experiment)]
    if name is not None:
        found = [e for e in found if e.name == name]
    if len(found) == 1:
        return found[0]
    if not found:
        what = f"no Experiment named {name!r}" if name else "no Experiment"
        raise StudyFileError(
            f"{path!r} defines {what}; add `experiment = Experiment(name=..., space=..., "
            "objective=..., trainer=...)` at module level (see examples/digits_resnet.py)."
        )
    names = sorted(e.name for e in found)
    raise StudyFileError(f"{path!r} defines several experiments {names}; pick one with --name.")
