"""What a study already holds that a new proposal may reuse: completed trials (a repeat
is answered from the record) and stopped ones (a repeat goes on from the checkpoint).

Both are read from the study once, on first use, then kept up to date by the
:class:`~studies.recorder.Recorder` as it tells trials, so a repeat asked before a write
lands is still recognised. Trials are keyed by their parameters as Optuna stores them
(:func:`search.base.params_key`), and only those of the same trainer count.

Example:
    >>> Done(number=3, values=[0.9], checkpoint=None).values
    [0.9]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from search.base import params_key
from search.optuna_access import constraints_of, trial_id
from studies.records import ATTR_REPEAT_OF, ATTR_RESUMED_FROM, ATTR_TRAINER_ID
from studies.storage import Storage
from trainers.base import ATTR_CHECKPOINT

ConfigKey = frozenset[Any]


@dataclass(frozen=True)
class Done:
    """A completed trial a repeat can be answered from: its values, checkpoint and
    constraint values (copied onto the repeat)."""

    number: int
    values: list[float]
    checkpoint: str | None
    constraints: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Stopped:
    """A stopped trial a repeat can go on from: its curve of the scheduled objective
    (``{epoch: value}``) and its last checkpoint directory."""

    number: int
    curve: dict[int, float]
    checkpoint: str


class TrialHistory:
    """The completed and stopped trials of one trainer in a study, by configuration.

    Args:
        study: The Optuna study.
        storage: The database (archtune's metric rows hold the curves of a
            multi-objective study, of which Optuna keeps none).
        trainer_id: Only trials of this trainer are reused.
        multi: Whether the study has several objectives.
        scheduled: The objective whose per-epoch values are a trial's curve.
    """

    def __init__(
        self,
        study: optuna.Study,
        storage: Storage,
        trainer_id: str | None,
        *,
        multi: bool,
        scheduled: str,
    ) -> None:
        self.study, self.storage, self.trainer_id = study, storage, trainer_id
        self.multi, self.scheduled = multi, scheduled
        self._done: dict[ConfigKey, Done] | None = None
        self._stopped: dict[ConfigKey, Stopped] | None = None

    def completed(self) -> dict[ConfigKey, Done]:
        """Completed trials (not repeats themselves), the first of each configuration."""
        if self._done is None:
            self._done = {}
            for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
                attrs = t.user_attrs
                if attrs.get(ATTR_TRAINER_ID) != self.trainer_id or ATTR_REPEAT_OF in attrs:
                    continue
                done = Done(
                    t.number, list(t.values), attrs.get(ATTR_CHECKPOINT), constraints_of(t)
                )
                self._done.setdefault(params_key(t.params), done)
        return self._done

    def stopped(self) -> dict[ConfigKey, Stopped]:
        """Stopped trials with a checkpoint; of several, the latest (it went furthest)."""
        if self._stopped is None:
            self._stopped = {}
            found = [
                t
                for t in self.study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
                if t.user_attrs.get(ATTR_CHECKPOINT)
                and t.user_attrs.get(ATTR_TRAINER_ID) == self.trainer_id
            ]
            curves = self.curves(found)
            for t in found:
                stopped = Stopped(t.number, curves[t.number], t.user_attrs[ATTR_CHECKPOINT])
                self._stopped[params_key(t.params)] = stopped
        return self._stopped

    def curves(self, trials: list[optuna.trial.FrozenTrial]) -> dict[int, dict[int, float]]:
        """``{number: {epoch: value}}`` of the scheduled objective: Optuna's intermediate
        values, or (several objectives, which Optuna keeps none of) archtune's metric rows;
        a trial that went on from a stopped one owns only the rows of the epochs it
        trained, so the stopped one's curve comes first."""
        if not self.multi:
            return {t.number: dict(t.intermediate_values) for t in trials}
        rows = self.storage.metrics([trial_id(t) for t in trials])
        curves: dict[int, dict[int, float]] = {}
        for t in sorted(trials, key=lambda t: t.number):  # a source before what resumed it
            inherited = curves.get(t.user_attrs.get(ATTR_RESUMED_FROM, -1), {})
            curves[t.number] = {**inherited, **dict(rows[trial_id(t)].get(self.scheduled, []))}
        return curves

    def report_at(
        self, trial: optuna.trial.FrozenTrial, step: int, value: float
    ) -> dict[str, float]:
        """What ``trial`` reported at epoch ``step`` as archtune recorded it (every metric,
        costs too), with ``value`` for the scheduled objective (its curve may be another
        trial's, inherited when it went on from a stopped one)."""
        rows = self.storage.metrics([trial_id(trial)])[trial_id(trial)]
        report = {name: v for name, series in rows.items() for at, v in series if at == step}
        return {**report, "epoch": step, self.scheduled: value}
