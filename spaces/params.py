"""Search-space parameters: the leaves of a :class:`~spaces.SearchSpace`.

Each parameter validates itself at construction, so a bad range fails where the user
wrote it, with a message that says how to fix it. Bounds are inclusive on both ends
(as in Optuna); adapters to libraries with other conventions convert at their edge.

Example:
    >>> from spaces import Float, Int, Categorical
    >>> Float(1e-4, 1e-1, log=True).contains(0.01)
    True
    >>> Int(1, 4).to_json()
    {'type': 'int', 'low': 1, 'high': 4, 'log': False, 'step': None}
    >>> Categorical([16, 32]).contains(24)
    False
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

JsonScalar = None | bool | int | float | str

_REGISTRY: dict[str, type[Param]] = {}


class Param(abc.ABC):
    """A single decision of a search space.

    Subclasses declare a unique ``type_name`` (used in JSON), validate their arguments
    in ``__init__`` and implement :meth:`contains` and :meth:`to_json`. Instances are
    immutable values: equal when their JSON is equal.
    """

    type_name: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("type_name")
        if name is None:
            return
        if name in _REGISTRY:
            raise ValueError(
                f"Parameter type {name!r} is already registered by {_REGISTRY[name]}."
            )
        _REGISTRY[name] = cls

    @abc.abstractmethod
    def contains(self, value: Any) -> bool:
        """Whether ``value`` is a value this parameter can take."""

    when: dict[str, tuple[JsonScalar, ...]] | None = None

    @abc.abstractmethod
    def _fields(self) -> dict[str, Any]:
        """The constructor arguments of this parameter, JSON-able, ``when`` excepted."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict that :func:`param_from_json` turns back into an equal parameter."""
        data = {"type": self.type_name, **self._fields()}
        if self.when:
            data["when"] = {k: list(v) for k, v in self.when.items()}
        return data

    def sample(self, rng: np.random.Generator) -> Any:
        """A value drawn from ``rng``: uniform, or log-uniform with ``log=True``."""
        raise TypeError(f"{type(self).__name__} cannot be sampled.")

    def _set_when(self, when: Mapping[str, Any] | None) -> None:
        """Store the condition ``{parameter name: allowed value(s)}`` under which this is active.

        Names are resolved in the space that holds this parameter: a plain name is a
        sibling, ``"sub/name"`` a parameter of a sibling sub-space. The space checks that
        they exist and form no cycle.
        """
        if when is None:
            self.when = None
            return
        if not isinstance(when, Mapping) or not when:
            raise TypeError(
                f"when must be a non-empty dict of parameter name -> allowed value(s), "
                f"e.g. when={{'block': 'bottleneck'}}; got {when!r}."
            )
        out: dict[str, tuple[JsonScalar, ...]] = {}
        for name, allowed in when.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"when: parameter names must be strings, got {name!r}.")
            values = tuple(allowed) if isinstance(allowed, (list, tuple, set)) else (allowed,)
            if not values:
                raise ValueError(f"when: no allowed values given for {name!r}.")
            for v in values:
                if v is not None and not isinstance(v, (bool, int, float, str)):
                    raise TypeError(f"when: value {v!r} for {name!r} must be a JSON scalar.")
            out[name] = values
        self.when = out

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.to_json() == other.to_json()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        fields = {k: v for k, v in self.to_json().items() if k != "type"}
        args = ", ".join(f"{k}={v!r}" for k, v in fields.items())
        return f"{type(self).__name__}({args})"


def param_from_json(data: dict[str, Any]) -> Param:
    """Rebuild a parameter from :meth:`Param.to_json` output.

    Raises:
        ValueError: if ``data`` names no known parameter type.
    """
    if not isinstance(data, dict) or "type" not in data:
        raise ValueError(f"Expected a parameter dict with a 'type' key, got {data!r}.")
    kind = data["type"]
    if kind not in _REGISTRY:
        raise ValueError(f"Unknown parameter type {kind!r}; known types: {sorted(_REGISTRY)}.")
    fields = {k: v for k, v in data.items() if k != "type"}
    try:
        return _REGISTRY[kind](**fields)
    except TypeError as e:
        raise ValueError(f"Bad fields for a {kind!r} parameter in {data!r}: {e}") from e


class _Numeric(Param):
    """Shared validation of :class:`Float` and :class:`Int`."""

    _cast: ClassVar[type]

    def __init__(
        self,
        low: float,
        high: float,
        log: bool = False,
        step: float | None = None,
        when: Mapping[str, Any] | None = None,
    ) -> None:
        self._set_when(when)
        name = type(self).__name__
        for label, bound in (("low", low), ("high", high)):
            if isinstance(bound, bool) or not isinstance(bound, (int, float)):
                raise TypeError(f"{name}: {label} must be a number, got {bound!r}.")
            if not math.isfinite(bound):
                raise ValueError(f"{name}: {label} must be finite, got {bound!r}.")
        if low >= high:
            raise ValueError(
                f"{name}(low={low}, high={high}): low must be smaller than high; "
                f"swap them, or use Fixed({low}) for a constant."
            )
        if log and low <= 0:
            raise ValueError(
                f"{name}(low={low}, high={high}, log=True): a log scale needs low > 0; "
                "raise low or drop log=True."
            )
        if step is not None:
            if log:
                raise ValueError(
                    f"{name}: log=True cannot be combined with step; use one of them."
                )
            if isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0:
                raise ValueError(f"{name}: step must be a positive number, got {step!r}.")
            n = (high - low) / step
            if abs(n - round(n)) > 1e-9 * max(1.0, abs(n)):
                raise ValueError(
                    f"{name}(low={low}, high={high}, step={step}): step must divide "
                    f"high - low = {high - low}; pick high = low + k * step."
                )
        self.low = low
        self.high = high
        self.log = bool(log)
        self.step = step

    def _fields(self) -> dict[str, Any]:
        return {
            "low": self.low,
            "high": self.high,
            "log": self.log,
            "step": self.step,
        }

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not (self.low <= value <= self.high):
            return False
        if self.step is not None:
            k = (value - self.low) / self.step
            return abs(k - round(k)) <= 1e-9 * max(1.0, abs(k))
        return True


