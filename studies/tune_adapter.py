"""The adapter between archtune and Ray Tune.

Ray Tune runs the trials (placement, resources, schedulers, retries, checkpoints); the
driver-side :class:`~studies.recorder.Recorder` records them. Three small pieces connect
the two:

- :class:`RecorderSearcher`, a Ray ``Searcher`` whose ``suggest`` asks the Optuna study
  (with the controller as sampler) and whose result/complete events go to the recorder.
  Ray's ready-made ``OptunaSearch`` is not used: it tells COMPLETE for trials a scheduler
  stopped early (so samplers learn from low-fidelity values as if final) and drops
  intermediate values.
- :class:`RecorderCallback`, a Ray ``Callback`` that records failures with their
  traceback (Ray tells the searcher only ``error=True``), Ray's restarts of a trial whose
  worker died, each trial's last checkpoint directory, and leaves what is still open
  when the run ends interrupted.
- :func:`studies.trial.make_trainable`, the Ray function trainable that runs an archtune
  :class:`~trainers.Trainer` on the workers (kept apart: it must import little).
"""

from __future__ import annotations

import os
import re
from typing import Any

from ray import tune
from ray.tune.search import Searcher

from studies.recorder import Recorder

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _DriverOnly:
    """Mixin for adapters that hold the driver's database handle.

    Ray pickles its Tuner state (search algorithm and callbacks included) for its own
    restore; archtune resumes from the study database instead, so the recorder, which
    holds open connections, is left out of the pickle.
    """

    recorder: Recorder | None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["recorder"] = None
        return state


class RecorderSearcher(_DriverOnly, Searcher):
    """Ray Tune searcher that proposes through, and records into, a :class:`Recorder`."""

    def __init__(self, recorder: Recorder, metric: str, mode: str) -> None:
        super().__init__(metric=metric, mode=mode)
        self.recorder = recorder

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        config = self.recorder.ask(trial_id)
        return Searcher.FINISHED if config is None else config

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self.recorder.result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        if not error:  # failures are recorded by RecorderCallback, which has the traceback
            self.recorder.complete(trial_id, result)


class RecorderCallback(_DriverOnly, tune.Callback):
    """Records trial failures with their traceback, each trial's checkpoints, and what is
    still open at the end (as interrupted)."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        text = _error_text(trial)
        self.recorder.fail(trial.trial_id, error_summary(text), traceback=text or None)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # Its worker died (a node lost, an actor killed); Ray runs it again from its
        # last checkpoint, within FailureConfig(max_failures).
        self.recorder.restart(trial.trial_id, error_summary(_error_text(trial)))

    def on_checkpoint(
        self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any
    ) -> None:
        self.recorder.checkpoint(trial.trial_id, checkpoint.path)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        # Trials Ray stopped unfinished (a signal, an error): not failures, they go on
        # from their checkpoint at the next run.
        self.recorder.interrupt_open_trials()


def _error_text(trial: Any) -> str:
    """The traceback Ray kept of a trial's latest error ("" when it kept none)."""
    path = getattr(trial, "error_file", None)
    if not path or not os.path.exists(path):
        return ""
    with open(path, encoding="utf-8", errors="replace") as f:
        return _ANSI.sub("", f.read())


def error_summary(text: str) -> str:
    """The last line of a traceback that names an exception, e.g. ``ValueError: bad lr``."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head.replace(".", "").replace("_", "").isalnum() and head[:1].isupper() and ":" in line:
            return line[:500]
    return lines[-1][:500] if lines else "The trial failed without an error message."
