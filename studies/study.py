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

import dataclasses
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from search.optuna_access import study_id, trial_id
from search.spec import importable
from spaces import SearchSpace
from studies.lease import Lease, refuse_if_driven
from studies.names import check_study_name
from studies.objectives import Objectives
from studies.plan import Controller, check_study_args, plan_run, run_settings
from studies.records import (
    ATTR_CUT_OFF,
    ATTR_ERROR,
    ATTR_OBJECTIVE,
    ATTR_PROPOSED,
    ATTR_REJECTED,
    ATTR_REPEAT_OF,
    ATTR_RUN,
    ATTR_SPACE,
    ATTR_TRAINER,
    ATTR_TRAINER_ID,
    StudyRecord,
)
from studies.settings import RunSettings, load_run_record, run_record
from studies.storage import DEFAULT_STORAGE, Storage, open_storage, writing
from trainers import Trainer, trainer_from_json

if TYPE_CHECKING:
    from studies.delete import DeletedStudy

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class Study:
    """A named search over a space, for one or more objectives, recorded in a database.

    Use :meth:`create` or :meth:`load`, not the constructor. A study with several
    objectives has a Pareto front (:attr:`best_trials`) instead of a best trial.
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
        objective: str | Sequence[str],
        direction: str | Sequence[str] = "maximize",
        storage: str = DEFAULT_STORAGE,
        load_if_exists: bool = False,
    ) -> Study:
        """Create a study in the database at ``storage``.

        Args:
            name: Unique name of the study in that database: 1 to 512 characters, no
                control characters, no spaces at either end
                (:func:`studies.names.check_study_name`). Files made from it use
                :func:`studies.names.file_slug`.
            space: What to search.
            objective: Name of the reported metric to optimise, e.g. ``"val_acc"``, or a
                list of them for a multi-objective study, e.g. ``["val_acc", "params"]``
                (see :mod:`studies.objectives` for the cost metrics).
            direction: ``"maximize"`` or ``"minimize"``, or one per objective.
            storage: SQLAlchemy URL of the database (an SQLite file by default).
            load_if_exists: Load the existing study of that name instead of raising; its
                space, objectives and directions must then match.

        Raises:
            ValueError: on a bad argument, or an existing study that differs.
            studies.storage.StorageError: when the database cannot be opened.
        """
        check_study_name(name)
        objectives = check_study_args(name, space, objective, direction)
        db = open_storage(storage)
        if name in optuna.get_all_study_names(db.optuna):
            if not load_if_exists:
                raise ValueError(
                    f"A study named {name!r} already exists in {db.shown}; pick another name, "
                    "or use Study.load / load_if_exists=True to continue it."
                )
            study = cls.load(name, storage)
            study._check_same(space, objectives)
            return study
        inner = optuna.create_study(
            study_name=name, storage=db.optuna, directions=objectives.optuna_directions
        )
        with warnings.catch_warnings():  # experimental in Optuna 4
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            inner.set_metric_names(list(objectives.names))
        inner.set_user_attr(ATTR_SPACE, space.dumps())
        inner.set_user_attr(ATTR_OBJECTIVE, objectives.to_json())
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
            raise KeyError(f"No study {name!r} in {db.shown}; studies there: {sorted(names)}.")
        inner = optuna.load_study(study_name=name, storage=db.optuna)
        if ATTR_SPACE not in inner.user_attrs:
            raise ValueError(f"Study {name!r} was not created by archtune (it has no space).")
        return cls(inner, db)

    @classmethod
    def delete(
        cls,
        name: str,
        storage: str = DEFAULT_STORAGE,
        confirm: Callable[[int], bool] | None = None,
    ) -> DeletedStudy | None:
        """Delete study ``name``: Optuna's study (trials, values, attributes) and every
        row archtune keeps for it (per-epoch metrics, driver leases). Checkpoints and
        Ray's files under the run directory are left where they are.

        While it deletes, this process holds the study's driver lease, so no run starts
        on it half-way.

        Args:
            name: The study.
            storage: The database URL.
            confirm: Called with the study's trial count once the study is known to
                exist and no driver runs it, before anything is written; nothing is
                deleted unless it returns True. Default: delete.

        Returns:
            What was deleted, or None when ``confirm`` said no.

        Raises:
            KeyError: if the database has no study of that name (the message lists them).
            studies.lease.DriverAlive: if a live driver runs the study.
            studies.storage.StorageError: when the database cannot be written.

        Example:
            >>> import os, tempfile
            >>> from spaces import Float, SearchSpace
            >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "archtune.db")
            >>> _ = Study.create("old", SearchSpace({"x": Float(0, 1)}), "score", storage=url)
            >>> Study.delete("old", url).trials
            0
        """
        from studies.delete import delete_study

        return delete_study(name, storage, confirm)

    def _check_same(self, space: SearchSpace, objectives: Objectives) -> None:
        if self.space != space:
            raise ValueError(
                f"Study {self.name!r} exists with a different space; use a new study name."
            )
        if self.objectives != objectives:
            mine, theirs = self.objectives, objectives
            raise ValueError(
                f"Study {self.name!r} exists with objective {_describe(mine)}; got "
                f"{_describe(theirs)}. A study keeps its objectives: use a new study name."
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
    def objectives(self) -> Objectives:
        """The study's objectives with their directions."""
        return Objectives.from_json(
            self._study.user_attrs.get(ATTR_OBJECTIVE), self._study.directions
        )

    @property
    def objective(self) -> str:
        """The name of the objective (of a single-objective study; else see
        :attr:`objectives`)."""
        return self._single("objective", "objectives").name

    @property
    def direction(self) -> str:
        """``"maximize"`` or ``"minimize"`` (of a single-objective study; else see
        :attr:`objectives`)."""
        return self._single("direction", "objectives").direction

    @property
    def trials(self) -> list[optuna.trial.FrozenTrial]:
        """All trials, in order, as Optuna records them."""
        return self._study.get_trials(deepcopy=False)

    @property
    def best_trial(self) -> optuna.trial.FrozenTrial | None:
        """The best COMPLETE trial (of those that met the constraints, when trials carry
        constraint values), or None when there is none yet.

        Raises:
            ValueError: for a study with several objectives (use :attr:`best_trials`).
        """
        self._single("best_trial", "best_trials (the Pareto front)")
        best = self.best_trials  # Optuna's: feasible first, all ties
        return min(best, key=lambda t: t.number) if best else None

    @property
    def best_trials(self) -> list[optuna.trial.FrozenTrial]:
        """The Pareto front: COMPLETE trials no other COMPLETE trial dominates (feasible
        ones only, when trials carry constraint values), in trial order. For one objective,
        the trials with the best value. A trial a scheduler stopped (PRUNED) is never
        on it. The same trials as Optuna's ``study.best_trials``."""
        done = self._study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not done:
            return []
        return sorted(self._study.best_trials, key=lambda t: t.number)

    def best_config(self) -> dict[str, Any] | None:
        """The nested configuration of :attr:`best_trial`, or None.

        Raises:
            ValueError: for a study with several objectives (use :meth:`config_of` on
                each of :attr:`best_trials`).
        """
        best = self.best_trial
        return None if best is None else self.config_of(best)

    def config_of(self, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
        """The nested configuration ``trial`` trained."""
        return self.space.unflatten(trial.params)

    def _single(self, what: str, instead: str) -> Any:
        objectives = self.objectives
        if objectives.multi:
            raise ValueError(
                f"Study {self.name!r} has {len(objectives)} objectives {list(objectives.names)}, "
                f"so it has no single {what}; use {instead}."
            )
        return objectives[0]

    def record(self) -> StudyRecord:
        """A read-only snapshot of the study with every metric (for views)."""
        from studies.reads import StudyReader

        return StudyReader(self.storage).load_record(self.name)

    def n_finished(self) -> int:
        """How many trials have ended (complete, pruned or failed)."""
        return len(self._study.get_trials(deepcopy=False, states=FINISHED))

    def n_trained(self) -> int:
        """How many finished trials were trained: not rejected, not answered from the
        record, not cut off by an interruption before they had a configuration."""
        untrained = (ATTR_REJECTED, ATTR_REPEAT_OF)

        def trained(t: optuna.trial.FrozenTrial) -> bool:
            return not any(a in t.user_attrs for a in (*untrained, ATTR_CUT_OFF))

        return sum(map(trained, self._study.get_trials(deepcopy=False, states=FINISHED)))

    # Running -----------------------------------------------------------------------
    def run(
        self,
        trainer: Trainer,
        controller: Controller = None,
        settings: RunSettings | None = None,
        *,
        num_trials: int | None = None,
        max_concurrent: int | None = None,
        scheduler: str | None = None,
        scheduler_options: Mapping[str, int] | None = None,
        resources_per_trial: Mapping[str, float] | None = None,
        address: str | None = None,
        run_dir: str | None = None,
        max_retries: int | None = None,
        reuse_finished: bool | None = None,
        resume_stopped: bool | None = None,
        tensorboard: str | None = None,
        metrics_port: int | None = None,
        metrics_host: str | None = None,
        progress: bool = True,
    ) -> None:
        """Run ``settings.num_trials`` more trials on Ray Tune, recording each as it ends.

        A failing trial is recorded as FAIL with its traceback; the study goes on.

        Args:
            trainer: What each trial trains (e.g. ``ImageClassifier(...)``).
            controller: What to try next: a name for :func:`search.make_controller`
                (default ``"tpe"``), a :class:`~search.ControllerSpec`, or an Optuna
                sampler. A sampler that :func:`search.make_controller` did not make is
                stored by its class's import path: ``archtune resume`` rebuilds it with
                its default options (pass a ``ControllerSpec`` to keep options).
            settings: How to run (:class:`~studies.settings.RunSettings`, whose
                docstring describes every setting); default ``RunSettings()``.
            num_trials, max_concurrent, scheduler, scheduler_options, resources_per_trial,
            address, run_dir, max_retries, reuse_finished, resume_stopped, tensorboard,
            metrics_port, metrics_host: Shortcuts that
                replace the same field of ``settings`` when given (not None).
                ``resume_stopped`` trains a repeat of a configuration the
                scheduler stopped on from that trial's last checkpoint (marked
                ``archtune:resumed_from``) instead of from scratch: it first reports the
                epoch it was stopped at again, so the scheduler judges it again there
                before any training, as in ASHA's promotions. It needs a trainer that
                reports ``"epoch"`` and checkpoints each epoch (``ImageClassifier`` does),
                and Ray's run directory on storage the driver can read.
                ``tensorboard=DIR`` writes one TensorBoard run per trial there and
                ``metrics_port=PORT`` serves the driver's metrics for Prometheus while
                the run goes (see docs/monitoring.md).
            progress: Show a progress bar with trials done and the best value.

        Raises:
            ValueError / TypeError: on a bad argument, before anything is written or run.
            studies.monitor.MonitorError: a ValueError, when the TensorBoard directory is
                not writable or the metrics port cannot be bound (also before).
            studies.lease.DriverAlive: if another live driver runs the study (one driver
                per study; the message says which process).
            studies.ray_start.RayUnreachable: when no Ray cluster answers at ``address``.
            studies.cluster.ClusterMismatch: when the cluster can never place a trial or
                a node cannot reach the run directory (checked before the run is recorded).
            studies.interrupt.RunInterrupted: when Ctrl-C or SIGTERM stopped the run; the
                trials it left unfinished go on at the next run or resume.
        """
        from studies.monitor import monitoring
        from studies.runner import ray_for_run, run_on_ray

        overrides = {
            "num_trials": num_trials,
            "max_concurrent": max_concurrent,
            "scheduler": scheduler,
            "scheduler_options": scheduler_options,
            "resources_per_trial": resources_per_trial,
            "address": address,
            "run_dir": run_dir,
            "max_retries": max_retries,
            "reuse_finished": reuse_finished,
            "resume_stopped": resume_stopped,
            "tensorboard": tensorboard,
            "metrics_port": metrics_port,
            "metrics_host": metrics_host,
        }
        settings = run_settings(settings, overrides)
        space = self.space
        plan = plan_run(
            space,
            self.objectives,
            trainer,
            controller,
            settings,
            len(self.trials),
            storage=self.storage.url,
        )
        # The monitors open first: a directory not writable or a port in use writes nothing.
        with monitoring(settings) as monitor:
            with writing(self.storage, f"start a run of study {self.name!r}"):
                lease = Lease.acquire(self.storage, study_id(self._study), self.name)
            try:
                # Ray up and the cluster checked before the run is recorded: a run the
                # cluster can never carry changes nothing in the study.
                with ray_for_run(settings, self.storage.url):
                    with writing(self.storage, f"record the run of study {self.name!r}"):
                        interrupted = self._settle_running_trials(trainer)
                        self._study.set_user_attr(ATTR_TRAINER, json.dumps(trainer.to_json()))
                        record = run_record(settings, plan.spec, self.n_trained())
                        self._study.set_user_attr(ATTR_RUN, json.dumps(record))
                    self._study.sampler = plan.sampler
                    scheduled = plan.scheduled or self.objectives[0]
                    run_on_ray(
                        self,
                        trainer,
                        space,
                        settings,
                        scheduled,
                        progress,
                        interrupted,
                        lease,
                        monitor,
                    )
            finally:
                lease.release()

    def _settle_running_trials(self, trainer: Trainer) -> list[optuna.trial.FrozenTrial]:
        """The trials a driver left RUNNING (this process holds the study now, so their
        driver is gone). Those whose proposal was whole and that this trainer trains were
        interrupted: they go on first, in trial order. Any other (cut off while it was
        proposed, or another trainer's) is told FAIL, marked ``archtune:cut_off`` and not
        charged to the budget."""
        from studies.runner import trainer_id as identity

        mine = identity(trainer)
        interrupted = []
        for t in self._study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            attrs = t.user_attrs
            if attrs.get(ATTR_PROPOSED) and attrs.get(ATTR_TRAINER_ID) == mine:
                interrupted.append(t)
                continue
            reason = (
                "The driver stopped while this trial was being proposed."
                if not attrs.get(ATTR_PROPOSED)
                else "Interrupted, and this run trains with another trainer, which cannot "
                "go on from its checkpoint."
            )
            self.storage.optuna.set_trial_user_attr(trial_id(t), ATTR_ERROR, reason)
            self.storage.optuna.set_trial_user_attr(trial_id(t), ATTR_CUT_OFF, True)
            self.storage.optuna.set_trial_state_values(trial_id(t), TrialState.FAIL)
        return interrupted

    def resume(
        self,
        num_trials: int | None = None,
        address: str | None = None,
        progress: bool = True,
        controller: Controller = None,
        study_file: str | None = None,
        run_dir: str | None = None,
        *,
        tensorboard: str | None = None,
        metrics_port: int | None = None,
        metrics_host: str | None = None,
    ) -> int:
        """Continue an interrupted run with the trainer and settings it was started with.

        Trials the run left unfinished (Ctrl-C, SIGTERM, a driver that died) were
        interrupted, not failed: they are trained again first, from their last checkpoint,
        with their configuration; then new trials until the run's trial count is trained.

        Args:
            num_trials: Run this many more trials instead.
            address: Where to run (see :class:`~studies.settings.RunSettings`).
            progress: Show a progress bar.
            controller: The controller to go on with, when the stored one cannot be
                rebuilt (a sampler class defined in a script); default: the stored one.
            study_file: A study file to load the trainer class from: the script a
                trainer defined in ``__main__`` came from, or the new place of a study
                file that moved (see :func:`trainers.trainer_from_json`).
            run_dir: Where Ray keeps this run's trial directories instead of the stored
                one (e.g. shared storage, to go on on a cluster; see docs/clusters.md).
                Interrupted trials still go on from their recorded checkpoints.
            tensorboard, metrics_port, metrics_host: Watch this run (see :meth:`run`);
                like ``address``, not kept from the run it continues.

        Returns:
            The number of trials started by this call.

        Raises:
            ValueError: if the study was never run, or its controller or trainer cannot
                be rebuilt (the message says how to fix it).
            studies.lease.DriverAlive: if a live driver runs the study.
        """
        if ATTR_RUN not in self._study.user_attrs:
            raise ValueError(f"Study {self.name!r} has never been run; use `archtune run`.")
        settings, spec, finished_before = load_run_record(
            json.loads(self._study.user_attrs[ATTR_RUN])
        )
        if controller is None and not importable(spec):
            raise ValueError(
                f"Study {self.name!r} ran controller {spec.name!r}, which this process cannot "
                "import; resume from Python with Study.resume(controller=...), or register "
                "the sampler with search.register_controller in an importable module."
            )
        refuse_if_driven(self.storage, study_id(self._study), self.name, "resume it")
        stored = json.loads(self._study.user_attrs[ATTR_TRAINER])
        trainer = trainer_from_json(stored, study_file=study_file)
        # run() checks everything else before it writes anything. Interrupted trials are
        # not trained yet: they count in what remains, and go first.
        remaining = finished_before + settings.num_trials - self.n_trained()
        if num_trials is not None:
            remaining = num_trials
        if remaining <= 0:
            return 0
        settings = dataclasses.replace(settings, num_trials=remaining, address=address)
        if run_dir is not None:
            settings = dataclasses.replace(settings, run_dir=run_dir)
        watch = {
            "tensorboard": tensorboard,
            "metrics_port": metrics_port,
            "metrics_host": metrics_host,
        }
        settings = dataclasses.replace(
            settings, **{k: v for k, v in watch.items() if v is not None}
        )
        self.run(trainer, controller or spec, settings, progress=progress)
        return remaining

    # Export ------------------------------------------------------------------------
    def export(
        self,
        directory: str,
        format: str,
        *,
        trial: int | None = None,
        front: bool = False,
        force: bool = False,
    ) -> list[Any]:
        """Write the best trial's (or trial ``trial``'s, or the Pareto front's) model
        file, slim checkpoint and model card into ``directory``; see
        :func:`studies.export.export_study`, which this calls.

        Example:
            >>> study.export("winner", "onnx")  # doctest: +SKIP
            [ExportedModel(directory=PosixPath('winner'), format='onnx', ...)]
        """
        from studies.export import export_study

        return export_study(self, directory, format, trial=trial, front=front, force=force)

    def __repr__(self) -> str:
        return f"Study(name={self.name!r}, storage={self.storage.shown!r})"


def _describe(objectives: Objectives) -> str:
    return ", ".join(f"{o.name!r} ({o.direction})" for o in objectives)
