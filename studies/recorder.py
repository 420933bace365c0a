"""The driver-side bookkeeping of a running study: ask, report and tell, and nothing else.

A :class:`Recorder` is the single place that turns Ray Tune's trial events into Optuna
trials and archtune metric rows. The Ray Tune adapters in :mod:`studies.tune_adapter`
only forward events to it, so the rules below are in one place:

- ``ask``: a new Optuna trial whose active decisions the controller samples one by one
  (define-by-run, parents before the parameters conditioned on them), nested into a
  configuration.
- ``result``: the objective becomes an intermediate value at the reported ``epoch``;
  every numeric metric becomes a row of ``archtune_metrics``.
- ``complete``: COMPLETE when the trial reached its full budget
  (``epoch >= trainer.epochs_for(config)``), otherwise PRUNED (a scheduler stopped it
  early; Optuna then takes the last intermediate value, so samplers can tell
  low-fidelity values apart).
  Ray marks both cases ``done``, so the epoch count is what decides.
- ``fail``: the one-line reason and the traceback go to the trial's user attributes,
  then FAIL. A report carrying ``archtune_error`` (the trial's own code raised; see
  :mod:`studies.trial`) is a failure too.
- ``checkpoint``: the directory of the trial's last checkpoint, recorded in
  ``archtune:checkpoint`` when the trial is told.
- **Repeats** (``reuse=True``): a proposal whose active decisions equal those of a trial
  that this trainer (same :data:`~studies.records.ATTR_TRAINER_ID`) completed is not
  trained again. It is told COMPLETE at once with the earlier trial's value, marked
  ``archtune:repeat_of`` (that trial's number) and given its checkpoint, and the
  controller is asked again; repeats do not count towards ``num_trials``. A trained
  trial is deterministic given its configuration and the trainer's seed, so a repeat
  would only spend time; controllers still see it, as they would a retrained copy.
  PRUNED and FAIL trials are not reused (a scheduler may let a repeat go further; a
  failure may have been transient).
- **Stopped repeats** (``resume=True``): a proposal that repeats a configuration a
  scheduler stopped (PRUNED, same trainer, its checkpoint directory still there) goes on
  from that trial's last checkpoint instead of from scratch: the config sent to Ray
  carries the directory under :data:`~studies.trial.RESUME_KEY`, the new trial is marked
  ``archtune:resumed_from`` (that trial's number) and gets its intermediate values and
  checkpoint. Before training it reports the stopped trial's last epoch again
  (:data:`~studies.trial.RESUME_REPORT_KEY`; not recorded twice), so the scheduler judges
  it again where it stopped it, against the results it has now, at no cost. A
  re-proposal is then a request to promote the stopped trial, as in asynchronous
  successive halving's promotions (Li et al., "A System for Massively Parallel
  Hyperparameter Tuning", MLSys 2020), and costs only the epochs it trains beyond the
  checkpoint. The per-epoch metric rows of the epochs before it stay with the trial it
  went on from.

- **Monitors** (:mod:`studies.monitor`): TensorBoard and Prometheus, when a run asks
  for them, are told of each proposal, recorded epoch, trial end, ask and database
  write (``monitor``); they never stop a run.

- **Overhead**: where each trial's time went (propose, queue, start-up, train,
  record; :mod:`studies.overhead`), from the wall-clock times each report carries, is
  written once, in ``archtune:overhead``, when the trial is told or left interrupted.

- **Interrupted** trials: when a run stops before they end (Ctrl-C, SIGTERM, an error
  outside them), :meth:`Recorder.interrupt_open_trials` leaves them RUNNING, marked
  ``archtune:interrupted`` (the reasons, one per interruption): they are not failures and
  do not count as trained. A driver that dies leaves them RUNNING unmarked. The next
  run's recorder is given them (``adopt``) and hands them out before asking the controller
  again, each with its own configuration and, from its last checkpoint (recorded in
  ``archtune:checkpoint`` as each one is written), the epochs it has left: the same
  Optuna trial goes on, so the controller's sequence is the one an uninterrupted run had.

Threads: Ray Tune calls the public methods from its single driver loop. Every Optuna
write goes, in order, to one background :class:`~studies.writer.OrderedWriter`, off Ray
Tune's loop; ``ask`` runs its whole proposal on that writer (``OrderedWriter.call``)
after every write submitted before it, so the controller sees every earlier result
(rejections and repeats included), and Ray's loop waits for the proposal. Call
:meth:`Recorder.flush` before reading what was written, and :meth:`Recorder.close` at the
end. The state of each open trial is one :class:`OpenTrial`, keyed by Ray's trial id.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from search.base import params_key
from search.optuna_access import live_trial, set_constraints, trial_id
from spaces import SearchSpace
from spaces.optuna_adapter import suggest
from studies.costs import constraint_values, proposal_stats, records_constraints, violations
from studies.errors import InfeasibleSearch
from studies.history import ConfigKey, Done, Stopped, TrialHistory
from studies.monitor import MonitorGroup, RunMonitor, TrialEnd
from studies.objectives import Objectives
from studies.overhead import Overhead, TrialClock
from studies.records import (
    ATTR_ARCH_ID,
    ATTR_ERROR,
    ATTR_INTERRUPTED,
    ATTR_NODE,
    ATTR_OVERHEAD,
    ATTR_PROPOSED,
    ATTR_REJECTED,
    ATTR_REPEAT_OF,
    ATTR_RESTARTS,
    ATTR_RESUMED_FROM,
    ATTR_STATS,
    ATTR_TRACEBACK,
    ATTR_TRAINER_ID,
)
from studies.storage import Storage
from studies.trial import (
    ERROR_KEY,
    NODE_KEY,
    RESUME_KEY,
    RESUME_REPORT_KEY,
    TRACEBACK_KEY,
    reported_keys,
)
from studies.writer import OrderedWriter, WriterError
from trainers.base import ATTR_CHECKPOINT

TRACEBACK_LIMIT = 20_000
MAX_REJECTIONS = 1000  # proposals in a row rejected or repeated before the search stops
MAX_INFEASIBLE = 100
"""Proposals in a row that break the constraints before the run fails
(:class:`InfeasibleSearch`). Each costs the driver one model-statistics computation and
one FAIL row, and a controller that learns from constraints (TPE, NSGA-II) finds the
feasible region in tens of proposals when there is one; a random search of a space
where 5% of the configurations are feasible breaks them 100 times in a row with
probability 0.6%. 1,000 in a row wrote 1,000 FAIL trials and ended the run as if it had
succeeded. Repeats of completed trials do not count (they met the constraints)."""


Listener = Callable[[optuna.trial.FrozenTrial], None]


@dataclass
class OpenTrial:
    """What the recorder knows of one trial between its proposal and its end.

    Attributes:
        trial: The Optuna trial.
        config: The nested configuration sent to Ray.
        key: Identity of its parameters as Optuna stores them (for repeats).
        curve: ``{epoch: value}`` of the scheduled objective, kept to resume it later.
        last_step: The last epoch recorded (Ray repeats the last result at the end).
        checkpoint: Directory of its last checkpoint.
        stats: The network's statistics computed before training (constraints, costs).
        recorded: Epochs already recorded (an interrupted trial going on): not again.
        node: Where it last reported from (``"hostname (ip)"``).
        clock: Where its time went so far (:mod:`studies.overhead`).
    """

    trial: optuna.Trial
    config: dict[str, Any]
    key: ConfigKey
    curve: dict[int, float] = field(default_factory=dict)
    last_step: int | None = None
    checkpoint: str | None = None
    stats: dict[str, float] | None = None
    recorded: set[int] = field(default_factory=set)
    node: str | None = None
    clock: TrialClock = field(default_factory=TrialClock)


class Recorder:
    """Ask, report and tell on an Optuna study on behalf of Ray Tune trials.

    Args:
        study: The Optuna study, loaded with the controller as its sampler.
        storage: The open database (for archtune's metric rows).
        space: The search space; its decisions are the trial distributions.
        objectives: The study's objectives (names and directions).
        budget: Epochs of a full run of a configuration (``Trainer.epochs_for``); fewer at
            the end means PRUNED.
        num_trials: How many trials to ask for before reporting the search finished.
        on_finish: Called with each trial once it has been told.
        stats: Model statistics of a configuration (``Trainer.model_stats``); needed
            when the space has constraints.
        trainer_id: Identity of the trainer (recorded on each trial); results are
            reused only from trials of the same trainer.
        reuse: Answer repeats of completed configurations from the record (above).
        resume: Train repeats of stopped configurations on from their checkpoint (above).
        scheduled: The objective a scheduler judges epoch by epoch (its values are a
            trial's curve); default the first objective.
        adopt: Interrupted trials of the study (RUNNING, their proposal complete) to
            train again first (above).
        monitor: What watches the run (:class:`~studies.monitor.RunMonitor`); its
            hooks are called through a :class:`~studies.monitor.MonitorGroup`.
    """

    def __init__(
        self,
        study: optuna.Study,
        storage: Storage,
        space: SearchSpace,
        objectives: Objectives,
        *,
        budget: Callable[[Mapping[str, Any]], int],
        num_trials: int,
        on_finish: Listener | None = None,
        stats: Callable[[Mapping[str, Any], set[str]], Mapping[str, float]] | None = None,
        trainer_id: str | None = None,
        reuse: bool = False,
        resume: bool = False,
        scheduled: str | None = None,
        adopt: Sequence[optuna.trial.FrozenTrial] = (),
        monitor: RunMonitor | None = None,
    ) -> None:
        self.study = study
        self.storage = storage
        self.space = space
        self.objectives = objectives
        self.budget = budget
        self.num_trials = num_trials
        self.on_finish = on_finish
        self.stats = stats
        self.trainer_id = trainer_id
        self.reuse = reuse
        self.resume = resume
        self._scheduled = scheduled or objectives[0].name
        self.rejected = 0
        self.repeated = 0
        self.resumed = 0
        self.asked = 0
        self.restarted = 0  # interrupted trials handed out again
        self.interrupted = 0  # open trials this run left interrupted
        self.stopped: str | None = None  # why the search stopped early, if it did
        self.infeasible: InfeasibleSearch | None = None  # set when constraints stopped it
        self.stop_reason: str | None = None  # why the run is stopping (a signal), if it is
        self._adopt = list(adopt)
        self._open: dict[str, OpenTrial] = {}  # by Ray's trial id
        self._history = TrialHistory(
            study, storage, trainer_id, multi=objectives.multi, scheduled=self._scheduled
        )
        self._constrained: bool | None = None  # built on first use
        self.monitor = MonitorGroup.of(monitor)
        self._writer = OrderedWriter(on_write=self.monitor.wrote)

    @property
    def scheduled(self) -> str:
        """The objective a scheduler judges (its per-epoch values are the trial's curve)."""
        return self._scheduled

    # Proposals ---------------------------------------------------------------------
    def ask(self, key: str) -> dict[str, Any] | None:
        """A configuration for the Ray trial ``key``, or None once ``num_trials`` were asked.

        Proposals that break the space's constraints are recorded FAIL (with the reason
        in ``archtune:rejected``) without training, repeats of completed configurations
        are answered from the record (with ``reuse``), and the controller is asked
        again; after :data:`MAX_REJECTIONS` such proposals in a row the search stops
        (converged), after :data:`MAX_INFEASIBLE` rejections in a row it stops and
        :attr:`infeasible` says why (the run then raises it).
        With ``resume``, a repeat of a stopped configuration goes on from its checkpoint.
        """
        if self.asked >= self.num_trials:
            return None
        began = time.perf_counter()
        config = self._writer.call(self._propose, key)
        self.monitor.asked(time.perf_counter() - began)
        if config is not None:
            trial = self._open[key].trial
            self.monitor.trial_started(trial.number, trial.params)
        return config

    def _propose(self, key: str) -> dict[str, Any] | None:
        """:meth:`ask`, on the writer thread (after every earlier write)."""
        if self._adopt:
            began = time.time()
            config = self._adopted(key, self._adopt.pop(0))
            self._open[key].clock.proposed(began)
            return config
        rejected = repeated = 0  # in a row; a repeat met the constraints once
        reasons: list[str] = []
        while rejected < MAX_INFEASIBLE and rejected + repeated < MAX_REJECTIONS:
            began = time.time()
            trial = self.study.ask()
            flat = suggest(trial, self.space)
            config = self.space.unflatten(flat)
            arch_id = self.space.arch_id(config)
            config_key = params_key(trial.params)  # as stored: constants are not params
            earlier = self._history.completed().get(config_key) if self.reuse else None
            if earlier is not None:
                self._answer_from_record(trial, arch_id, earlier, began)
                repeated, rejected = repeated + rejected + 1, 0
                continue
            stats: dict[str, float] | None = None
            try:
                stats = proposal_stats(self.stats, self.space, self.objectives, config)
                reasons = violations(self.space, stats)
            except Exception as e:  # a network that cannot be built must not stop the run
                # Without constraints the statistics only inform: the proposal trains.
                reasons = [f"model statistics failed: {type(e).__name__}: {e}"]
                reasons = reasons if self.space.constraints else []
            trial.set_user_attr(ATTR_ARCH_ID, arch_id)
            if stats:
                trial.set_user_attr(ATTR_STATS, stats)
            if not reasons:
                if self.trainer_id is not None:
                    trial.set_user_attr(ATTR_TRAINER_ID, self.trainer_id)
                trial.set_user_attr(ATTR_PROPOSED, True)  # last: the proposal is whole
                state = OpenTrial(trial, config, config_key, stats=stats)
                self._open[key] = state
                self.asked += 1
                config = self._resumed(state)
                state.clock.proposed(began)
                return config
            self.rejected += 1
            rejected += 1
            trial.set_user_attr(ATTR_REJECTED, "; ".join(reasons))
            if stats:
                set_constraints(trial, constraint_values(self.space, stats))
            trial.set_user_attr(ATTR_OVERHEAD, Overhead(time.time() - began).to_json())
            self.study.tell(trial, state=TrialState.FAIL)
        self._stop_search(rejected, repeated, "; ".join(reasons))
        return None

    def _stop_search(self, rejected: int, repeated: int, last_reason: str) -> None:
        """Say why the search stops (:attr:`stopped`): the constraints broken ``rejected``
        times in a row, the last for ``last_reason`` (also :attr:`infeasible`, an error),
        or ``repeated`` earlier proposals repeated completed trials first (converged)."""
        constraints = [c.to_json() for c in self.space.constraints]
        if rejected and not repeated:
            before = (
                f"this run had started {self.asked} trial(s) before"
                if self.asked
                else "this run trained no trial"
            )
            self.stopped = (
                f"The search stopped: {rejected} proposals in a row broke the constraints "
                f"{constraints} (the last: {last_reason}), {before}; they are recorded "
                "FAIL, untrained. To go on, loosen them or narrow the space to networks "
                "that meet them."
            )
            self.infeasible = InfeasibleSearch(self.stopped)
        elif rejected:
            total = rejected + repeated
            self.stopped = (
                f"{total} proposals in a row broke the constraints {constraints} or "
                f"repeated completed trials ({rejected} broke the constraints); loosen them "
                "or narrow the space."
            )
        else:
            done = len(self._history.completed())
            self.stopped = (
                f"The controller proposed {repeated} completed configurations in a row "
                f"({done} distinct ones are done): the search has converged "
                "or the space is used up. Widen the space or pick another controller; pass "
                "reuse_finished=False to train repeats anyway (e.g. to average noise)."
            )

    def _adopted(self, key: str, frozen: optuna.trial.FrozenTrial) -> dict[str, Any]:
        """An interrupted trial, going on: its configuration (with the checkpoint to go on
        from, when the driver can read it)."""
        trial = live_trial(self.study, trial_id(frozen))
        config = self.space.unflatten(suggest(trial, self.space))  # the values it has
        state = OpenTrial(trial, config, params_key(trial.params))
        state.stats = frozen.user_attrs.get(ATTR_STATS)
        # What its interrupted runs took: this run adds its own to it.
        state.clock.earlier = Overhead.recorded(frozen.user_attrs.get(ATTR_OVERHEAD))
        state.curve = self._history.curves([frozen])[frozen.number]
        state.recorded = set(state.curve)
        checkpoint = frozen.user_attrs.get(ATTR_CHECKPOINT)
        self._open[key] = state
        self.asked += 1
        self.restarted += 1
        if checkpoint is None or not os.path.isdir(checkpoint) or not state.curve:
            return config  # from scratch: no checkpoint, or one this driver cannot read
        state.checkpoint = checkpoint
        # It first reports its last epoch again (a trial checkpointed at its last epoch
        # then ends at once, with that result), so a scheduler judges it there.
        last = max(state.curve)
        state.last_step = last
        again = self._history.report_at(frozen, last, state.curve[last])
        return {**config, RESUME_KEY: checkpoint, RESUME_REPORT_KEY: again}

    def _resumed(self, state: OpenTrial) -> dict[str, Any]:
        """The config for Ray: with the checkpoint of the stopped trial it repeats (resume)."""
        stopped = self._history.stopped().get(state.key) if self.resume else None
        if stopped is None or not stopped.curve or not os.path.isdir(stopped.checkpoint):
            return state.config  # e.g. a checkpoint this driver cannot see: from scratch
        self.resumed += 1
        state.trial.set_user_attr(ATTR_RESUMED_FROM, stopped.number)
        # Known now, so an interruption before its own first checkpoint goes on from it.
        state.trial.set_user_attr(ATTR_CHECKPOINT, stopped.checkpoint)
        if not self.objectives.multi:  # Optuna keeps no curves for several objectives
            for step, value in sorted(stopped.curve.items()):
                state.trial.report(value, step)
        state.curve = dict(stopped.curve)
        state.checkpoint = stopped.checkpoint
        last = max(stopped.curve)
        state.last_step = last  # its report of that epoch again is not a new one
        again = {"epoch": last, self.scheduled: stopped.curve[last]}
        return {**state.config, RESUME_KEY: stopped.checkpoint, RESUME_REPORT_KEY: again}

    def _answer_from_record(
        self, trial: optuna.Trial, arch_id: str, earlier: Done, began: float
    ) -> None:
        """Tell a repeated proposal (asked at ``began``) COMPLETE with the result of the
        trial it repeats."""
        self.repeated += 1
        attrs: dict[str, Any] = {ATTR_ARCH_ID: arch_id, ATTR_REPEAT_OF: earlier.number}
        attrs[ATTR_OVERHEAD] = Overhead(time.time() - began).to_json()
        if self.trainer_id is not None:
            attrs[ATTR_TRAINER_ID] = self.trainer_id
        if earlier.checkpoint is not None:
            attrs[ATTR_CHECKPOINT] = earlier.checkpoint
        for name, value in attrs.items():
            trial.set_user_attr(name, value)
        if earlier.constraints:  # samplers expect every finished trial to carry them
            set_constraints(trial, earlier.constraints)
        self.study.tell(trial, values=earlier.values)

    def _records_constraints(self) -> bool:
        """:func:`studies.costs.records_constraints`, read from the study once."""
        if self._constrained is None:
            self._constrained = records_constraints(self.study, self.space)
        return self._constrained

    # Results -----------------------------------------------------------------------
    def result(self, key: str, result: Mapping[str, Any]) -> None:
        """Record one reported epoch of trial ``key``."""
        state = self._open.get(key)
        if state is None:
            return
        state.clock.seen(result, error=ERROR_KEY in result)
        if ERROR_KEY in result:
            self.fail(key, str(result[ERROR_KEY]), traceback=result.get(TRACEBACK_KEY))
            return
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        if state.last_step == step:
            return  # Ray repeats the last result when the trial completes.
        state.last_step = step
        node = node_of(result)
        if node is not None and node != state.node:  # its first report, or a move
            state.node = node
            self._writer.submit(state.trial.set_user_attr, ATTR_NODE, node)
        if step in state.recorded:
            return  # recorded before an interruption, trained again from scratch
        metrics = {k: v for k, v in result.items() if k in reported_keys(result)}
        value = result.get(self.scheduled)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            value = None
        elif self.resume:
            state.curve[step] = float(value)
        # Two writes of one transaction each, so a busy database can retry either alone.
        self._writer.submit(self.storage.add_metrics, trial_id(state.trial), step, metrics)
        self.monitor.epoch(state.trial.number, step, metrics)
        if value is not None and not self.objectives.multi:  # Optuna: one objective only
            self._writer.submit(state.trial.report, float(value), step)

    def complete(self, key: str, result: Mapping[str, Any] | None) -> None:
        """Trial ``key`` ended without an error, with ``result`` its last report.

        A trial that trained its full budget must have reported every objective (costs
        such as ``params`` come with the last epoch); one a scheduler stopped earlier is
        PRUNED and needs only the objective the scheduler judged.
        """
        state = self._open.get(key)
        if state is None:
            return
        result = result or {}
        state.clock.seen(result, final=True)
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        full = step >= self.budget(state.config)
        needed = list(self.objectives.names) if full else [self.scheduled]
        missing = [n for n in needed if n not in result]
        if missing:
            reported = sorted(reported_keys(result))
            self.fail(
                key,
                f"The trial reported no {missing[0]!r}; it reported {reported}. "
                "Make the trainer report the study's objective.",
            )
            return
        self.result(key, result)
        for name in needed:
            value = result[name]
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                self.fail(key, f"The objective {name!r} was {value!r} at epoch {step}.")
                return
        if not full:
            self._tell(key, state=TrialState.PRUNED, final=result)
        else:
            values = [float(result[n]) for n in self.objectives.names]
            self._tell(key, values=values, state=TrialState.COMPLETE, final=result)

    def checkpoint(self, key: str, path: str) -> None:
        """Trial ``key`` saved a checkpoint in directory ``path`` (the last one is kept,
        and recorded at once: an interrupted trial goes on from it)."""
        state = self._open.get(key)
        if state is not None:
            state.checkpoint = path
            self._writer.submit(state.trial.set_user_attr, ATTR_CHECKPOINT, path)

    def restart(self, key: str, error: str) -> None:
        """Ray restarts trial ``key`` (from its last checkpoint) after its worker failed
        with ``error``: appended to ``archtune:restarts`` with where it ran and how far."""
        state = self._open.get(key)
        if state is not None:
            state.clock.restarted()
            entry = {"error": error, "node": state.node, "epoch": state.last_step}
            self._writer.submit(self._write_restart, state.trial, entry)

    @staticmethod
    def _write_restart(trial: optuna.Trial, entry: dict[str, Any]) -> None:
        trial.set_user_attr(ATTR_RESTARTS, [*(trial.user_attrs.get(ATTR_RESTARTS) or []), entry])

    def fail(self, key: str, error: str, traceback: str | None = None) -> None:
        """Trial ``key`` failed: keep the reason, then tell FAIL."""
        if key not in self._open:
            return
        attrs = {ATTR_ERROR: error}
        if traceback:
            attrs[ATTR_TRACEBACK] = traceback[-TRACEBACK_LIMIT:]
        self._tell(key, state=TrialState.FAIL, attrs=attrs)

    def fail_open_trials(self, error: str) -> None:
        """Tell FAIL for every trial still open."""
        for key in list(self._open):
            self.fail(key, error)

    def interrupt_open_trials(self, reason: str | None = None) -> int:
        """Leave every trial still open RUNNING, marked interrupted (``reason``, else
        :attr:`stop_reason`), for the next run to train again; return how many there were.

        Waits for pending writes first (a proposal may still be running on the writer).
        """
        with contextlib.suppress(WriterError):
            self._writer.flush()
        reason = reason or self.stop_reason or "The run stopped before this trial finished."
        opened = list(self._open.items())
        write = not self._writer.failed  # else they stay RUNNING unmarked, as after a crash
        for _key, state in opened:
            overhead = state.clock.overhead()
            if write:
                self._writer.submit(
                    self._write_interrupted, state.trial, reason, overhead.to_json()
                )
            self.monitor.trial_finished(
                TrialEnd(state.trial.number, "INTERRUPTED", overhead=overhead)
            )
        self._open.clear()
        self.interrupted += len(opened)
        return len(opened)

    @staticmethod
    def _write_interrupted(trial: optuna.Trial, reason: str, overhead: dict[str, float]) -> None:
        earlier = trial.user_attrs.get(ATTR_INTERRUPTED) or []
        if earlier[-1:] != [reason]:  # written once, even when tried again
            trial.set_user_attr(ATTR_INTERRUPTED, [*earlier, reason])
        trial.set_user_attr(ATTR_OVERHEAD, overhead)  # the next run adds its own to it

    @property
    def write_error(self) -> BaseException | None:
        """Why a database write failed (the run must stop), or None."""
        return self._writer.error

    def flush(self) -> None:
        """Wait until every recorded event is in the database."""
        self._writer.flush()

    def close(self) -> None:
        """Write what is pending and stop the background writer."""
        self._writer.close()

    def _tell(
        self,
        key: str,
        state: TrialState,
        values: list[float] | None = None,
        attrs: dict[str, str] | None = None,
        final: Mapping[str, Any] | None = None,
    ) -> None:
        trial = self._open.pop(key)
        attrs = dict(attrs or {})
        constraints = {}
        if self._records_constraints() and state != TrialState.FAIL:
            constraints = constraint_values(self.space, final, trial.stats)
        if trial.checkpoint is not None:
            attrs[ATTR_CHECKPOINT] = trial.checkpoint
        if self.resume and state == TrialState.PRUNED and trial.checkpoint is not None:
            self._history.stopped()[trial.key] = Stopped(
                trial.trial.number, trial.curve, trial.checkpoint
            )
        if self.reuse and state == TrialState.COMPLETE and values is not None:
            # Known at once, so a repeat asked before the write lands is still answered.
            done = Done(trial.trial.number, values, trial.checkpoint, constraints)
            self._history.completed().setdefault(trial.key, done)
        self._writer.submit(
            self._write_tell, trial.trial, state, values, attrs, constraints, trial.clock
        )

    def _write_tell(
        self,
        trial: optuna.Trial,
        state: TrialState,
        values: list[float] | None,
        attrs: dict[str, str],
        constraints: dict[str, float],
        clock: TrialClock,
    ) -> None:
        for name, text in attrs.items():
            trial.set_user_attr(name, text)
        # Measured now, once every earlier write of the trial landed: its record lag.
        overhead = clock.overhead()
        trial.set_user_attr(ATTR_OVERHEAD, overhead.to_json())
        if constraints:
            set_constraints(trial, constraints)
        frozen = self.study.tell(trial, values=values, state=state, skip_if_finished=True)
        self.monitor.trial_finished(TrialEnd.told(frozen, overhead))
        if self.on_finish is not None:
            self.on_finish(frozen)


def node_of(result: Mapping[str, Any]) -> str | None:
    """Where a Ray result came from, ``"hostname (ip)"``, from the keys Ray adds to it,
    with the start of the Ray node id when the trial reported it (several Ray nodes may
    share a host).

    Example:
        >>> node_of({"hostname": "gpu-3", "node_ip": "10.0.0.7", "val_acc": 0.9})
        'gpu-3 (10.0.0.7)'
        >>> node_of({"hostname": "gpu-3", "node_ip": "10.0.0.7", "archtune_node": "9f3ab2c4d5e6"})
        'gpu-3 (10.0.0.7, node 9f3ab2c4)'
    """
    host, ip = result.get("hostname"), result.get("node_ip")
    node = result.get(NODE_KEY)
    parts = [p for p in (ip, f"node {node[:8]}" if isinstance(node, str) else None) if p]
    if not host:
        return ", ".join(parts) or None
    return f"{host} ({', '.join(parts)})" if parts else str(host)
