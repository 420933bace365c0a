"""Where a trial's wall time went: propose, queue, start-up, train and record.

Each trial of a run records one user attribute, ``archtune:overhead``
(:data:`~studies.records.ATTR_OVERHEAD`), written once, when the trial ends (told
COMPLETE, PRUNED or FAIL, or left interrupted): :meth:`Overhead.to_json` of five
durations in seconds, in the order they happen,

- ``propose_s``: the controller producing the proposal, on the driver: from just before
  ``study.ask()`` for this trial to the proposal being whole (its sampled decisions, the
  model statistics and constraint checks, the attributes written). The wait for earlier
  writes that a proposal runs after is not in it.
- ``queue_s``: from the proposal being made (driver) to the trainable function starting
  on its worker: Ray's scheduling and placement, the wait for free resources, and
  starting the trial's actor (its imports, unpickling the trainer).
- ``startup_s``: from the trainable function starting to the start of training, which
  is when the trainer's first ``session.restore()`` returns (a trainer calls it once its
  model and data are ready, just before its epoch loop): the model built, the data
  loaded, the checkpoint read. A trainer that never calls ``restore`` has no marker, so
  its start-up counts as training (``startup_s`` 0). A trial going on from a stopped one
  (``resume_stopped``) also waits here for the scheduler to judge its first report again.
- ``train_s``: from the start of training to the last report sent (checkpoints saved
  in between included).
- ``record_s``: from the worker sending its final result (the last report, or the
  error it reported) to the driver recording it: Ray handing it over, the trial's
  earlier writes landing, its end written (measured just before the ``tell``). None
  (absent) when no final result came: a trial whose worker died, or left interrupted.

plus ``epochs`` (the training reports its runs sent) and ``runs`` (how many times its
trainable started). The worker stamps each report with wall-clock times
(:func:`stamps`: ``time.time()``); the driver turns them into durations
(:class:`TrialClock`). Start-up and train are differences of one worker's clock; queue
and record cross from the driver's clock to a worker's, so clock skew between machines
can make them negative: they are clamped at 0 (a skew of ``d`` seconds then moves up to
``d`` seconds between the two).

A trial answered from the record (a repeat) or rejected for its constraints has only
``propose_s``. A trial that runs several times adds its runs up: Ray restarting it
after its worker died (the new run queues from the restart), or an interrupted trial
that the next run of the study adopts (it starts from what the interrupted run
recorded). Time a run spent on an epoch it never reported (the worker died in it) is in
no phase. A trial that goes on from a stopped one's checkpoint is a new trial and counts
only its own time.

Example:
    >>> o = Overhead(propose_s=0.1, queue_s=0.4, startup_s=1.5, train_s=8.0, record_s=0.05)
    >>> round(o.total_s, 2), o.to_json()["train_s"]
    (10.05, 8.0)
    >>> Overhead.from_json(o.to_json()) == o
    True
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

# Keys a worker adds to every report (its wall clock, time.time()); never metrics.
STARTED_KEY = "archtune_started"  # the trainable function started (this run of the trial)
READY_KEY = "archtune_ready"  # training started: the trainer's session.restore() returned
SENT_KEY = "archtune_sent"  # this report was sent
TIMING_KEYS = (STARTED_KEY, READY_KEY, SENT_KEY)
PHASES = ("propose_s", "queue_s", "startup_s", "train_s", "record_s")
"""The five durations, in the order a trial goes through them."""


def stamps(started: float, ready: float | None = None) -> dict[str, float]:
    """The timing keys of a report sent now by a run that started at ``started`` and
    (``ready``) began training then; a report before training has no ``ready``.

    Example:
        >>> sorted(stamps(100.0, 101.5))
        ['archtune_ready', 'archtune_sent', 'archtune_started']
    """
    out = {STARTED_KEY: started, SENT_KEY: time.time()}
    if ready is not None:
        out[READY_KEY] = ready
    return out


def _add(a: float | None, b: float | None) -> float | None:
    return a if b is None else b if a is None else a + b


@dataclass(frozen=True)
class Overhead:
    """Where one trial's time went, in seconds (see the module docstring).

    Attributes:
        propose_s: The controller producing the proposal.
        queue_s: Proposal made (driver) to the trainable starting on its worker.
        startup_s: Trainable started to training started (model, data, checkpoint).
        train_s: Training started to the last report sent.
        record_s: Final result sent to the driver recording it.
        epochs: Training reports the trial's runs sent.
        runs: Times the trial's trainable started (1 + restarts).

    A phase the trial never went through is None (a repeat has only ``propose_s``).

    Example:
        >>> (Overhead(1.0, 2.0, epochs=1, runs=1) + Overhead(0.5, 3.0, epochs=2, runs=1)).queue_s
        5.0
    """

    propose_s: float | None = None
    queue_s: float | None = None
    startup_s: float | None = None
    train_s: float | None = None
    record_s: float | None = None
    epochs: int = 0
    runs: int = 0

    def __add__(self, other: Overhead) -> Overhead:
        """Both runs' time: phases added (None is nothing), counts added."""
        sums = {p: _add(getattr(self, p), getattr(other, p)) for p in PHASES}
        return Overhead(**sums, epochs=self.epochs + other.epochs, runs=self.runs + other.runs)

    @property
    def total_s(self) -> float:
        """The five phases together (those recorded)."""
        return sum(getattr(self, p) or 0.0 for p in PHASES)

    def to_json(self) -> dict[str, float]:
        """The recorded phases (None left out) and, for a trial that ran, the counts.

        Example:
            >>> Overhead(propose_s=0.25).to_json()
            {'propose_s': 0.25}
        """
        phases = {p: getattr(self, p) for p in PHASES}
        out: dict[str, float] = {p: v for p, v in phases.items() if v is not None}
        if self.runs:
            out.update(epochs=self.epochs, runs=self.runs)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str) -> Overhead:
        """An :class:`Overhead` from :meth:`to_json` (or its JSON text); unknown keys are
        ignored, a missing phase is None.

        Raises:
            ValueError: if ``data`` is not a JSON object, or a phase is not a finite number
                >= 0 (or a count not an int >= 0).

        Example:
            >>> o = Overhead.from_json('{"propose_s": 0.5, "later": 1}')
            >>> o.propose_s, o.train_s
            (0.5, None)
        """
        if isinstance(data, str):
            data = json.loads(data)
        if not isinstance(data, Mapping):
            raise ValueError(f"An overhead is a JSON object of {list(PHASES)}; got {data!r}.")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known and v is not None}
        for name, value in values.items():
            kind = int if name in ("epochs", "runs") else (int, float)
            if isinstance(value, bool) or not isinstance(value, kind) or not value >= 0:
                raise ValueError(f"Overhead {name} must be a number >= 0; got {value!r}.")
            if not math.isfinite(value):
                raise ValueError(f"Overhead {name} must be finite; got {value!r}.")
        return cls(**values)

    @classmethod
    def recorded(cls, value: Any) -> Overhead:
        """What a trial's ``archtune:overhead`` attribute holds: nothing (``Overhead()``)
        when it is absent or unreadable, so a run goes on whatever an old record holds.

        Example:
            >>> Overhead.recorded(None) == Overhead.recorded({"train_s": -1}) == Overhead()
            True
        """
        try:
            return cls() if value is None else cls.from_json(value)
        except ValueError:
            return cls()


