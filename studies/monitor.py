"""Watching a running study from outside: the driver's monitors.

A run can be watched while it goes, besides the database: TensorBoard event files
(:mod:`studies.monitor_tensorboard`, ``RunSettings(tensorboard=DIR)``) and a Prometheus
endpoint (:mod:`studies.monitor_prometheus`, ``RunSettings(metrics_port=PORT)``). Both
are fed by the driver, where results arrive (the :class:`~studies.recorder.Recorder`),
never by the trials: workers write nothing, as for the database. Ray's own per-trial
loggers stay off (:mod:`studies.runner`).

A monitor is a :class:`RunMonitor`: hooks the recorder calls as a run goes.
:func:`monitoring` opens the monitors a run's settings ask for *before anything is
written*: a TensorBoard directory that cannot be written, or a port already in use,
raises :class:`MonitorError` (a ``ValueError``: ``archtune run`` prints one line and
exits with status 2) before the study is created, leased or changed.

Example:
    >>> from studies.settings import RunSettings
    >>> with monitoring(RunSettings()) as monitor:  # nothing asked for: nothing opened
    ...     monitor.where()
    []
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from studies.overhead import Overhead

if TYPE_CHECKING:
    import optuna

    from studies.objectives import Objectives
    from studies.settings import RunSettings

logger = logging.getLogger(__name__)

STATES = ("COMPLETE", "PRUNED", "FAIL", "INTERRUPTED")
"""How a trial's part in a run ends (:attr:`TrialEnd.state`)."""


class MonitorError(ValueError):
    """A monitor cannot be opened (a directory not writable, a port in use); raised
    before the run writes anything."""


@dataclass(frozen=True)
class TrialEnd:
    """How a trial's part in a run ended.

    Attributes:
        number: The Optuna trial number.
        state: One of :data:`STATES`; ``"INTERRUPTED"``: the run stopped before it
            ended (it goes on at the next run).
        values: Its objective values as Optuna recorded them (None when it has none).
        feasible: Whether it met the space's constraints (True when it has none).
        overhead: Where its time went (:mod:`studies.overhead`).
    """

    number: int
    state: str
    values: tuple[float, ...] | None = None
    feasible: bool = True
    overhead: Overhead = field(default_factory=Overhead)

    @classmethod
    def told(cls, trial: optuna.trial.FrozenTrial, overhead: Overhead) -> TrialEnd:
        """The end of a trial Optuna was just told.

        Example:
            >>> import optuna
            >>> t = optuna.trial.create_trial(value=0.5)
            >>> TrialEnd.told(t, Overhead(train_s=2.0)).values
            (0.5,)
        """
        from search.optuna_access import constraints_of

        values = None if trial.values is None else tuple(float(v) for v in trial.values)
        feasible = all(v <= 0 for v in constraints_of(trial).values())
        return cls(trial.number, trial.state.name, values, feasible, overhead)


class RunMonitor:
    """Base class of what watches a run from the driver; every hook does nothing here.

    Call order: :meth:`run_started` once, when the run starts (the study is known);
    then for each trial :meth:`trial_started` (its proposal is whole), :meth:`epoch`
    for each newly recorded epoch, and :meth:`trial_finished` once (told, or left
    interrupted); :meth:`asked` and :meth:`wrote` at any time; :meth:`close` once,
    by whoever opened it, after the run.

    Threads: the hooks are called from Ray Tune's driver loop and from the recorder's
    writer thread (:meth:`trial_finished`, :meth:`wrote`); an implementation must be
    thread-safe. Hooks must be quick (they hold up the loop or the database writes).
    The recorder calls them through a :class:`MonitorGroup`, which logs and drops a
    monitor that raises: watching must never stop a run.
    """

    def run_started(
        self, study: str, objectives: Objectives, best: Sequence[Sequence[float]]
    ) -> None:
        """The run of ``study`` starts; ``best`` holds the objective values of its
        earlier best trials (the Pareto front for several objectives; may be empty)."""

    def trial_started(self, number: int, params: Mapping[str, Any]) -> None:
        """Trial ``number`` was proposed with ``params`` (Optuna's, e.g. ``model/depth``)
        and goes to Ray Tune; an interrupted trial that goes on starts again."""

    def epoch(self, number: int, step: int, metrics: Mapping[str, Any]) -> None:
        """Trial ``number`` reported epoch ``step`` with ``metrics`` (as stored)."""

    def trial_finished(self, end: TrialEnd) -> None:
        """A trial's part in the run ended (see :class:`TrialEnd`)."""

    def asked(self, seconds: float) -> None:
        """Ray Tune waited ``seconds`` for one configuration from the controller."""

    def wrote(self, op: str, seconds: float) -> None:
        """One database write (``op``, e.g. ``add_metrics``) took ``seconds``."""

    def where(self) -> list[str]:
        """Lines that tell a person where to look (shown when the run starts)."""
        return []

    def close(self) -> None:
        """Release what it holds (files, the port); called once, after the run."""


