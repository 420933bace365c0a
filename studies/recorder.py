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

Not thread-safe: Ray Tune calls searchers and callbacks from its single driver loop.
``ask`` writes at once (the controller needs the history); the per-epoch and
end-of-trial writes go, in order, to a background :class:`~studies.writer.OrderedWriter`,
off Ray Tune's loop: call :meth:`Recorder.flush` before reading them, and
:meth:`Recorder.close` at the end.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import optuna
from optuna.trial import TrialState

from search.base import params_key
from spaces import SearchSpace
from spaces.optuna_adapter import suggest
from studies.records import (
    ATTR_ARCH_ID,
    ATTR_ERROR,
    ATTR_REJECTED,
    ATTR_REPEAT_OF,
    ATTR_RESUMED_FROM,
    ATTR_TRACEBACK,
    ATTR_TRAINER_ID,
)
from studies.storage import Storage
from studies.trial import ERROR_KEY, RESUME_KEY, RESUME_REPORT_KEY, TRACEBACK_KEY
from studies.writer import OrderedWriter
from trainers.base import ATTR_CHECKPOINT

TRACEBACK_LIMIT = 20_000
MAX_REJECTIONS = 1000  # proposals in a row rejected or repeated before the search stops

Listener = Callable[[optuna.trial.FrozenTrial], None]


