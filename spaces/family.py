"""Base class of the named sub-spaces: architecture families and the training knobs.

A family is a :class:`~spaces.SearchSpace` with a fixed set of named knobs, each with a
default. The user passes a parameter (``Int(1, 4)``) or a constant per knob; unknown
knobs raise with the list of valid ones, and each knob's allowed values are checked
against what the code that consumes it honours.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from spaces.params import Categorical, Fixed, Float, Int, Param
from spaces.space import SearchSpace


class Family(SearchSpace):
    """A :class:`SearchSpace` with declared knobs and defaults.

    Subclasses set ``kind`` (JSON name) and ``defaults`` (knob -> default value), and may
    override :meth:`check_knob` to restrict the values a knob may take.
    """

    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **knobs: Any) -> None:
        unknown = sorted(set(knobs) - set(self.defaults))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}: unknown knob(s) {unknown}; "
                f"valid knobs: {sorted(self.defaults)}."
            )
        entries = {**self.defaults, **knobs}
        super().__init__(entries)
        for name, param in self.items():
            if isinstance(param, SearchSpace):
                raise TypeError(f"{type(self).__name__}: knob {name!r} cannot be a nested space.")
            self.check_knob(name, param)  # type: ignore[arg-type]

    @classmethod
    def _from_entries(cls, entries: dict[str, Param | SearchSpace]) -> SearchSpace:
        return cls(**entries)

    def check_knob(self, name: str, param: Param) -> None:
        """Raise ``ValueError`` if ``param`` allows values knob ``name`` cannot take."""

    def knob_values(self, name: str) -> list[Any] | None:
        """The finite set of values knob ``name`` may take, or None for a numeric range."""
        param = self[name]
        if isinstance(param, Fixed):
            return [param.value]
        if isinstance(param, Categorical):
            return list(param.choices)
        return None

    def _require_in(self, name: str, param: Param, allowed: set[Any]) -> None:
        values = self.knob_values(name)
        if values is None:
            raise ValueError(
                f"{type(self).__name__}: knob {name!r} takes one of {sorted(allowed, key=str)}; "
                f"use Categorical([...]) or a constant, not {param!r}."
            )
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ValueError(
                f"{type(self).__name__}: knob {name!r} has unsupported value(s) {bad}; "
                f"supported: {sorted(allowed, key=str)}."
            )

    def _require_range(
        self, name: str, param: Param, low: float, high: float, integer: bool = False
    ) -> None:
        if isinstance(param, (Float, Int)):
            if integer and isinstance(param, Float):
                raise ValueError(f"{type(self).__name__}: knob {name!r} is an integer; use Int.")
            lo, hi = param.low, param.high
            values = [lo, hi]
        else:
            values = self.knob_values(name) or []
        for v in values:
            ok_type = isinstance(v, int) if integer else isinstance(v, (int, float))
            if isinstance(v, bool) or not ok_type or not (low <= v <= high):
                kind = "integers" if integer else "numbers"
                raise ValueError(
                    f"{type(self).__name__}: knob {name!r} takes {kind} in [{low}, {high}], "
                    f"got {v!r} from {param!r}."
                )


def config_of(family: type[Family], config: Mapping[str, Any]) -> dict[str, Any]:
    """Fill the defaults of ``family`` into a (possibly partial) sampled configuration."""
    out = {}
    for name, default in family.defaults.items():
        out[name] = config.get(name, default.value if isinstance(default, Fixed) else default)
    unknown = sorted(set(config) - set(family.defaults))
    if unknown:
        raise ValueError(
            f"{family.__name__}: configuration has unknown key(s) {unknown}; "
            f"valid keys: {sorted(family.defaults)}."
        )
    return out
