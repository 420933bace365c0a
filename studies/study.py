"""The study: a named search recorded in a database, run on Ray Tune.

Example:
    >>> import os, tempfile
    >>> from spaces import SearchSpace, ResNetSpace, TrainingSpace, Int
    >>> from studies import Study
    >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "archtune.db")
    >>> space = SearchSpace({"model": ResNetSpace(depth=Int(1, 2)), "train": TrainingSpace()})
    >>> study = Study.create("demo", space=space, objective="val_acc", storage=url)
    >>> Study.load("demo", storage=url).space == space
    True
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import TrialState

from search import make_controller
from spaces import SearchSpace
from studies.records import (
    ATTR_ERROR,
    ATTR_OBJECTIVE,
    ATTR_REJECTED,
    ATTR_REPEAT_OF,
    ATTR_RUN,
    ATTR_SPACE,
    ATTR_TRAINER,
    StudyRecord,
    load_study_record,
)
from studies.storage import DEFAULT_STORAGE, Storage, open_storage
from trainers import Trainer, trainer_from_json

DIRECTIONS = ("maximize", "minimize")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class Study:
    """A named search over a space, for one objective, recorded in a database.

    Use :meth:`create` or :meth:`load`, not the constructor.
    """

    def __init__(self, optuna_study: optuna.Study, storage: Storage) -> None:
        self._study = optuna_study
        self.storage = storage

    # Lifecycle ---------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        name: str,
        space: SearchSpace,
        objective: str,
        direction: str = "maximize",
        storage: str = DEFAULT_STORAGE,
        load_if_exists: bool = False,
    ) -> Study:
        """Create a study in the database at ``storage``.

        Args:
            name: Unique name of the study in that database.
            space: What to search.
            objective: Name of the reported metric to optimise, e.g. ``"val_acc"``.
            direction: ``"maximize"`` or ``"minimize"``.
            storage: SQLAlchemy URL of the database (an SQLite file by default).
            load_if_exists: Load the existing study of that name instead of raising; its
                space, objective and direction must then match.

        Raises:
            ValueError: on a bad argument, or an existing study that differs.
            studies.storage.StorageError: when the database cannot be opened.
        """
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"Study name must be a non-empty string, got {name!r}.")
        if not isinstance(space, SearchSpace):
            raise TypeError(f"space must be a SearchSpace, got {type(space).__name__}.")
        if not space.decisions():
            raise ValueError("The space has no decisions; add a Float, Int or Categorical.")
        if not isinstance(objective, str) or not objective:
            raise ValueError(f"objective must name a reported metric, got {objective!r}.")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}.")
        db = open_storage(storage)
        if name in optuna.get_all_study_names(db.optuna):
            if not load_if_exists:
                raise ValueError(
                    f"A study named {name!r} already exists in {storage}; pick another name, "
                    "or use Study.load / load_if_exists=True to continue it."
                )
            study = cls.load(name, storage)
            study._check_same(space, objective, direction)
            return study
        inner = optuna.create_study(study_name=name, storage=db.optuna, direction=direction)
        inner.set_user_attr(ATTR_SPACE, space.dumps())
        inner.set_user_attr(ATTR_OBJECTIVE, objective)
        return cls(inner, db)

    @classmethod
    def load(cls, name: str, storage: str = DEFAULT_STORAGE) -> Study:
        """Open an existing study.

        Raises:
            KeyError: if the database has no study of that name (the message lists them).
        """
        db = open_storage(storage)
        names = optuna.get_all_study_names(db.optuna)
        if name not in names:
            raise KeyError(f"No study {name!r} in {storage}; studies there: {sorted(names)}.")
        inner = optuna.load_study(study_name=name, storage=db.optuna)
        if ATTR_SPACE not in inner.user_attrs:
            raise ValueError(f"Study {name!r} was not created by archtune (it has no space).")
        return cls(inner, db)

    def _check_same(self, space: SearchSpace, objective: str, direction: str) -> None:
        if self.space != space:
            raise ValueError(
                f"Study {self.name!r} exists with a different space; use a new study name."
            )
        if (self.objective, self.direction) != (objective, direction):
            raise ValueError(
                f"Study {self.name!r} exists with objective {self.objective!r} "
                f"({self.direction}); got {objective!r} ({direction})."
            )

    # Properties --------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._study.study_name

    @property
    def optuna(self) -> optuna.Study:
        """The underlying Optuna study (for Optuna's own tooling)."""
        return self._study

    @property
    def space(self) -> SearchSpace:
        return SearchSpace.from_json(self._study.user_attrs[ATTR_SPACE])

    @property
    def objective(self) -> str:
        return self._study.user_attrs[ATTR_OBJECTIVE]

    @property
    def direction(self) -> str:
        d = self._study.direction
        return "maximize" if d == optuna.study.StudyDirection.MAXIMIZE else "minimize"

    @property
    def trials(self) -> list[optuna.trial.FrozenTrial]:
        """All trials, in order, as Optuna records them."""
        return self._study.get_trials(deepcopy=False)

    @property
    def best_trial(self) -> optuna.trial.FrozenTrial | None:
        """The best COMPLETE trial, or None when no trial has completed yet."""
        done = self._study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return self._study.best_trial if done else None

    def best_config(self) -> dict[str, Any] | None:
        """The nested configuration of :attr:`best_trial`, or None."""
        best = self.best_trial
        return None if best is None else self.space.unflatten(best.params)

    def record(self) -> StudyRecord:
        """A read-only snapshot of the study with every metric (for views)."""
        return load_study_record(self.storage, self.name)

    def n_finished(self) -> int:
        """How many trials have ended (complete, pruned or failed)."""
        return len(self._study.get_trials(deepcopy=False, states=FINISHED))

    def n_trained(self) -> int:
        """How many finished trials were trained: not rejected, not answered from the record."""
        untrained = (ATTR_REJECTED, ATTR_REPEAT_OF)
        return sum(
            not any(a in t.user_attrs for a in untrained)
            for t in self._study.get_trials(deepcopy=False, states=FINISHED)
        )

    # Running -----------------------------------------------------------------------
    def run(
        self,
        trainer: Trainer,
        controller: optuna.samplers.BaseSampler | str | None = None,
        num_trials: int = 10,
        max_concurrent: int = 2,
        scheduler: str | None = None,
        resources_per_trial: Mapping[str, float] | None = None,
        address: str | None = None,
        run_dir: str | None = None,
        progress: bool = True,
        max_retries: int = 2,
        reuse_finished: bool = True,
        scheduler_options: Mapping[str, int] | None = None,
        resume_stopped: bool = False,
    ) -> None:
        """Run ``num_trials`` more trials on Ray Tune, recording each as it ends.

        A failing trial is recorded as FAIL with its traceback; the study goes on.

        Args:
            trainer: What each trial trains (e.g. ``ImageClassifier(...)``).
            controller: An Optuna sampler, or a name for :func:`search.make_controller`
                (default ``"tpe"``).
            num_trials: Trials to run in this call.
            max_concurrent: Trials running at the same time.
            scheduler: ``"fifo"`` (none), ``"asha"`` or ``"median"`` early stopping.
            scheduler_options: The scheduler's settings, in epochs: for ``"asha"``
                ``grace_period`` (1; no trial stops before it), ``reduction_factor`` (3;
                a third goes on at each rung) and ``brackets`` (1); for ``"median"``
                ``grace_period`` (1) and ``min_samples_required`` (3).
            resources_per_trial: e.g. ``{"cpu": 1, "gpu": 0}``.
            address: None starts a local Ray instance (or reuses the one this process
                has); ``"auto"`` or ``"ray://host:10001"`` joins a cluster.
            run_dir: Where Ray keeps trial directories and checkpoints.
            progress: Show a progress bar with trials done and the best value.
            max_retries: Restarts of a trial whose worker died (a lost node, a killed
                process), each from the trial's last checkpoint. A trial whose own code
                raises (NaN loss, out of memory, a bad configuration) is not retried: it
                ends FAIL with the error recorded.
            reuse_finished: Answer a proposal that repeats a configuration this trainer
                already completed from the record (a COMPLETE trial marked
                ``archtune:repeat_of``, no training) instead of training it again;
                repeats do not count towards ``num_trials``. Turn off for a noisy
                objective whose repeats you want measured again.
            resume_stopped: Train a proposal that repeats a configuration the scheduler
                stopped on from that trial's last checkpoint (marked
                ``archtune:resumed_from``) instead of from scratch. It first reports the
                epoch it was stopped at again, so the scheduler judges it again there
                before any training: a controller's re-proposal acts as a request to
                promote the stopped trial (as in ASHA's promotions) and costs only the
                epochs beyond the checkpoint. The trainer must report
                ``"epoch"`` (the schedulers then count epochs by it) and checkpoint each
                epoch, as ``ImageClassifier`` does; Ray's run directory must be on storage
                the driver can read. Off by default.

        Raises:
            ValueError / TypeError: on a bad argument, before anything runs.
        """
        from studies.runner import RunSettings, run_on_ray

        if not isinstance(trainer, Trainer):
            raise TypeError(f"trainer must be an archtune Trainer, got {type(trainer).__name__}.")
        space = self.space
        trainer.check_space(space)
        if space.constraints and type(trainer).model_stats is Trainer.model_stats:
            raise ValueError(
                f"The space has constraints, but {type(trainer).__name__} cannot compute model "
                "statistics to check them; remove the constraints or use ImageClassifier."
            )
        if self.objective not in trainer.metrics:
            raise ValueError(
                f"The study optimises {self.objective!r}, which {type(trainer).__name__} "
                f"does not report; it reports {list(trainer.metrics)}."
            )
        if isinstance(controller, str) or controller is None:
            controller = make_controller(controller or "tpe", seed=None)
        controller_spec = getattr(controller, "archtune_spec", {"name": "tpe"})
        try:
            json.dumps(controller_spec)
        except TypeError:  # options that are not JSON cannot be stored; keep the name
            controller_spec = {"name": controller_spec["name"]}
        if not isinstance(controller, optuna.samplers.BaseSampler):
            raise TypeError(
                f"controller must be an Optuna sampler or a controller name, got {controller!r}."
            )
        settings = RunSettings.validated(
            num_trials,
            max_concurrent,
            scheduler,
            resources_per_trial,
            address,
            run_dir,
            controller_spec,
            max_retries,
            reuse_finished,
            scheduler_options,
            resume_stopped,
        )
        if settings.resume_stopped and "epoch" not in trainer.metrics:
            raise ValueError(
                f"resume_stopped needs a trainer that reports 'epoch'; "
                f"{type(trainer).__name__} reports {list(trainer.metrics)}. Report the epoch "
                "number (and a checkpoint) each epoch, or leave resume_stopped off."
            )
        grace = (settings.scheduler_options or {}).get("grace_period", 1)
        if grace > trainer.max_epochs:
            raise ValueError(
                f"scheduler_options grace_period={grace} is more than the trainer's "
                f"{trainer.max_epochs} epochs, so no trial could be stopped; lower it."
            )
        self._study.set_user_attr(ATTR_TRAINER, json.dumps(trainer.to_json()))
        self._study.set_user_attr(ATTR_RUN, json.dumps(settings.to_json(self.n_trained())))
        self._study.sampler = controller
        run_on_ray(self, trainer, space, settings, progress=progress)

    def resume(
        self, num_trials: int | None = None, address: str | None = None, progress: bool = True
    ) -> int:
        """Continue an interrupted run with the trainer and settings it was started with.

        Trials left RUNNING by a driver that died are marked FAIL (their last reported
        epochs stay recorded), then the run goes on until the trial count it asked for.

        Returns:
            The number of trials started by this call.

        Raises:
            ValueError: if the study was never run.
        """
        if ATTR_RUN not in self._study.user_attrs:
            raise ValueError(f"Study {self.name!r} has never been run; use `archtune run`.")
        stale = self._study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        for t in stale:
            self.storage.optuna.set_trial_user_attr(
                t._trial_id, ATTR_ERROR, "The driver stopped before this trial finished."
            )
            self.storage.optuna.set_trial_state_values(t._trial_id, TrialState.FAIL)
        run = json.loads(self._study.user_attrs[ATTR_RUN])
        remaining = run["finished_before"] + run["num_trials"] - self.n_trained()
        if num_trials is not None:
            remaining = num_trials
        if remaining <= 0:
            return 0
        trainer = trainer_from_json(json.loads(self._study.user_attrs[ATTR_TRAINER]))
        controller = _rebuild_controller(run.get("controller", "tpe"))
        self.run(
            trainer,
            controller,
            num_trials=remaining,
            max_concurrent=run["max_concurrent"],
            scheduler=run["scheduler"],
            resources_per_trial=run["resources_per_trial"],
            address=address,
            run_dir=run.get("run_dir"),
            max_retries=run.get("max_retries", 2),
            reuse_finished=run.get("reuse_finished", True),
            scheduler_options=run.get("scheduler_options"),
            resume_stopped=run.get("resume_stopped", False),
            progress=progress,
        )
        return remaining

    def __repr__(self) -> str:
        return f"Study(name={self.name!r}, storage={self.storage.url!r})"


def _rebuild_controller(spec: str | dict[str, Any]) -> optuna.samplers.BaseSampler:
    """The controller a run was started with, for its resumption.

    A controller whose randomness is drawn per trial and whose state is rebuilt from the
    study (``rebuildable = True``) gets its seed back and continues the same search.
    Others get a fresh seed: with the old one they would replay their first proposals.
    """
    if isinstance(spec, str):
        spec = {"name": spec}
    options = spec.get("options") or {}
    sampler = make_controller(spec["name"], seed=spec.get("seed"), **options)
    if not getattr(sampler, "rebuildable", False):
        sampler = make_controller(spec["name"], seed=None, **options)
    return sampler