class Recorder:
    """Ask, report and tell on an Optuna study on behalf of Ray Tune trials.

    Args:
        study: The Optuna study, loaded with the controller as its sampler.
        storage: The open database (for archtune's metric rows).
        space: The search space; its decisions are the trial distributions.
        objective: Name of the reported metric to optimise.
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
    """

    def __init__(
        self,
        study: optuna.Study,
        storage: Storage,
        space: SearchSpace,
        objective: str,
        budget: Callable[[Mapping[str, Any]], int],
        num_trials: int,
        on_finish: Listener | None = None,
        stats: Callable[[Mapping[str, Any], set[str]], Mapping[str, float]] | None = None,
        trainer_id: str | None = None,
        reuse: bool = False,
        resume: bool = False,
    ) -> None:
        self.study = study
        self.storage = storage
        self.space = space
        self.objective = objective
        self.budget = budget
        self.num_trials = num_trials
        self.on_finish = on_finish
        self.stats = stats
        self.trainer_id = trainer_id
        self.reuse = reuse
        self.resume = resume
        self.rejected = 0
        self.repeated = 0
        self.resumed = 0
        # {config key: (number, values, checkpoint)} of completed trials, built on first use.
        self._done: dict[frozenset[Any], tuple[int, list[float], str | None]] | None = None
        # {config key: (number, intermediate values, checkpoint)} of stopped ones (resume).
        self._pruned: dict[frozenset[Any], tuple[int, dict[int, float], str]] | None = None
        self._curves: dict[str, dict[int, float]] = {}  # intermediate values of open trials
        self._keys: dict[str, frozenset[Any]] = {}
        self._open: dict[str, optuna.Trial] = {}
        self._configs: dict[str, dict[str, Any]] = {}
        self._last_step: dict[str, int] = {}
        self._checkpoints: dict[str, str] = {}
        self.asked = 0
        self.stopped: str | None = None  # why the search stopped early, if it did
        self._writer = OrderedWriter()

    def ask(self, key: str) -> dict[str, Any] | None:
        """A configuration for the Ray trial ``key``, or None once ``num_trials`` were asked.

        Proposals that break the space's constraints are recorded FAIL (with the reason
        in ``archtune:rejected``) without training, repeats of completed configurations
        are answered from the record (with ``reuse``), and the controller is asked
        again; after :data:`MAX_REJECTIONS` such proposals in a row the search stops.
        With ``resume``, a repeat of a stopped configuration goes on from its checkpoint.
        """
        if self.asked >= self.num_trials:
            return None
        rejected = 0
        for _ in range(MAX_REJECTIONS):
            trial = self.study.ask()
            flat = suggest(trial, self.space)
            config = self.space.unflatten(flat)
            arch_id = self.space.arch_id(config)
            config_key = params_key(trial.params)  # as stored: constants are not params
            earlier = self._completed().get(config_key) if self.reuse else None
            if earlier is not None:
                self._answer_from_record(trial, arch_id, earlier)
                continue
            try:
                reasons = self._violations(config)
            except Exception as e:  # a network that cannot be built must not stop the run
                reasons = [f"model statistics failed: {type(e).__name__}: {e}"]
            if not reasons:
                self._writer.submit(trial.set_user_attr, ATTR_ARCH_ID, arch_id)
                if self.trainer_id is not None:
                    self._writer.submit(trial.set_user_attr, ATTR_TRAINER_ID, self.trainer_id)
                self._open[key] = trial
                self._configs[key] = config
                self._keys[key] = config_key
                self._curves[key] = {}
                self.asked += 1
                return self._resumed(key, trial, config, config_key)
            self.rejected += 1
            rejected += 1
            trial.set_user_attr(ATTR_ARCH_ID, arch_id)
            trial.set_user_attr(ATTR_REJECTED, "; ".join(reasons))
            self.study.tell(trial, state=TrialState.FAIL)
        if rejected:
            self.stopped = (
                f"{MAX_REJECTIONS} proposals in a row broke the constraints "
                f"{[c.to_json() for c in self.space.constraints]} or repeated completed "
                f"trials ({rejected} broke the constraints); loosen them or narrow the space."
            )
        else:
            self.stopped = (
                f"The controller proposed {MAX_REJECTIONS} completed configurations in a row "
                f"({len(self._completed())} distinct ones are done): the search has converged "
                "or the space is used up. Widen the space or pick another controller; pass "
                "reuse_finished=False to train repeats anyway (e.g. to average noise)."
            )
        return None

    def _completed(self) -> dict[frozenset[Any], tuple[int, list[float], str | None]]:
        """Completed trials of this trainer by configuration (read from the study once)."""
        if self._done is None:
            self._done = {}
            for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
                attrs = t.user_attrs
                if attrs.get(ATTR_TRAINER_ID) != self.trainer_id or ATTR_REPEAT_OF in attrs:
                    continue
                entry = (t.number, list(t.values), attrs.get(ATTR_CHECKPOINT))
                self._done.setdefault(params_key(t.params), entry)
        return self._done

    def _stopped(self) -> dict[frozenset[Any], tuple[int, dict[int, float], str]]:
        """Stopped trials of this trainer with a checkpoint, by configuration (read from
        the study once); of several, the latest (it went furthest)."""
        if self._pruned is None:
            self._pruned = {}
            for t in self.study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)):
                path = t.user_attrs.get(ATTR_CHECKPOINT)
                if path and t.user_attrs.get(ATTR_TRAINER_ID) == self.trainer_id:
                    entry = (t.number, dict(t.intermediate_values), path)
                    self._pruned[params_key(t.params)] = entry
        return self._pruned

    def _resumed(
        self, key: str, trial: optuna.Trial, config: dict[str, Any], config_key: frozenset[Any]
    ) -> dict[str, Any]:
        """``config`` for Ray: with the checkpoint of the stopped trial it repeats (resume)."""
        stopped = self._stopped().get(config_key) if self.resume else None
        if stopped is None or not stopped[1] or not os.path.isdir(stopped[2]):
            return config  # e.g. a checkpoint on storage this driver cannot see: from scratch
        number, curve, path = stopped
        self.resumed += 1
        self._writer.submit(trial.set_user_attr, ATTR_RESUMED_FROM, number)
        for step, value in sorted(curve.items()):
            self._writer.submit(trial.report, value, step)
        self._curves[key] = dict(curve)
        self._checkpoints[key] = path
        last = max(curve)
        self._last_step[key] = last  # its report of that epoch again is not a new one
        again = {"epoch": last, self.objective: curve[last]}
        return {**config, RESUME_KEY: path, RESUME_REPORT_KEY: again}

    def _answer_from_record(
        self, trial: optuna.Trial, arch_id: str, earlier: tuple[int, list[float], str | None]
    ) -> None:
        """Tell a repeated proposal COMPLETE with the result of the trial it repeats."""
        number, values, checkpoint = earlier
        self.repeated += 1
        attrs: dict[str, Any] = {ATTR_ARCH_ID: arch_id, ATTR_REPEAT_OF: number}
        if self.trainer_id is not None:
            attrs[ATTR_TRAINER_ID] = self.trainer_id
        if checkpoint is not None:
            attrs[ATTR_CHECKPOINT] = checkpoint
        for name, value in attrs.items():
            trial.set_user_attr(name, value)
        self.study.tell(trial, values=values)

    def _violations(self, config: Mapping[str, Any]) -> list[str]:
        if not self.space.constraints:
            return []
        if self.stats is None:
            raise ValueError("The space has constraints but no model statistics were given.")
        stats = self.stats(config, {c.metric for c in self.space.constraints})
        return [v for c in self.space.constraints if (v := c.violation(stats)) is not None]

    def result(self, key: str, result: Mapping[str, Any]) -> None:
        """Record one reported epoch of trial ``key``."""
        trial = self._open.get(key)
        if trial is None:
            return
        if ERROR_KEY in result:
            self.fail(key, str(result[ERROR_KEY]), traceback=result.get(TRACEBACK_KEY))
            return
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        if self._last_step.get(key) == step:
            return  # Ray repeats the last result when the trial completes.
        self._last_step[key] = step
        metrics = {k: v for k, v in result.items() if k in self._reported_keys(result)}
        value = result.get(self.objective)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            value = None
        elif self.resume:
            self._curves[key][step] = float(value)
        self._writer.submit(self._write_epoch, trial, step, metrics, value)

    def _write_epoch(
        self, trial: optuna.Trial, step: int, metrics: dict[str, Any], value: float | None
    ) -> None:
        self.storage.add_metrics(trial._trial_id, step, metrics)
        if value is not None:
            trial.report(float(value), step)

    def complete(self, key: str, result: Mapping[str, Any] | None) -> None:
        """Trial ``key`` ended without an error, with ``result`` its last report."""
        trial = self._open.get(key)
        if trial is None:
            return
        if not result or self.objective not in result:
            reported = sorted(self._reported_keys(result or {}))
            self.fail(
                key,
                f"The trial reported no {self.objective!r}; it reported {reported}. "
                "Make the trainer report the study's objective.",
            )
            return
        self.result(key, result)
        value = result[self.objective]
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(key, f"The objective {self.objective!r} was {value!r} at epoch {step}.")
        elif step < self.budget(self._configs[key]):
            self._tell(key, state=TrialState.PRUNED)
        else:
            self._tell(key, values=float(value), state=TrialState.COMPLETE)

    def checkpoint(self, key: str, path: str) -> None:
        """Trial ``key`` saved a checkpoint in directory ``path`` (the last one is kept)."""
        if key in self._open:
            self._checkpoints[key] = path

    def fail(self, key: str, error: str, traceback: str | None = None) -> None:
        """Trial ``key`` failed: keep the reason, then tell FAIL."""
        if key not in self._open:
            return
        attrs = {ATTR_ERROR: error}
        if traceback:
            attrs[ATTR_TRACEBACK] = traceback[-TRACEBACK_LIMIT:]
        self._tell(key, state=TrialState.FAIL, attrs=attrs)

    def fail_open_trials(self, error: str) -> None:
        """Tell FAIL for every trial still open, e.g. when the run is interrupted."""
        for key in list(self._open):
            self.fail(key, error)

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
        values: float | None = None,
        attrs: dict[str, str] | None = None,
    ) -> None:
        trial = self._open.pop(key)
        self._last_step.pop(key, None)
        self._configs.pop(key, None)
        config_key = self._keys.pop(key, None)
        curve = self._curves.pop(key, {})
        attrs = dict(attrs or {})
        if key in self._checkpoints:
            attrs[ATTR_CHECKPOINT] = self._checkpoints.pop(key)
        if self.resume and state == TrialState.PRUNED and config_key and ATTR_CHECKPOINT in attrs:
            self._stopped()[config_key] = (trial.number, curve, attrs[ATTR_CHECKPOINT])
        if self.reuse and state == TrialState.COMPLETE and config_key and values is not None:
            # Known at once, so a repeat asked before the write lands is still answered.
            entry = (trial.number, [values], attrs.get(ATTR_CHECKPOINT))
            self._completed().setdefault(config_key, entry)
        self._writer.submit(self._write_tell, trial, state, values, attrs)

    def _write_tell(
        self, trial: optuna.Trial, state: TrialState, values: float | None, attrs: dict[str, str]
    ) -> None:
        for name, text in attrs.items():
            trial.set_user_attr(name, text)
        frozen = self.study.tell(trial, values=values, state=state, skip_if_finished=True)
        if self.on_finish is not None:
            self.on_finish(frozen)

    @staticmethod
    def _reported_keys(result: Mapping[str, Any]) -> set[str]:
        # Ray adds its own bookkeeping (time_total_s, pid, ...); keep what the trainer sent.
        keys = result.get("archtune_keys")
        if isinstance(keys, (list, tuple)):
            return set(keys)
        return {k for k in result if k not in _RAY_KEYS}


_RAY_KEYS = {
    "done",
    "training_iteration",
    "trial_id",
    "date",
    "timestamp",
    "time_this_iter_s",
    "time_total_s",
    "pid",
    "hostname",
    "node_ip",
    "time_since_restore",
    "iterations_since_restore",
    "checkpoint_dir_name",
    "should_checkpoint",
    "config",
    "experiment_tag",
    "archtune_keys",
}