def _grid_or_range(p: _Numeric, rng: np.random.Generator) -> float:
    if p.step is not None:
        k = int(rng.integers(0, round((p.high - p.low) / p.step) + 1))
        return p.low + k * p.step
    if p.log:
        return float(math.exp(rng.uniform(math.log(p.low), math.log(p.high))))
    return float(rng.uniform(p.low, p.high))


class Float(_Numeric):
    """A real number in ``[low, high]``, optionally on a log scale or a grid of ``step``.

    Args:
        low: Lower bound (inclusive).
        high: Upper bound (inclusive); must be greater than ``low``.
        log: Sample on a log scale; needs ``low > 0``.
        step: Grid spacing from ``low``; must divide ``high - low``.
        when: Make this parameter conditional: active only when the named parameters of
            the same space take one of the given values, e.g. ``{"block": "bottleneck"}``.

    Example:
        >>> Float(0.0, 0.8, step=0.1).contains(0.3)
        True
    """

    type_name = "float"

    def __init__(
        self,
        low: float,
        high: float,
        log: bool = False,
        step: float | None = None,
        when: Mapping[str, Any] | None = None,
    ) -> None:
        low = float(low) if _is_num(low) else low
        high = float(high) if _is_num(high) else high
        super().__init__(low, high, log, step, when)

    def sample(self, rng: np.random.Generator) -> float:
        return min(_grid_or_range(self, rng), self.high)


class Int(_Numeric):
    """An integer in ``[low, high]`` (both inclusive), optionally log-scaled or stepped.

    Example:
        >>> Int(1, 4).contains(4)
        True
    """

    type_name = "int"

    def __init__(
        self,
        low: int,
        high: int,
        log: bool = False,
        step: int | None = None,
        when: Mapping[str, Any] | None = None,
    ) -> None:
        for label, v in (("low", low), ("high", high), ("step", step)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise TypeError(f"Int: {label} must be an int, got {v!r}; use Float for reals.")
        super().__init__(low, high, log, step, when)

    def sample(self, rng: np.random.Generator) -> int:
        if self.log:  # log-uniform over the integers, as Optuna draws them
            x = math.exp(rng.uniform(math.log(self.low - 0.5), math.log(self.high + 0.5)))
            return int(min(max(round(x), self.low), self.high))
        return (
            int(_grid_or_range(self, rng))
            if self.step
            else int(rng.integers(self.low, self.high + 1))
        )

    def contains(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and super().contains(value)


class Categorical(Param):
    """One of a list of JSON-scalar choices (str, int, float, bool or None).

    Example:
        >>> Categorical(["fp32", "bf16"]).choices
        ('fp32', 'bf16')
    """

    type_name = "categorical"

    def __init__(
        self, choices: Sequence[JsonScalar], when: Mapping[str, Any] | None = None
    ) -> None:
        self._set_when(when)
        if isinstance(choices, (str, bytes)) or not isinstance(choices, Sequence):
            raise TypeError(
                f"Categorical: choices must be a list, got {choices!r}; "
                f"write Categorical([{choices!r}]) for a single choice."
            )
        if len(choices) == 0:
            raise ValueError("Categorical: choices is empty; give at least one choice.")
        for c in choices:
            if c is not None and not isinstance(c, (bool, int, float, str)):
                raise TypeError(
                    f"Categorical: choice {c!r} is not a str, int, float, bool or None; "
                    "encode it as a string and map it in your code."
                )
        keys = [(type(c), c) for c in choices]
        if len(set(keys)) != len(keys):
            raise ValueError(f"Categorical: choices {list(choices)!r} contain duplicates.")
        self.choices = tuple(choices)

    def _fields(self) -> dict[str, Any]:
        return {"choices": list(self.choices)}

    def sample(self, rng: np.random.Generator) -> JsonScalar:
        return self.choices[int(rng.integers(0, len(self.choices)))]

    def contains(self, value: Any) -> bool:
        return any(type(value) is type(c) and value == c for c in self.choices)


class Fixed(Param):
    """A constant: part of the configuration, but not a decision.

    Example:
        >>> Fixed(3).contains(3)
        True
    """

    type_name = "fixed"

    def __init__(self, value: JsonScalar, when: Mapping[str, Any] | None = None) -> None:
        self._set_when(when)
        if value is not None and not isinstance(value, (bool, int, float, str)):
            raise TypeError(f"Fixed: value {value!r} must be a str, int, float, bool or None.")
        self.value = value

    def _fields(self) -> dict[str, Any]:
        return {"value": self.value}

    def sample(self, rng: np.random.Generator) -> JsonScalar:
        return self.value

    def contains(self, value: Any) -> bool:
        return type(value) is type(self.value) and value == self.value


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
