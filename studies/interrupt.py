"""Stopping a run on Ctrl-C or SIGTERM: cleanly, with every open trial recorded.

Ray Tune handles SIGINT itself and then returns as if the run had ended, and a SIGTERM
(a preempted job, ``kill``) ends the process with a C++ stack dump. During a run archtune
takes both signals instead (:class:`SignalStop`): the first asks Ray Tune to stop through
a ``Stopper`` (Ray stops the trials' actors, then calls the callbacks' ``on_experiment_end``,
where the recorder leaves the open trials RUNNING and marked interrupted), then the run
raises :class:`RunInterrupted`, whose message says how to resume; the command line exits
with 130 (SIGINT) or 143 (SIGTERM). A second signal is not caught: it interrupts at once.

Example:
    >>> error = RunInterrupted("demo", signal.SIGTERM, interrupted=2)
    >>> error.exit_status
    143
    >>> "archtune resume demo" in str(error)
    True
    >>> "`archtune resume 'my study' --storage sqlite:///a.db`" in str(
    ...     RunInterrupted("my study", signal.SIGINT, 0, "sqlite:///a.db"))
    True
"""

from __future__ import annotations

import shlex
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

from ray import tune

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by a signal; its open trials were recorded as interrupted.

    Attributes:
        study: The study's name.
        signum: The signal (``signal.SIGINT`` or ``signal.SIGTERM``).
        interrupted: How many trials were running (they go on at the next run).
    """

    def __init__(
        self, study: str, signum: int, interrupted: int, storage: str | None = None
    ) -> None:
        self.study, self.signum, self.interrupted = study, signum, interrupted
        self.storage = storage  # shown (no password), when not the default database
        super().__init__(self.message())

    @property
    def exit_status(self) -> int:
        """128 + the signal's number, as a shell reports a process ended by it."""
        return 128 + int(self.signum)

    def message(self) -> str:
        """What stopped, what was kept, and how to go on."""
        name = signal.Signals(self.signum).name
        running = (
            f"{self.interrupted} running trial(s) recorded as interrupted: they go on from "
            "their last checkpoint when the study continues"
            if self.interrupted
            else "no trial was running"
        )
        where = f" --storage {shlex.quote(self.storage)}" if self.storage else ""
        return (
            f"Study {self.study!r} stopped by {name}; finished trials are recorded, "
            f"{running}. Continue with `archtune resume {shlex.quote(self.study)}{where}`."
        )


class SignalStop(tune.Stopper):
    """Catches SIGINT and SIGTERM while a run goes (in the main thread only), and stops
    Ray Tune at the next step of its loop.

    Args:
        on_signal: Called with the signal's name when the first one arrives.
        also: Another reason to stop everything (checked at each step), e.g. a lease lost.
    """

    def __init__(
        self,
        on_signal: Callable[[str], None] | None = None,
        also: Callable[[], bool] | None = None,
    ) -> None:
        self.on_signal, self.also = on_signal, also
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False  # trials are stopped all at once, by stop_all

    def stop_all(self) -> bool:
        return self.signum is not None or (self.also is not None and self.also())

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        self._restore()  # a second signal interrupts at once
        if self.on_signal is not None:
            self.on_signal(signal.Signals(signum).name)

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def __enter__(self) -> SignalStop:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._restore()

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles its run configuration for its own restore; archtune resumes from
        # the study database, so the handlers stay behind.
        return {"on_signal": None, "also": None, "signum": None, "_previous": {}}
