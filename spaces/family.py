"""Base class of the named sub-spaces: architecture families and the training knobs.

A family is a :class:`~spaces.SearchSpace` with a fixed set of named knobs, each with a
default. The user passes a parameter (``Int(1, 4)``) or a constant per knob; unknown
knobs raise with the list of valid ones, and each knob's allowed values are checked
against what the code that consumes it honours.

Knobs come in two kinds:

* **core** knobs (``defaults``) are always in the space, as a constant when the user
  leaves them out, so every configuration names them;
* **optional** knobs (``optional``) enter the space only when the user passes them;
  a configuration without them means their default. This lets a family grow new knobs
  without changing the configurations (and the ids of stored trials) of spaces that do
  not use them. :meth:`Family.resolve` (or :func:`config_of`) fills every knob in.

A family may also derive the condition of a knob from other knobs (e.g. a per-stage
depth is active only when the network has that many stages): see
:meth:`Family.knob_conditions`.

Example:
    >>> from spaces import ResNetSpace, Int
    >>> family = ResNetSpace(stages=Int(2, 4), depth_4=Int(1, 3))
    >>> family.conditions()
    {'depth_4': {'stages': (4,)}}
    >>> family.resolve({"stages": 2, "depth": 1, "width": 8})["block"]
    'basic'
"""

from __future__ import annotations

import copy
import difflib
import numbers
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from spaces.params import Categorical, Fixed, Float, Int, Param, param_from_json
from spaces.space import SearchSpace

_STAGE_KNOB = re.compile(r"^(?P<prefix>[a-z_]+?)_(?P<index>[1-9][0-9]*)$")


