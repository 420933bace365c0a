"""Read-only snapshots of a recorded study, for the CLI, the report and the dashboard.

Everything a view shows comes from :func:`load_study_record`: plain dataclasses, so
figure functions are pure and testable without a database or a browser.

Example:
    >>> trial = TrialRecord(number=0, state="COMPLETE", params={"x": 1}, value=0.9,
    ...                     intermediate={1: 0.5, 2: 0.9})
    >>> trial.finished
    True
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import optuna

from studies.lease import live_drivers
from studies.objectives import Objectives
from studies.storage import Storage

# Keys of archtune's entries in Optuna's study and trial user attributes.
ATTR_SPACE = "archtune:space"
ATTR_OBJECTIVE = "archtune:objective"
ATTR_TRAINER = "archtune:trainer"
ATTR_RUN = "archtune:run"
ATTR_ERROR = "archtune:error"
ATTR_TRACEBACK = "archtune:traceback"
ATTR_ARCH_ID = "archtune:arch_id"
ATTR_REJECTED = "archtune:rejected"
ATTR_REPEAT_OF = "archtune:repeat_of"  # number of the trial whose result a repeat reuses
ATTR_TRAINER_ID = "archtune:trainer_id"  # which trainer produced a trial's result
ATTR_RESUMED_FROM = "archtune:resumed_from"  # number of the stopped trial a trial went on from
ATTR_STATS = "archtune:stats"  # the network's params, FLOPs, ... computed before training
ATTR_INTERRUPTED = "archtune:interrupted"  # why a RUNNING trial's run stopped (a list)
ATTR_PROPOSED = "archtune:proposed"  # written last: the proposal is whole (it may go on)
ATTR_CUT_OFF = "archtune:cut_off"  # FAIL: interrupted and could not go on (not charged)
ATTR_NODE = "archtune:node"  # where the trial last reported from: "hostname (ip)"
ATTR_RESTARTS = "archtune:restarts"  # Ray's restarts of it: [{"error", "node", "epoch"}]
ATTR_OVERHEAD = "archtune:overhead"  # where its time went (studies.overhead), written at its end
# ATTR_CHECKPOINT ("archtune:checkpoint") is defined in trainers.base, which reads it.


@dataclass
class TrialRecord:
    """One trial as recorded.

    Attributes:
        number: Optuna's trial number (0, 1, ...) within the study.
        state: ``"COMPLETE"``, ``"PRUNED"``, ``"FAIL"``, ``"RUNNING"``, ``"WAITING"``, or
            ``"INTERRUPTED"``: RUNNING in Optuna, but no live driver runs the study (its
            run was stopped or died; it goes on at the next run).
        params: Flat ``{path: value}`` of the sampled decisions.
        value: Final objective value; for a PRUNED trial the last intermediate value
            (as Optuna keeps it); None for failed or running trials.
        intermediate: ``{epoch: objective}`` as reported during training.
        metrics: ``{name: [(epoch, value), ...]}`` of every reported metric.
        error: One-line reason of a failure, if any.
        traceback: Full traceback of a failure, if any.
        arch_id: Canonical id of the architecture (equal ids build equal networks).
        repeat_of: For a proposal answered from the record instead of trained, the
            number of the trial whose result it reuses.
        started, completed: Start and end times as Optuna records them (the driver's
            local time, without a time zone).
        values: Every objective's final value (several objectives), in the study's order;
            None unless COMPLETE. ``value`` is the first.
        stats: The network's statistics computed before training (``params``,
            ``flops``, ...), when the study needed them (constraints, cost objectives).
        constraints: Constraint amounts recorded on the trial (<= 0: met).
        node: Where it last ran, ``"hostname (ip)"`` (None before its first report).
        restarts: Ray's restarts of it after its worker died, oldest first, each
            ``{"error": ..., "node": ..., "epoch": last epoch recorded before}``.
        overhead: Where its time went, in seconds (``propose_s``, ``queue_s``,
            ``startup_s``, ``train_s``, ``record_s``, and the counts ``epochs``, ``runs``;
            see :mod:`studies.overhead`), recorded when it ended (or was left
            interrupted); None while it runs, and for older studies' or plain Optuna ones.
    """

    number: int
    state: str
    params: dict[str, Any]
    value: float | None = None
    intermediate: dict[int, float] = field(default_factory=dict)
    metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    started: datetime | None = None
    completed: datetime | None = None
    arch_id: str | None = None
    repeat_of: int | None = None
    values: list[float] | None = None
    stats: dict[str, float] | None = None
    constraints: list[float] = field(default_factory=list)
    node: str | None = None
    restarts: list[dict[str, Any]] = field(default_factory=list)
    overhead: dict[str, float] | None = None

    def __post_init__(self) -> None:
        if self.values is None and self.state == "COMPLETE" and self.value is not None:
            self.values = [self.value]

    @property
    def feasible(self) -> bool:
        """Whether every recorded constraint is met (True when none is recorded)."""
        return all(c <= 0 for c in self.constraints)

    @property
    def finished(self) -> bool:
        """Whether the trial has ended (complete, pruned or failed)."""
        return self.state in ("COMPLETE", "PRUNED", "FAIL")

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end, if both are known."""
        if self.started is None or self.completed is None:
            return None
        return (self.completed - self.started).total_seconds()