class MonitorGroup(RunMonitor):
    """Several monitors as one; a monitor whose hook raises is logged once and dropped.

    Example:
        >>> class Broken(RunMonitor):
        ...     def asked(self, seconds):
        ...         raise RuntimeError("oops")
        >>> group = MonitorGroup([Broken()])
        >>> group.asked(0.1)  # logged, not raised
        >>> group.monitors
        []
    """

    def __init__(self, monitors: Sequence[RunMonitor] = ()) -> None:
        self.monitors = list(monitors)
        self._dropped: list[RunMonitor] = []

    @classmethod
    def of(cls, monitor: RunMonitor | None) -> MonitorGroup:
        """``monitor`` as a group (itself if it is one; an empty group for None)."""
        if isinstance(monitor, MonitorGroup):
            return monitor
        return cls([] if monitor is None else [monitor])

    def _each(self, hook: str, *args: Any) -> None:
        for monitor in list(self.monitors):
            try:
                getattr(monitor, hook)(*args)
            except Exception as e:
                logger.warning(
                    "archtune: %s failed in %s (%s: %s); it is off for the rest of the run.",
                    type(monitor).__name__,
                    hook,
                    type(e).__name__,
                    e,
                )
                with contextlib.suppress(ValueError):
                    self.monitors.remove(monitor)
                    self._dropped.append(monitor)  # closed with the others (its port, files)

    def run_started(
        self, study: str, objectives: Objectives, best: Sequence[Sequence[float]]
    ) -> None:
        self._each("run_started", study, objectives, best)

    def trial_started(self, number: int, params: Mapping[str, Any]) -> None:
        self._each("trial_started", number, params)

    def epoch(self, number: int, step: int, metrics: Mapping[str, Any]) -> None:
        self._each("epoch", number, step, metrics)

    def trial_finished(self, end: TrialEnd) -> None:
        self._each("trial_finished", end)

    def asked(self, seconds: float) -> None:
        self._each("asked", seconds)

    def wrote(self, op: str, seconds: float) -> None:
        self._each("wrote", op, seconds)

    def where(self) -> list[str]:
        return [line for m in self.monitors for line in m.where()]

    def close(self) -> None:
        for monitor in [*self.monitors, *self._dropped]:
            try:
                monitor.close()
            except Exception as e:  # the others still close
                logger.warning("archtune: closing %s failed: %s", type(monitor).__name__, e)


def open_monitors(settings: RunSettings) -> MonitorGroup:
    """The monitors ``settings`` ask for, open (a directory checked, a port bound).

    Raises:
        MonitorError: when one cannot be opened (nothing stays open then).
    """
    monitors: list[RunMonitor] = []
    try:
        if settings.tensorboard is not None:
            from studies.monitor_tensorboard import TensorBoardMonitor

            monitors.append(TensorBoardMonitor(settings.tensorboard))
        if settings.metrics_port is not None:
            from studies.monitor_prometheus import PrometheusMonitor

            monitors.append(PrometheusMonitor(settings.metrics_host, settings.metrics_port))
    except BaseException:
        MonitorGroup(monitors).close()
        raise
    return MonitorGroup(monitors)


_held: MonitorGroup | None = None  # the monitors an outer monitoring block opened


@contextlib.contextmanager
def monitoring(settings: RunSettings) -> Iterator[MonitorGroup]:
    """The run's monitors (:func:`open_monitors`), closed at the end of the block.

    Nested blocks (``Experiment.run`` around ``Study.run``) share the outer one's, so
    the checks come before the experiment creates its study and the port is bound once.

    Raises:
        MonitorError: when a monitor cannot be opened.
    """
    global _held
    if _held is not None:
        yield _held
        return
    group = open_monitors(settings)
    _held = group
    try:
        yield group
    finally:
        _held = None
        group.close()