class Family(SearchSpace):
    """A :class:`SearchSpace` with declared knobs and defaults.

    Subclasses set ``kind`` (JSON name), ``defaults`` (core knob -> default value), and
    may set ``optional`` (optional knob -> default, present only when passed),
    ``presets`` (name -> configuration), ``rules`` (the values each knob may take, which
    the default :meth:`check_knob` enforces) and ``stage_count`` (the knob counting the
    stages that per-stage knobs ``x_k`` refer to). They may override :meth:`check_knob`
    and :meth:`knob_conditions` (call ``super()``) for anything else.

    ``rules`` map a knob to ``("in", allowed values)`` or ``("range", low, high,
    integer)``; a per-stage knob ``width_3`` uses the rule of ``"width_k"`` if there is
    one, else that of ``"width"``.

    Construction order: knobs are coerced to parameters, :meth:`knob_conditions`
    attaches derived conditions, the space is built, then :meth:`check_knob` runs once
    per knob. Instances are immutable, like every space.
    """

    defaults: ClassVar[dict[str, Any]] = {}
    optional: ClassVar[dict[str, Any]] = {}
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    rules: ClassVar[dict[str, tuple[Any, ...]]] = {}
    stage_count: ClassVar[str | None] = None

    def __init__(self, **knobs: Any) -> None:
        unknown = sorted(set(knobs) - set(self.defaults) - set(self.optional))
        if unknown:
            raise TypeError(_unknown(type(self), "unknown knob(s)", unknown))
        params = {name: _as_param(self, name, v) for name, v in {**self.defaults, **knobs}.items()}
        for name, when in self.knob_conditions(params).items():
            params[name] = _with_when(self, name, params[name], when)
        super().__init__(params)
        for name, param in self.items():
            self.check_knob(name, param)  # type: ignore[arg-type]

    @classmethod
    def _from_entries(cls, entries: dict[str, Param | SearchSpace]) -> SearchSpace:
        return cls(**entries)

    def check_knob(self, name: str, param: Param) -> None:
        """Raise ``ValueError`` if ``param`` allows values knob ``name`` cannot take.

        The default applies the knob's entry in ``rules``, if any.
        """
        parsed = stage_index(name)
        keys = [name, f"{parsed[0]}_k", parsed[0]] if parsed else [name]
        rule = next((self.rules[k] for k in keys if k in self.rules), None)
        if rule is None:
            return
        if rule[0] == "in":
            self._require_in(name, param, rule[1])
        else:
            self._require_range(name, param, rule[1], rule[2], integer=rule[3])

    def knob_conditions(self, knobs: Mapping[str, Param]) -> dict[str, dict[str, list[Any]]]:
        """Conditions (``when``) the family derives for some knobs, before the space is built.

        Args:
            knobs: Every knob of the space being built, as parameters.

        Returns:
            ``{knob: {parent knob: allowed values}}``; a knob left out is unconditional.
            A user may not give such a knob another condition of their own. The default
            makes each per-stage knob ``x_k`` active only when ``stage_count >= k``.
        """
        if self.stage_count is None:
            return {}
        count = knobs[self.stage_count]
        self.check_knob(self.stage_count, count)  # before enumerating its values
        high = self.rules[self.stage_count][2]
        out = {}
        for name in knobs:
            parsed = stage_index(name)
            if parsed:
                allowed = list(range(parsed[1], high + 1))
                when = when_in(self, name, self.stage_count, count, allowed)
                if when:
                    out[name] = when
        return out

    def knob_values(self, name: str) -> list[Any] | None:
        """The finite set of values knob ``name`` may take, or None for a numeric range."""
        return finite_values(self[name])  # type: ignore[arg-type]

    def resolve(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Validate one configuration of this family and fill in every default.

        The configuration need not come from this instance's space (any values the
        family supports are accepted), but its values must be consistent: for instance
        no per-stage knob for a stage the network does not have. The result is what a
        builder reads, not a configuration: it names every knob, with the default
        (None for "follow the shared rule") where ``config`` has none.

        Raises:
            ValueError: for an unknown key, an unsupported value or an inactive knob.
        """
        full = config_of(type(self), config)
        try:
            type(self)(**config)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"Invalid {type(self).__name__} configuration {dict(config)}: {e}"
            ) from e
        return full

    @classmethod
    def list_presets(cls) -> list[str]:
        """The names :meth:`preset` knows, sorted."""
        return sorted(cls.presets)

    @classmethod
    def preset(cls, name: str) -> dict[str, Any]:
        """The configuration of a reference network, e.g. ``ResNetSpace.preset("resnet50")``.

        The result is a configuration ``build`` accepts; ``cls(**preset)`` is a space of
        constants holding exactly that network, and a starting point for a search
        around it (replace a constant with a parameter).

        Raises:
            ValueError: for an unknown name, listing the valid ones.
        """
        if name not in cls.presets:
            raise ValueError(
                f"{cls.__name__} has no preset {name!r}; valid presets: {cls.list_presets()}."
            )
        return copy.deepcopy(cls.presets[name])

    def _require_in(self, name: str, param: Param, allowed: set[Any]) -> None:
        values = finite_values(param)
        if values is None:
            raise ValueError(
                f"{type(self).__name__}: knob {name!r} takes one of {sorted(allowed, key=str)}; "
                f"use Categorical([...]) or a constant, not {param!r}."
            )
        bad = [v for v in values if not any(type(v) is type(a) and v == a for a in allowed)]
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
            values = [param.low, param.high]
        else:
            values = finite_values(param) or []
        for v in values:
            ok_type = isinstance(v, int) if integer else isinstance(v, (int, float))
            if isinstance(v, bool) or not ok_type or not (low <= v <= high):
                kind = "integers" if integer else "numbers"
                raise ValueError(
                    f"{type(self).__name__}: knob {name!r} takes {kind} in [{low}, {high}], "
                    f"got {v!r} from {param!r}."
                )


def config_of(family: type[Family], config: Mapping[str, Any]) -> dict[str, Any]:
    """Fill the defaults of ``family`` into a (possibly partial) sampled configuration.

    Every core and optional knob appears in the result; values are not validated (use
    :meth:`Family.resolve` for that).

    Raises:
        ValueError: for a key that is not a knob of ``family``.
    """
    known = {**family.defaults, **family.optional}
    unknown = sorted(set(config) - set(known))
    if unknown:
        raise ValueError(_unknown(family, "configuration has unknown key(s)", unknown))
    out = {}
    for name, default in known.items():
        out[name] = config.get(name, default.value if isinstance(default, Fixed) else default)
    return out


def finite_values(param: Param) -> list[Any] | None:
    """The values a parameter can take, or None for a continuous or huge range."""
    if isinstance(param, Fixed):
        return [param.value]
    if isinstance(param, Categorical):
        return list(param.choices)
    if isinstance(param, Int) and not param.log:
        step = param.step or 1
        if (param.high - param.low) // step < 4096:
            return list(range(param.low, param.high + 1, step))
    return None


def stage_knobs(prefix: str, count: int) -> dict[str, None]:
    """Optional per-stage knobs ``{prefix}_1 .. {prefix}_{count}``, default None (shared rule)."""
    return {f"{prefix}_{k}": None for k in range(1, count + 1)}


def stage_index(name: str) -> tuple[str, int] | None:
    """``("depth", 3)`` for ``"depth_3"``; None for a name without a stage number."""
    match = _STAGE_KNOB.match(name)
    return (match["prefix"], int(match["index"])) if match else None


def when_in(
    family: Family, name: str, parent: str, parent_param: Param, allowed: list[Any]
) -> dict[str, list[Any]] | None:
    """The condition under which knob ``name`` is active: ``parent`` takes one of ``allowed``.

    Returns None when every value of ``parent`` qualifies (no condition needed).

    Raises:
        ValueError: when no value of ``parent`` qualifies: ``name`` could never be used.
    """
    values = finite_values(parent_param)
    if values is None:
        raise ValueError(
            f"{type(family).__name__}: knob {parent!r} must be a constant, Categorical or "
            f"small Int range, since {name!r} depends on it; got {parent_param!r}."
        )
    ok = [v for v in values if any(type(v) is type(a) and v == a for a in allowed)]
    if not ok:
        raise ValueError(
            f"{type(family).__name__}: knob {name!r} is used only when {parent!r} is one of "
            f"{allowed}, but {parent!r} is {parent_param!r}; remove {name!r} or widen {parent!r}."
        )
    return None if len(ok) == len(values) else {parent: ok}


def _as_param(family: Family, name: str, value: Any) -> Param:
    if isinstance(value, Param):
        return value
    if value is None or isinstance(value, (bool, int, float, str)):
        return Fixed(value)
    raise TypeError(
        f"{type(family).__name__}: knob {name!r} = {value!r} must be a parameter "
        "(Int, Float, Categorical, Fixed) or a str/int/float/bool constant."
    )


def _with_when(family: Family, name: str, param: Param, when: dict[str, list[Any]]) -> Param:
    derived = param_from_json({**param.to_json(), "when": when})
    if param.when and param.when != derived.when:
        raise ValueError(
            f"{type(family).__name__}: knob {name!r} gets its condition {when} from the "
            f"family; drop when={dict(param.when)}."
        )
    return derived


def _unknown(family: type[Family], what: str, unknown: list[str]) -> str:
    """The message for unknown knobs: the valid ones (``x_1..x_N`` folded), and a guess."""
    groups: dict[str, list[int]] = {}
    singles: list[str] = []
    for name in family.optional:
        parsed = stage_index(name)
        if parsed:
            groups.setdefault(parsed[0], []).append(parsed[1])
        else:
            singles.append(name)
    folded = [f"{p}_{min(ks)}..{p}_{max(ks)}" for p, ks in groups.items()]
    text = f"{family.__name__}: {what} {unknown}; valid knobs: {sorted(family.defaults)}"
    if singles or folded:
        text += f" and the optional knobs {sorted(singles) + folded}"
    close = difflib.get_close_matches(unknown[0], [*family.defaults, *family.optional], n=1)
    return text + (f". Did you mean {close[0]!r}?" if close else ".")


def check_shared_used(family: Family, knobs: Mapping[str, Param], shared: str) -> None:
    """Refuse a searched shared knob that per-stage knobs override at every stage.

    Raises:
        ValueError: when ``shared`` is a decision but ``{shared}_1..{shared}_N`` all exist
            for the largest stage count ``N``, so the decision would never matter.
    """
    if isinstance(knobs[shared], Fixed) or family.stage_count is None:
        return
    most = max(finite_values(knobs[family.stage_count]) or [family.rules[family.stage_count][2]])
    if all(f"{shared}_{k}" in knobs for k in range(1, most + 1)):
        raise ValueError(
            f"{type(family).__name__}: {shared!r} is searched ({knobs[shared]!r}) but every "
            f"stage has its own {shared}_k knob, so it would never be used; make {shared!r} "
            "a constant or drop one of the per-stage knobs."
        )


def check_build_args(input_shape: Any, num_classes: Any) -> tuple[int, int, int]:
    """Validate ``build``'s ``input_shape`` ``(C, H, W)`` and ``num_classes``; return the shape.

    Raises:
        ValueError: for a shape that is not three positive ints, or a class count < 1.
    """
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else ()
    if len(shape) != 3 or not all(_positive_int(d) for d in shape):
        raise ValueError(
            f"input_shape must be (channels, height, width) of positive ints, e.g. (3, 32, 32); "
            f"got {input_shape!r}."
        )
    if not _positive_int(num_classes):
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}.")
    c, h, w = (int(d) for d in shape)
    return c, h, w


def _positive_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0
