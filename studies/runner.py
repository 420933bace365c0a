"""Running a study's trials on Ray Tune: the Ray instance, the scheduler, the Tuner.

The settings come checked (:class:`~studies.settings.RunSettings`); this module only
turns them into Ray Tune's objects.

Example:
    >>> from trainers import ImageClassifier
    >>> trainer_id(ImageClassifier(epochs=2)) == trainer_id(ImageClassifier(epochs=2))
    True
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shlex
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import optuna

from spaces import SearchSpace
from studies.cluster import check_cluster, is_uri
from studies.monitor import RunMonitor
from studies.names import file_slug
from studies.objectives import Objective, Objectives
from studies.progress import TrialProgress
from studies.ray_start import start_ray
from studies.recorder import Recorder
from studies.settings import RunSettings
from studies.storage import DEFAULT_STORAGE, StorageError
from studies.writer import WriterError, database_error
from trainers import Trainer
from trainers.distributed import num_workers, placement

if TYPE_CHECKING:
    from studies.lease import Lease
    from studies.study import Study

_QUIET_LOGGERS = ("ray", "ray.tune", "ray.train", "ray.air")


def trainer_id(trainer: Trainer) -> str:
    """A short hash of the trainer's stored form: equal ids train configurations alike.

    Example:
        >>> from trainers import ImageClassifier
        >>> a, b = ImageClassifier(epochs=2), ImageClassifier(epochs=3)
        >>> trainer_id(a) == trainer_id(ImageClassifier(epochs=2)), trainer_id(a) == trainer_id(b)
        (True, False)
    """
    text = json.dumps(trainer.identity(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _scheduler(settings: RunSettings, trainer: Trainer) -> Any:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule

    options = settings.scheduler_config()
    # A trial that goes on from a checkpoint (a stopped or interrupted one) starts at its
    # epoch, not at 1: count epochs by the trainer's own, when it reports them.
    time_attr = "epoch" if "epoch" in trainer.metrics else "training_iteration"
    if settings.scheduler == "asha":
        return ASHAScheduler(time_attr=time_attr, max_t=trainer.max_epochs, **options)
    if settings.scheduler == "median":
        return MedianStoppingRule(time_attr=time_attr, **options)
    return FIFOScheduler()


def storage_failed(study: str, error: BaseException) -> StorageError:
    """The one line a user sees when the database failed during a run."""
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
    return StorageError(
        f"The study database failed during the run of {study!r} ({reason}); the run "
        "stopped. Finished trials are recorded; the trials that were running go on from "
        f"their checkpoints with `archtune resume {shlex.quote(study)}` once the database "
        "works again."
    )


def _default_run_dir(storage_url: str) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(storage_url)
    if url.get_backend_name() == "sqlite" and url.database:
        base = os.path.dirname(os.path.abspath(url.database))
    else:
        base = os.path.expanduser("~")
    return os.path.join(base, "archtune_runs")


def run_path(settings: RunSettings, storage_url: str) -> str:
    """Where Ray keeps the run's trial directories: ``settings.run_dir`` (a path made
    absolute, or a URI as given), else a folder next to a SQLite file, else in ``~``."""
    path = settings.run_dir or _default_run_dir(storage_url)
    return path if is_uri(path) else os.path.abspath(path)


_ray_held = 0  # ray_for_run blocks open in this process (an inner one only passes)


@contextlib.contextmanager
def ray_for_run(settings: RunSettings, storage_url: str) -> Iterator[None]:
    """Ray, up and checked for a run: connected or started here (and stopped at the end
    if it was), then the cluster checked (:func:`studies.cluster.check_cluster`), before
    the caller writes anything. Nested blocks (``Experiment.run`` around ``Study.run``)
    connect and check once.

    Raises:
        studies.ray_start.RayUnreachable: when no cluster answers at the address.
        studies.cluster.ClusterMismatch / ValueError: when the trials could never run.
    """
    import ray

    global _ray_held
    if _ray_held:
        yield
        return
    ours = not ray.is_initialized()  # a Ray this run starts is this run's to stop
    _ray_held += 1
    try:
        start_ray(settings.address, settings.resources_per_trial)
        check_cluster(settings.resources_per_trial, run_path(settings, storage_url))
        yield
    finally:
        _ray_held -= 1
        if ours and ray.is_initialized():  # also one cut off while it started
            ray.shutdown()


def _stats_fn(trainer: Trainer, space: SearchSpace) -> Any:
    """The trainer's statistics of a configuration, or None when it computes none
    (``studies.costs.proposal_stats`` calls it only when constraints or costs need it)."""
    if type(trainer).model_stats is Trainer.model_stats:
        return None

    def stats(config: Any, metrics: set[str]) -> Any:
        return trainer.model_stats(config, space, metrics)

    return stats


def run_on_ray(
    study: Study,
    trainer: Trainer,
    space: SearchSpace,
    settings: RunSettings,
    scheduled: Objective,
    progress: bool,
    adopt: Sequence[optuna.trial.FrozenTrial] = (),
    lease: Lease | None = None,
    monitor: RunMonitor | None = None,
) -> None:
    """Run ``settings.num_trials`` trials of ``study`` through a Ray Tune ``Tuner``;
    its scheduler judges ``scheduled`` epoch by epoch. The interrupted trials ``adopt``
    go on first. The run stops, as on Ctrl-C, if ``lease`` is lost. ``monitor`` (open,
    see :func:`studies.monitor.monitoring`) watches it.

    Raises:
        studies.interrupt.RunInterrupted: when Ctrl-C or SIGTERM stopped the run.
        studies.storage.StorageError: when the database failed, or the lease was lost.
    """
    with _tune_environment():
        _run(study, trainer, space, settings, scheduled, progress, adopt, lease, monitor)


# Ray Tune reads these when a run starts. archtune records every result itself, so Ray's
# per-trial loggers and its console tables only cost time and screen; a failed trial's
# last report carries the error instead of the objective. Set for the run only (the
# user's own Tune runs in the same process keep Ray's defaults), unless already set.
_TUNE_ENV = {
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "TUNE_PRINT_ALL_TRIAL_ERRORS": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
    # Ctrl-C and SIGTERM are archtune's (studies.interrupt): open trials are kept.
    "TUNE_DISABLE_SIGINT_HANDLER": "1",
}


_FORCED = ("TUNE_DISABLE_SIGINT_HANDLER",)  # archtune's own handling depends on it


@contextlib.contextmanager
def _tune_environment() -> Iterator[None]:
    before = {k: os.environ.get(k) for k in _TUNE_ENV}
    os.environ.update({k: v for k, v in _TUNE_ENV.items() if k in _FORCED or before[k] is None})
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run(
    study: Study,
    trainer: Trainer,
    space: SearchSpace,
    settings: RunSettings,
    scheduled: Objective,
    progress: bool,
    adopt: Sequence[optuna.trial.FrozenTrial],
    lease: Lease | None,
    monitor: RunMonitor | None = None,
) -> None:
    from studies.interrupt import RunInterrupted, SignalStop

    objectives: Objectives = study.objectives
    bar = TrialProgress(study.name, settings.num_trials, objectives, enabled=progress)
    recorder = Recorder(
        study.optuna,
        study.storage,
        space,
        objectives,
        budget=trainer.epochs_for,
        num_trials=settings.num_trials,
        on_finish=bar.trial_finished,
        stats=_stats_fn(trainer, space),
        trainer_id=trainer_id(trainer),
        reuse=settings.reuse_finished,
        resume=settings.resume_stopped,
        scheduled=scheduled.name,
        adopt=adopt,
        monitor=monitor,
    )

    def on_signal(name: str) -> None:
        recorder.stop_reason = f"The run was stopped by {name} before this trial finished."

    lost = lease.lost.is_set if lease is not None else None
    stop = SignalStop(on_signal=on_signal, also=lost)
    levels = {name: logging.getLogger(name).level for name in _QUIET_LOGGERS}
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        trainer.prepare()
        tuner = _tuner(study, trainer, space, settings, scheduled, recorder, stop)
        best = _continuing(study, bar, settings.num_trials)
        recorder.monitor.run_started(study.name, objectives, best)
        for line in recorder.monitor.where():
            bar.note(line)
        if adopt:
            bar.note(
                f"Continuing {study.name!r}: {len(adopt)} interrupted trial(s) go on first, "
                "from their last checkpoint where they have one."
            )
        with bar, stop:  # Ctrl-C and SIGTERM are taken from here on
            try:
                tuner.fit()
                recorder.flush()  # every trial counted before the bar stops
            except Exception as e:  # Ray wraps what a searcher or callback raised
                cause = recorder.write_error or database_error(e)
                if cause is None:
                    raise
                raise storage_failed(study.name, cause) from e
        if stop.signum is not None:
            where = None if study.storage.url == DEFAULT_STORAGE else study.storage.shown
            raise RunInterrupted(study.name, stop.signum, recorder.interrupted, where)
        if lease is not None and lease.lost.is_set():
            raise StorageError(
                f"Another process took over study {study.name!r} (it found this driver's "
                "lease gone stale); this run stopped, its running trials left interrupted."
            )
        stopped = None if recorder.infeasible else recorder.stopped  # the error says it
        bar.summary(recorder.rejected, stopped, recorder.repeated)
    except BaseException:
        _close(recorder, study.name, raising=True)
        raise
    else:
        _close(recorder, study.name, raising=False)
        if recorder.infeasible is not None:  # the constraints rejected every proposal
            raise recorder.infeasible
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _continuing(study: Study, bar: TrialProgress, more: int) -> list[list[float]]:
    """Say that a run continues a study that has trials, and start the bar from its best;
    return the objective values of its best trials (its front), for the monitors."""
    from studies.reads import StudyReader

    reader = StudyReader(study.storage)
    summary = next((s for s in reader.summaries() if s.name == study.name), None)
    if summary is None or summary.n_trials == 0:
        return []
    if study.objectives.multi:
        front = [list(t.values) for t in reader.front(study.name) if t.values]
        bar.start_from(None, front)
    else:
        best = reader.best(study.name)
        bar.start_from(None if best is None else best.value, [])
        front = [] if best is None or best.value is None else [[best.value]]
    bar.note(
        f"Continuing study {study.name!r}: {summary.n_trials} trials recorded, "
        f"running {more} more."
    )
    return front


def _close(recorder: Recorder, study: str, raising: bool) -> None:
    """Leave what is still open interrupted and write what is pending; a failed write
    is raised as one :class:`StorageError`, unless another error is on its way."""
    recorder.interrupt_open_trials()  # an error or a second signal: left to go on
    try:
        recorder.close()
    except WriterError as e:
        if not raising:
            raise storage_failed(study, recorder.write_error or e) from e
        logging.getLogger(__name__).error("archtune: %s", e)


def _tuner(
    study: Study,
    trainer: Trainer,
    space: SearchSpace,
    settings: RunSettings,
    scheduled: Objective,
    recorder: Recorder,
    stop: Any,
) -> Any:
    """Ray Tune's ``Tuner`` for the run: the recorder as searcher and callback."""
    from ray import tune

    from studies._compat import CheckpointConfig, FailureConfig, RunConfig
    from studies.trial import make_trainable
    from studies.tune_adapter import RecorderCallback, RecorderSearcher

    resources = dict(settings.resources_per_trial)
    workers = num_workers(resources)
    threads = max(1, int(resources.get("cpu", 1) // workers))
    trainable = tune.with_resources(
        make_trainable(trainer, space, threads, workers), placement(resources)
    )
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=RecorderSearcher(recorder, scheduled.name, scheduled.mode),
            scheduler=_scheduler(settings, trainer),
            metric=scheduled.name,
            mode=scheduled.mode,
            num_samples=settings.num_trials,
            max_concurrent_trials=settings.max_concurrent,
            reuse_actors=True,
        ),
        run_config=RunConfig(
            name=f"{file_slug(study.name)}-{len(study.trials)}",
            storage_path=run_path(settings, study.storage.url),
            verbose=0,
            stop=stop,
            callbacks=[RecorderCallback(recorder)],
            # Two kept: the newest may be recorded a moment after Ray wrote it, and an
            # interrupted trial goes on from the one recorded.
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            # Restarts (from the last checkpoint) of trials whose worker died; errors
            # raised by a trial's own code end it FAIL at once (studies.trial).
            failure_config=FailureConfig(max_failures=settings.max_retries),
        ),
    )