def _time(value: Any) -> float | None:
    """A reported timestamp, or None when the result carried none (or a bad one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _gap(start: float | None, end: float | None) -> float | None:
    """``end - start`` clamped at 0 (clocks of two machines), None if either is unknown."""
    return None if start is None or end is None else max(0.0, end - start)


@dataclass
class TrialClock:
    """The driver's timing of one open trial, fed the worker's report stamps.

    Call order: :meth:`proposed` once the proposal is whole; :meth:`seen` with each
    result of the trial (``final=True`` for the one that ends it); :meth:`restarted` when
    Ray starts it again; :meth:`overhead` when its end is written. Not thread-safe: the
    recorder feeds it from Ray's loop and reads it on its writer thread only after the
    trial is closed.

    Attributes:
        earlier: Runs closed before (an adopted trial's record, Ray's restarts).
        propose_s: This trial's proposal time in this driver.
        queued: Driver time the current run was queued (proposal made, or restart).
        started, ready, sent: Worker times of the current run (see :func:`stamps`).
        run_queue_s: The current run's queue time.
        final: Worker time the final result was sent, once it came.
        epochs: Training reports of the current run.

    Example:
        >>> clock = TrialClock()
        >>> clock.proposed(began=10.0, now=10.5)
        >>> clock.seen({"archtune_started": 11.0, "archtune_ready": 12.0, "archtune_sent": 15.0})
        >>> clock.seen({"archtune_started": 11.0, "archtune_ready": 12.0, "archtune_sent": 17.0},
        ...            final=True)
        >>> o = clock.overhead(now=17.25)
        >>> o.propose_s, o.queue_s, o.startup_s, o.train_s, o.record_s, o.epochs
        (0.5, 0.5, 1.0, 5.0, 0.25, 2)
    """

    earlier: Overhead = field(default_factory=Overhead)
    propose_s: float | None = None
    queued: float | None = None
    started: float | None = None
    ready: float | None = None
    sent: float | None = None
    run_queue_s: float | None = None
    final: float | None = None
    epochs: int = 0

    def proposed(self, began: float, now: float | None = None) -> None:
        """The proposal, begun at driver time ``began``, is whole (at ``now``): queued."""
        self.queued = time.time() if now is None else now
        self.propose_s = _add(self.propose_s, max(0.0, self.queued - began))

    def restarted(self, now: float | None = None) -> None:
        """Ray starts the trial again: its next run queues from ``now``."""
        self.queued = time.time() if now is None else now

    def seen(
        self, result: Mapping[str, Any] | None, final: bool = False, error: bool = False
    ) -> None:
        """A result of the trial: ``final`` ends it, an ``error`` report too (and is no
        epoch). Results without stamps are ignored. A new ``started`` opens a new run (the
        current one is closed); Ray's repeat of the last result at the end (the same
        ``sent``) is not counted again."""
        result = result or {}
        started, sent = _time(result.get(STARTED_KEY)), _time(result.get(SENT_KEY))
        if started is None or sent is None:
            return
        if started != self.started:
            if self.started is not None:
                self.earlier = self.earlier + self._run()
            self.started, self.ready, self.sent, self.epochs = started, None, None, 0
            self.run_queue_s = _gap(self.queued, started)
        ready = _time(result.get(READY_KEY))
        if ready is not None:
            self.ready = ready
        if sent != self.sent:
            self.sent = sent
            self.epochs += ready is not None and not error
        if final or error:
            self.final = sent

    def _run(self) -> Overhead:
        """The current run's queue, start-up and training (nothing before it reported)."""
        if self.started is None:
            return Overhead()
        ready = self.sent if self.ready is None else min(self.ready, self.sent)
        return Overhead(
            queue_s=self.run_queue_s,
            startup_s=_gap(self.started, ready),
            train_s=_gap(ready, self.sent),
            epochs=self.epochs,
            runs=1,
        )

    def overhead(self, now: float | None = None) -> Overhead:
        """The trial's overhead as of ``now`` (driver time; the final result's record lag)."""
        now = time.time() if now is None else now
        this = replace(self._run(), propose_s=self.propose_s, record_s=_gap(self.final, now))
        return self.earlier + this
