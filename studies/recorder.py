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

Not thread-safe: Ray Tune calls searchers and callbacks from its single driver loop.
``ask`` writes at once (the controller needs the history); the per-epoch and
end-of-trial writes go, in order, to a background :class:`~studies.writer.OrderedWriter`,
off Ray Tune's loop: call :meth:`Recorder.flush` before reading them, and
:meth:`Recorder.close` at the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import optuna
from optuna.trial import TrialState

from spaces import SearchSpace
from spaces.optuna_adapter import suggest
from studies.records import ATTR_ARCH_ID, ATTR_ERROR, ATTR_REJECTED, ATTR_TRACEBACK
from studies.storage import Storage
from studies.trial import ERROR_KEY, TRACEBACK_KEY
from studies.writer import OrderedWriter
from trainers.base import ATTR_CHECKPOINT

TRACEBACK_LIMIT = 20_000
MAX_REJECTIONS = 1000

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
    ) -> None:
        self.study = study
        self.storage = storage
        self.space = space
        self.objective = objective
        self.budget = budget
        self.num_trials = num_trials
        self.on_finish = on_finish
        self.stats = stats
        self.rejected = 0
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
        in ``archtune:rejected``) without training, and the controller is asked again;
        after :data:`MAX_REJECTIONS` in a row the search stops.
        """
        if self.asked >= self.num_trials:
            return None
        for _ in range(MAX_REJECTIONS):
            trial = self.study.ask()
            config = self.space.unflatten(suggest(trial, self.space))
            arch_id = self.space.arch_id(config)
            try:
                reasons = self._violations(config)
            except Exception as e:  # a network that cannot be built must not stop the run
                reasons = [f"model statistics failed: {type(e).__name__}: {e}"]
            if not reasons:
                self._writer.submit(trial.set_user_attr, ATTR_ARCH_ID, arch_id)
                self._open[key] = trial
                self._configs[key] = config
                self.asked += 1
                return config
            self.rejected += 1
            trial.set_user_attr(ATTR_ARCH_ID, arch_id)
            trial.set_user_attr(ATTR_REJECTED, "; ".join(reasons))
            self.study.tell(trial, state=TrialState.FAIL)
        self.stopped = (
            f"{MAX_REJECTIONS} proposals in a row broke the constraints "
            f"{[c.to_json() for c in self.space.constraints]}; loosen them or narrow the space."
        )
        return None

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
        attrs = dict(attrs or {})
        if key in self._checkpoints:
            attrs[ATTR_CHECKPOINT] = self._checkpoints.pop(key)
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