@dataclass
class StudyRecord:
    """A study and its trials, as recorded.

    Attributes:
        name: The study's name.
        direction: ``"maximize"`` or ``"minimize"`` (of the first objective).
        objective: Name of the metric that is optimised (e.g. ``"val_acc"``; the first
            of several).
        space: The search space as JSON (``SearchSpace.to_json()``), or None.
        trials: All trials in order of their number.
        objectives: Every objective's name (default: ``[objective]``).
        directions: Every objective's direction (default: ``[direction]``).
    """

    name: str
    direction: str
    objective: str
    space: dict[str, Any] | None
    trials: list[TrialRecord]
    objectives: list[str] = field(default_factory=list)
    directions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.objectives = list(self.objectives) or [self.objective]
        self.directions = list(self.directions) or [self.direction]

    @property
    def multi(self) -> bool:
        """Whether the study has several objectives (a Pareto front, no single best)."""
        return len(self.objectives) > 1

    @property
    def front(self) -> list[TrialRecord]:
        """The Pareto front: COMPLETE, feasible trials with finite values that no other
        such trial dominates, in trial order (as Optuna's ``best_trials``)."""
        done = [
            t
            for t in self.trials
            if t.state == "COMPLETE"
            and t.feasible
            and t.values is not None
            and len(t.values) == len(self.objectives)
            and all(math.isfinite(v) for v in t.values)
        ]
        if not done:
            return []
        objectives = Objectives.parse(self.objectives, self.directions)
        mask = objectives.pareto_mask([t.values for t in done])
        return [t for t, on in zip(done, mask, strict=True) if on]

    @property
    def best(self) -> TrialRecord | None:
        """The complete trial with the best finite value (of the first objective) among
        those that met the constraints, or None when there is none."""
        goal = Objectives.parse(self.objectives, self.directions)[0]
        best: TrialRecord | None = None
        for t in self.trials:
            if t.state != "COMPLETE" or not t.feasible or t.value is None:
                continue
            if goal.better(t.value, None if best is None else best.value):
                best = t
        return best


@dataclass
class StudySummary:
    """One line of ``archtune ls``."""

    name: str
    direction: str
    objective: str
    n_trials: int
    states: dict[str, int]
    best_value: float | None
    started: datetime | None
    objectives: list[str] = field(default_factory=list)
    directions: list[str] = field(default_factory=list)
    front_size: int = 0  # trials on the Pareto front (several objectives)


def _objectives(study: optuna.study.StudySummary | optuna.Study) -> Objectives:
    names = getattr(study, "metric_names", None)
    return Objectives.from_json(study.user_attrs.get(ATTR_OBJECTIVE), study.directions, names)


