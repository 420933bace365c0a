"""Constraints on model statistics, checked before any training.

A constraint bounds one statistic of the network a configuration builds (parameters,
FLOPs, activation memory, latency). The driver computes the statistics of every proposal
and rejects one that breaks a constraint without training it: the trial is recorded
FAIL with the reason in its ``archtune:rejected`` attribute, and the controller is asked
again.

Example:
    >>> c = Constraint("params", max=1e6)
    >>> c.violation({"params": 2_000_000})
    'params = 2e+06 > max 1e+06'
    >>> c.violation({"params": 10}) is None
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

STATS = ("params", "flops", "activation_bytes", "latency_ms")


@dataclass(frozen=True)
class Constraint:
    """``min <= stats[metric] <= max`` for one model statistic.

    Args:
        metric: One of :data:`STATS`.
        max: Upper bound (inclusive), or None.
        min: Lower bound (inclusive), or None.

    Raises:
        ValueError: for an unknown metric, no bound, or ``min > max``.
    """

    metric: str
    max: float | None = None
    min: float | None = None

    def __post_init__(self) -> None:
        if self.metric not in STATS:
            raise ValueError(
                f"Constraint on unknown metric {self.metric!r}; constrain one of {list(STATS)}."
            )
        for label, bound in (("max", self.max), ("min", self.min)):
            if bound is not None and (
                isinstance(bound, bool)
                or not isinstance(bound, (int, float))
                or not math.isfinite(bound)
            ):
                raise ValueError(f"Constraint {label} must be a finite number, got {bound!r}.")
        if self.max is None and self.min is None:
            raise ValueError(f"Constraint on {self.metric!r} needs max=..., min=..., or both.")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"Constraint on {self.metric!r}: min {self.min} > max {self.max}.")

    def violation(self, stats: Mapping[str, float | None]) -> str | None:
        """Why ``stats`` break this constraint, or None when they meet it."""
        value = stats.get(self.metric)
        if value is None:
            raise ValueError(f"Model statistics lack {self.metric!r}; got {sorted(stats)}.")
        if self.max is not None and value > self.max:
            return f"{self.metric} = {value:.4g} > max {self.max:.4g}"
        if self.min is not None and value < self.min:
            return f"{self.metric} = {value:.4g} < min {self.min:.4g}"
        return None

    def amount(self, stats: Mapping[str, float | None]) -> float:
        """How far ``stats`` are outside the bounds: <= 0 when met (Optuna's convention for
        constraint values), else the excess in the metric's units.

        Example:
            >>> c = Constraint("params", max=100)
            >>> c.amount({"params": 80}), c.amount({"params": 130})
            (-20.0, 30.0)
        """
        value = stats.get(self.metric)
        if value is None:
            raise ValueError(f"Model statistics lack {self.metric!r}; got {sorted(stats)}.")
        excess = [float(value) - self.max] if self.max is not None else []
        if self.min is not None:
            excess.append(self.min - float(value))
        return max(excess)

    def to_json(self) -> dict[str, Any]:
        """JSON-able fields; ``Constraint(**c.to_json())`` rebuilds it."""
        return {"metric": self.metric, "max": self.max, "min": self.min}
