"""A study's objectives: names, directions and every conversion of them, in one place.

A study optimises one or more reported metrics, each with a direction. Everything that
depends on a direction (Optuna's ``StudyDirection``, Ray Tune's ``"max"``/``"min"``,
"is this value better", the sign of a score) is derived here, at one boundary, from the
names and directions a user gave (``objective="val_acc"`` or a list).

**Cost objectives** are the model statistics ``params``, ``flops``,
``activation_bytes`` and ``latency_ms`` (:data:`COST_METRICS`): a network's cost is known
from its configuration before training (so constraints and controllers can use it
without training), and a trainer reports the final network's figures (after pruning,
measured on the trial's device) at its last epoch. The others are **learning
objectives**: they change from epoch to epoch, and an early-stopping scheduler judges
the first of them that the trainer reports every epoch (:meth:`Objectives.scheduled_for`).

Example:
    >>> objectives = Objectives.parse(["val_acc", "params"], ["maximize", "minimize"])
    >>> objectives.names, objectives.multi, objectives[1].is_cost
    (('val_acc', 'params'), True, True)
    >>> Objectives.parse("val_loss", "minimize")[0].mode
    'min'
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.study import StudyDirection

from spaces.constraints import STATS

DIRECTIONS = ("maximize", "minimize")
COST_METRICS = STATS  # known from the configuration before training


@dataclass(frozen=True)
class Objective:
    """One reported metric and whether to maximise or minimise it."""

    name: str
    direction: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"An objective must name a reported metric, got {self.name!r}.")
        if self.direction not in DIRECTIONS:
            raise ValueError(
                f"direction must be one of {DIRECTIONS}, got {self.direction!r} "
                f"(for objective {self.name!r})."
            )

    @property
    def maximize(self) -> bool:
        """Whether larger values are better."""
        return self.direction == "maximize"

    @property
    def mode(self) -> str:
        """Ray Tune's ``"max"`` or ``"min"``."""
        return "max" if self.maximize else "min"

    @property
    def optuna_direction(self) -> StudyDirection:
        """Optuna's ``StudyDirection``."""
        return StudyDirection.MAXIMIZE if self.maximize else StudyDirection.MINIMIZE

    @property
    def is_cost(self) -> bool:
        """Whether this is a model statistic known before training (:data:`COST_METRICS`)."""
        return self.name in COST_METRICS

    def better(self, a: float, b: float | None) -> bool:
        """Whether value ``a`` beats ``b`` (any finite value beats None or NaN)."""
        if not math.isfinite(a):
            return False
        if b is None or not math.isfinite(b):
            return True
        return a > b if self.maximize else a < b


@dataclass(frozen=True)
class Objectives:
    """The objectives of a study, in order (Optuna's ``values[i]`` is ``items[i]``).

    Build with :meth:`parse` (from what a user gives) or :meth:`from_json` (as stored).
    """

    items: tuple[Objective, ...]

    def __post_init__(self) -> None:
        if not self.items:
            raise ValueError("A study needs at least one objective.")
        names = [o.name for o in self.items]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(
                f"Objective(s) {twice} are given twice; name each metric once ({names})."
            )

    @classmethod
    def parse(cls, objective: str | Sequence[str], direction: str | Sequence[str]) -> Objectives:
        """The objectives from a name or a list of names and a direction or a list of them.

        A single direction applies to a single objective only; several objectives need
        one direction each.

        Raises:
            ValueError: for an empty or repeated name, an unknown direction, or lists of
                different lengths.
            TypeError: for names or directions that are neither strings nor lists of them.
        """
        names = _as_list(objective, "objective")
        directions = _as_list(direction, "direction")
        if len(names) != len(directions):
            raise ValueError(
                f"{len(names)} objective(s) {names} but {len(directions)} direction(s) "
                f"{directions}; give one direction per objective, e.g. "
                f"direction={['maximize'] + ['minimize'] * (len(names) - 1)}."
            )
        return cls(tuple(Objective(n, d) for n, d in zip(names, directions, strict=True)))

    @property
    def names(self) -> tuple[str, ...]:
        """The metric names, in order."""
        return tuple(o.name for o in self.items)

    @property
    def directions(self) -> tuple[str, ...]:
        """``"maximize"`` / ``"minimize"``, in order."""
        return tuple(o.direction for o in self.items)

    @property
    def optuna_directions(self) -> list[StudyDirection]:
        """Optuna's ``StudyDirection`` of each objective, in order."""
        return [o.optuna_direction for o in self.items]

    @property
    def multi(self) -> bool:
        """Whether there are several objectives (the study has a Pareto front)."""
        return len(self.items) > 1

    def scheduled_for(self, per_epoch: Sequence[str]) -> Objective | None:
        """What an early-stopping scheduler judges: the first objective among the metrics
        ``per_epoch`` a trainer reports every epoch (``Trainer.metrics``), or None.

        Costs (``params``, ...) and metrics reported at the last epoch only (``test_acc``,
        ``latency_batch_ms``) say nothing about a trial's progress, so they are skipped.

        Example:
            >>> Objectives.parse(["params", "val_acc"], ["minimize", "maximize"]).scheduled_for(
            ...     ["epoch", "val_acc"]).name
            'val_acc'
        """
        return next((o for o in self.items if o.name in per_epoch and not o.is_cost), None)

    def __iter__(self) -> Iterator[Objective]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Objective:
        return self.items[i]

    def losses(self, values: Sequence[Sequence[float]]) -> np.ndarray:
        """``values`` (one row per trial, one column per objective) turned so that lower is
        better in every column."""
        signs = np.array([-1.0 if o.maximize else 1.0 for o in self.items])
        return np.asarray(values, dtype=float).reshape(-1, len(self.items)) * signs

    def pareto_mask(self, values: Sequence[Sequence[float]]) -> np.ndarray:
        """Which rows of ``values`` no other row dominates (at least as good in every
        objective and better in one); equal rows are all kept.

        Example:
            >>> two = Objectives.parse(["acc", "params"], ["maximize", "minimize"])
            >>> two.pareto_mask([[0.9, 100], [0.8, 50], [0.7, 80], [0.9, 100]]).tolist()
            [True, True, False, True]
        """
        from search.pareto import nondominated  # `import search` loads every controller

        return nondominated(self.losses(values))

    def to_json(self) -> str:
        """The names as a study stores them: one name, or a JSON list of several."""
        return self.names[0] if not self.multi else json.dumps(list(self.names))

    @classmethod
    def from_json(
        cls,
        text: str | None,
        directions: Sequence[StudyDirection],
        metric_names: Sequence[str] | None = None,
    ) -> Objectives:
        """The objectives stored by :meth:`to_json`, with the study's Optuna directions.

        A study archtune did not create has no stored names: Optuna's metric names are
        used when set, else ``value`` (one objective) or ``value_0``, ``value_1``, ...
        """
        dirs = ["maximize" if d == StudyDirection.MAXIMIZE else "minimize" for d in directions]
        if text is None and metric_names and len(metric_names) == len(dirs):
            names = list(metric_names)
        elif text is None:
            names = ["value"] if len(dirs) == 1 else [f"value_{i}" for i in range(len(dirs))]
        elif text.startswith("["):
            names = json.loads(text)
        else:
            names = [text]
        return cls.parse(names, dirs)


def _as_list(value: Any, label: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence) and value and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, Sequence) and not value:
        raise ValueError(f"{label} is an empty list; give at least one.")
    raise TypeError(f"{label} must be a string or a list of strings, got {value!r}.")
