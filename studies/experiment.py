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
    >>> experiment.controller, experiment.settings.num_trials
    ('tpe', 20)
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from search.spec import ControllerSpec
from spaces import SearchSpace
from studies.errors import StudyFileError
from studies.names import check_study_name
from studies.plan import check_study_args, plan_run, run_settings
from studies.settings import RunSettings
from studies.storage import DEFAULT_STORAGE
from studies.study import Study
from trainers import Trainer
from trainers.base import import_study_file


@dataclass(frozen=True, init=False)
class Experiment:
    """A complete study definition: what to search, how to train, how to run.

    Attributes:
        name: Study name in the database (see :func:`studies.names.check_study_name`).
        space: The search space.
        objective: Reported metric to optimise.
        trainer: What each trial trains.
        direction: ``"maximize"`` or ``"minimize"``.
        controller: A controller name (see ``search.list_controllers()``), a
            :class:`~search.ControllerSpec`, or an Optuna sampler.
        settings: How to run (:class:`~studies.settings.RunSettings`).
        storage: Database URL.

    The constructor also takes ``seed`` (of a controller given by name) and every field
    of :class:`~studies.settings.RunSettings` as a keyword (``num_trials``,
    ``max_concurrent``, ``scheduler``, ``scheduler_options``, ``resources_per_trial``,
    ``run_dir``, ``max_retries``, ``reuse_finished``, ``resume_stopped``, ``tensorboard``,
    ``metrics_port``, ``metrics_host``), which replace the same field of ``settings``.
    Override fields later with ``dataclasses.replace``.
    """

    name: str
    space: SearchSpace
    objective: str | tuple[str, ...]
    trainer: Trainer
    direction: str | tuple[str, ...]
    controller: str | ControllerSpec | optuna.samplers.BaseSampler
    settings: RunSettings
    storage: str

    def __init__(
        self,
        name: str,
        space: SearchSpace,
        objective: str | Sequence[str],
        trainer: Trainer,
        direction: str | Sequence[str] = "maximize",
        controller: str | ControllerSpec | optuna.samplers.BaseSampler = "tpe",
        settings: RunSettings | None = None,
        storage: str = DEFAULT_STORAGE,
        *,
        seed: int | None = None,
        num_trials: int | None = None,
        max_concurrent: int | None = None,
        scheduler: str | None = None,
        scheduler_options: Mapping[str, int] | None = None,
        resources_per_trial: Mapping[str, float] | None = None,
        run_dir: str | None = None,
        max_retries: int | None = None,
        reuse_finished: bool | None = None,
        resume_stopped: bool | None = None,
        tensorboard: str | None = None,
        metrics_port: int | None = None,
        metrics_host: str | None = None,
    ) -> None:
        check_study_name(name)  # at once: a study file with a bad name fails to load
        if seed is not None:
            if not isinstance(controller, str):
                raise TypeError(
                    "seed applies to a controller given by name; give the seed to "
                    "make_controller(...) or ControllerSpec(...) instead."
                )
            controller = ControllerSpec(controller, seed=seed)
        overrides = {
            "num_trials": num_trials,
            "max_concurrent": max_concurrent,
            "scheduler": scheduler,
            "scheduler_options": scheduler_options,
            "resources_per_trial": resources_per_trial,
            "run_dir": run_dir,
            "max_retries": max_retries,
            "reuse_finished": reuse_finished,
            "resume_stopped": resume_stopped,
            "tensorboard": tensorboard,
            "metrics_port": metrics_port,
            "metrics_host": metrics_host,
        }
        fields = {
            "name": name,
            "space": space,
            "objective": objective if isinstance(objective, str) else tuple(objective),
            "trainer": trainer,
            "direction": direction if isinstance(direction, str) else tuple(direction),
            "controller": controller,
            "settings": run_settings(settings, overrides),
            "storage": storage,
        }
        for key, value in fields.items():
            object.__setattr__(self, key, value)

    def __repr__(self) -> str:
        from studies.storage import shown_url

        return (
            f"Experiment(name={self.name!r}, objective={self.objective!r}, "
            f"direction={self.direction!r}, trainer={self.trainer!r}, "
            f"controller={self.controller!r}, settings={self.settings!r}, "
            f"storage={shown_url(self.storage)!r})"
        )

    def run(
        self, address: str | None = None, run_dir: str | None = None, progress: bool = True
    ) -> Study:
        """Create the study (or continue the one of the same name) and run it.

        Everything is checked before the study is created, so a bad setting leaves
        nothing behind in the database; the monitors the settings ask for (TensorBoard,
        Prometheus) are opened before it too, so a directory that is not writable or a
        port in use (:class:`~studies.monitor.MonitorError`) leaves nothing behind either.
        """
        objectives = check_study_args(self.name, self.space, self.objective, self.direction)
        settings = run_settings(self.settings, {"address": address, "run_dir": run_dir})
        with warnings.catch_warnings():  # Study.run says it once
            warnings.simplefilter("ignore", UserWarning)
            plan_run(
                self.space,
                objectives,
                self.trainer,
                self.controller,
                settings,
                0,
                storage=self.storage,
            )
        from studies.monitor import monitoring
        from studies.runner import ray_for_run

        # Study.run goes on with these monitors (a port is bound once).
        with monitoring(settings), ray_for_run(settings, self.storage):  # else: no study
            study = Study.create(
                self.name,
                self.space,
                self.objective,
                self.direction,
                self.storage,
                load_if_exists=True,
            )
            study.run(self.trainer, self.controller, settings, progress=progress)
        return study

    def replace(self, **changes: Any) -> Experiment:
        """A copy with fields of the experiment or of its settings replaced (by
        ``dataclasses.replace``); a None value leaves its field as it is (an unset flag).

        Example:
            >>> from spaces import Int
            >>> from trainers import ImageClassifier
            >>> e = Experiment("x", SearchSpace({"d": Int(1, 3)}), "val_acc", ImageClassifier())
            >>> e.replace(num_trials=5, storage="sqlite:///other.db").settings.num_trials
            5
        """
        changes = {k: v for k, v in changes.items() if v is not None}
        own = {f.name for f in dataclasses.fields(self)}
        mine = {k: v for k, v in changes.items() if k in own and k != "settings"}
        base = changes.get("settings", self.settings)
        settings = run_settings(base, {k: v for k, v in changes.items() if k not in own})
        return dataclasses.replace(self, **mine, settings=settings)

    with_overrides = replace  # its name before RunSettings; study files may still use it


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
    try:  # the trainer classes it defines are then stored with the file, to resume
        module = import_study_file(path)
    except ImportError as e:
        raise StudyFileError(str(e)) from e
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