def _value(t: optuna.trial.FrozenTrial) -> float | None:
    """The first objective's final value, or a PRUNED single-objective trial's last
    intermediate value (as Optuna keeps it)."""
    if t.state.name not in ("COMPLETE", "PRUNED") or not t.values:
        return None
    return t.values[0]


def trial_record(
    t: optuna.trial.FrozenTrial, metrics: dict[str, list[tuple[int, float]]]
) -> TrialRecord:
    """A :class:`TrialRecord` from an Optuna trial and its archtune metrics."""
    from search.optuna_access import constraints_of  # `import search` loads every controller

    return TrialRecord(
        number=t.number,
        state=t.state.name,
        params=dict(t.params),
        value=_value(t),
        intermediate=dict(sorted(t.intermediate_values.items())),
        metrics=metrics,
        error=t.user_attrs.get(ATTR_ERROR)
        or (f"rejected: {t.user_attrs[ATTR_REJECTED]}" if ATTR_REJECTED in t.user_attrs else None),
        traceback=t.user_attrs.get(ATTR_TRACEBACK),
        started=t.datetime_start,
        completed=t.datetime_complete,
        arch_id=t.user_attrs.get(ATTR_ARCH_ID),
        repeat_of=t.user_attrs.get(ATTR_REPEAT_OF),
        values=list(t.values) if t.state.name == "COMPLETE" and t.values else None,
        stats=t.user_attrs.get(ATTR_STATS),
        node=t.user_attrs.get(ATTR_NODE),
        restarts=list(t.user_attrs.get(ATTR_RESTARTS) or []),
        constraints=list(constraints_of(t).values()),
        overhead=t.user_attrs.get(ATTR_OVERHEAD),
    )


def load_study_record(storage: Storage, name: str) -> StudyRecord:
    """Read study ``name`` and all its trials and metrics.

    Raises:
        KeyError: if there is no study of that name (the message lists those there are).
    """
    from search.optuna_access import study_id, trial_id

    names = optuna.get_all_study_names(storage.optuna)
    if name not in names:
        raise KeyError(f"No study {name!r} in {storage.shown}; studies there: {sorted(names)}.")
    study = optuna.load_study(study_name=name, storage=storage.optuna)
    trials = study.get_trials(deepcopy=False)
    metrics = storage.metrics([trial_id(t) for t in trials])
    space = study.user_attrs.get(ATTR_SPACE)
    objectives = _objectives(study)
    records = [trial_record(t, metrics[trial_id(t)]) for t in trials]
    if not live_drivers(storage, study_id(study)):  # nothing runs: RUNNING was interrupted
        for r in records:
            r.state = "INTERRUPTED" if r.state == "RUNNING" else r.state
    return StudyRecord(
        name=name,
        direction=objectives[0].direction,
        objective=objectives[0].name,
        space=json.loads(space) if isinstance(space, str) else space,
        trials=records,
        objectives=list(objectives.names),
        directions=list(objectives.directions),
    )


def list_studies(storage: Storage) -> list[StudySummary]:
    """A summary of every study in the database, oldest first."""
    out = []
    for s in optuna.get_all_study_summaries(storage.optuna, include_best_trial=False):
        study = optuna.load_study(study_name=s.study_name, storage=storage.optuna)
        states: dict[str, int] = {}
        for t in study.get_trials(deepcopy=False):
            states[t.state.name] = states.get(t.state.name, 0) + 1
        objectives = _objectives(study)
        front = study.best_trials if states.get("COMPLETE") else []  # feasible first
        best = None if objectives.multi or not front else front[0].values[0]
        out.append(
            StudySummary(
                name=s.study_name,
                direction=objectives[0].direction,
                objective=objectives[0].name,
                n_trials=s.n_trials,
                states=states,
                best_value=best,
                started=s.datetime_start,
                objectives=list(objectives.names),
                directions=list(objectives.directions),
                front_size=len(front) if objectives.multi else 0,
            )
        )
    return out
