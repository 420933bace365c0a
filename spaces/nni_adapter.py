"""Adapter between archtune spaces and NNI's search-space JSON.

NNI 3.0 is no longer developed; archtune reads and writes its formats here and nowhere
else. This module needs no NNI installed.

**Search-space JSON** (NNI's HPO format, ``{"name": {"_type": ..., "_value": [...]}}``).
Each archtune parameter becomes one NNI type; the tests pin NNI's semantics:

=============================  ==========================  ===============================
archtune                       NNI                         note
=============================  ==========================  ===============================
``Int(lo, hi)``                ``randint [lo, hi + 1]``    NNI's upper bound is exclusive
``Float(lo, hi)``              ``uniform [lo, hi]``
``Float(lo, hi, log=True)``    ``loguniform [lo, hi]``
``Float(lo, hi, step=q)``      ``quniform [lo, hi, q]``    ``lo`` must be a multiple of q
``Categorical(choices)``       ``choice [choices]``
``Fixed(v)``                   ``choice [v]``              one option reads back as Fixed
=============================  ==========================  ===============================

NNI draws ``quniform`` as ``clip(round(uniform(lo, hi) / q) * q, lo, hi)``: its grid is the
multiples of ``q`` counted from 0, clipped into the bounds, and its end points come up half
as often as the inner points. A bound off that grid would come up as an extra value after
clipping, so such archtune floats are refused; read back, a ``quniform`` maps when no
bound gets clipped (:func:`grid_bounds`). NNI has no integer type with a log scale or a
step (``quniform`` returns floats): ``Int(log=True)`` and ``Int(step=...)`` are refused,
as are ``qloguniform`` and the normal types. Some NNI tuners (TPE, grid search) treat
``randint`` as unordered.

*Names.* Sub-spaces become ``/``-joined keys (``"train/lr"``) and nest again when read.

*Conditions.* NNI's nested choice scopes its branches' keys under the choice, and its
trials receive ``{"block": {"_name": "bottleneck", "width": 32}}``. archtune writes the
same thing as a group whose ``_name`` parameter is the choice and whose other entries
are conditioned on it::

    "block": {"_name": Categorical(["basic", "bottleneck"]),
              "width": Int(16, 64, when={"_name": "bottleneck"})}

    "block": {"_type": "choice", "_value": [
        {"_name": "basic"},
        {"_name": "bottleneck", "width": {"_type": "randint", "_value": [16, 65]}}]}

so configurations have NNI's shape. A key present in every branch (with the same spec)
is unconditional; in some, it gets ``when={"_name": [those branches]}`` (values in the
choice's order). Other conditions have no NNI form and are refused, as are groups
inside a group when written (NNI 3.0's tuners fail with a ``KeyError`` on a choice nested
in a nested choice); read, an inner choice must appear in every branch alike.
:func:`config_from_nni` and :func:`config_to_nni` convert trial parameters (``/`` keys).
``from_nni_json(to_nni_json(space))`` equals ``space``, except that family kinds
(``ResNetSpace``) come back as plain sub-spaces and ``Categorical([v])`` as ``Fixed(v)``.

**Model spaces** (``from_nni``) are in :mod:`spaces.nni_model`.

Example:
    >>> from spaces import SearchSpace, Categorical, Float, Int
    >>> space = SearchSpace({
    ...     "block": {"_name": Categorical(["basic", "bottleneck"]),
    ...               "width": Int(16, 64, when={"_name": "bottleneck"})},
    ...     "train": {"lr": Float(1e-4, 1e-1, log=True)}})
    >>> nni_space = to_nni_json(space)
    >>> sorted(nni_space)
    ['block', 'train/lr']
    >>> nni_space["block"]["_value"][1]["width"]
    {'_type': 'randint', '_value': [16, 65]}
    >>> from_nni_json(nni_space) == space
    True
    >>> config_from_nni(space, {"block": {"_name": "bottleneck", "width": 32}, "train/lr": 0.01})
    {'block': {'_name': 'bottleneck', 'width': 32}, 'train': {'lr': 0.01}}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from spaces.params import Categorical, Fixed, Float, Int, Param, param_from_json
from spaces.space import SEP, SearchSpace, nest

NAME = "_name"
"""The entry of a group that holds NNI's nested choice."""

_REFUSED = {  # NNI types with no archtune parameter, and why
    "qloguniform": "archtune has no log scale with a step",
    "normal": "archtune parameters are bounded; a normal distribution is not",
    "qnormal": "archtune parameters are bounded; a normal distribution is not",
    "lognormal": "archtune parameters are bounded; a log-normal distribution is not",
    "qlognormal": "archtune parameters are bounded; a log-normal distribution is not",
}


# Search-space JSON: archtune -> NNI ------------------------------------------------------
def param_to_nni(param: Param) -> dict[str, Any]:
    """The NNI search-space entry of one parameter (its condition aside).

    Raises:
        ValueError: for a parameter NNI cannot represent exactly (see the module docs).
    """
    if isinstance(param, Fixed):
        return {"_type": "choice", "_value": [param.value]}
    if isinstance(param, Categorical):
        return {"_type": "choice", "_value": list(param.choices)}
    if isinstance(param, Int):
        if param.log or param.step is not None:
            raise ValueError(
                f"{param!r} has no exact NNI type: NNI's only integer type is randint "
                "(no log scale, no step; quniform and qloguniform return floats). Use Int "
                "without log/step, or a Categorical of the values."
            )
        return {"_type": "randint", "_value": [param.low, param.high + 1]}
    if isinstance(param, Float):
        if param.log:
            return {"_type": "loguniform", "_value": [param.low, param.high]}
        if param.step is None:
            return {"_type": "uniform", "_value": [param.low, param.high]}
        if not _on_grid(param.low, param.step):
            raise ValueError(
                f"{param!r} has no exact NNI type: NNI's quniform rounds to multiples of q "
                f"counted from 0 and clips to the bounds, so low={param.low} would come up "
                f"as an extra value. Use a low that is a multiple of {param.step}."
            )
        return {"_type": "quniform", "_value": [param.low, param.high, param.step]}
    raise TypeError(f"{param!r} has no NNI search-space type.")


def to_nni_json(space: SearchSpace) -> dict[str, Any]:
    """NNI's search-space JSON of ``space``: ``/`` keys, groups with ``_name`` as nested choices.

    Raises:
        ValueError: for a parameter or condition NNI cannot represent exactly, a group
            inside a group, or an empty sub-space (it would vanish).
    """
    if NAME in space:
        raise ValueError(f"The root space cannot hold {NAME!r}: NNI skips that key.")
    return {key: spec for key, spec, _ in _emit(space, "", group=False)}


def _emit(space: SearchSpace, prefix: str, group: bool) -> list[tuple[str, dict, tuple | None]]:
    """``(key, spec, allowed _name values or None)`` of each entry of ``space``."""
    if len(space) == 0:
        raise ValueError(
            f"Sub-space {prefix.rstrip(SEP) or '(root)'!r} is empty; NNI has no place for it."
        )
    out: list[tuple[str, dict, tuple | None]] = []
    for name, entry in space.items():
        key = prefix + name
        if group and name == NAME and not prefix:
            continue
        if isinstance(entry, SearchSpace) and NAME in entry:
            out.append((key, _choice(entry, key, inside=group), None))
        elif isinstance(entry, SearchSpace):
            out.extend(_emit(entry, key + SEP, group=False))
        elif entry.when and not (group and not prefix and set(entry.when) == {NAME}):
            raise ValueError(
                f"Parameter {key!r} has when={dict(entry.when)}; NNI's only condition is the "
                f"nested choice, written in archtune as a group: {{'{NAME}': Categorical([...]), "
                f"'{name}': ...(when={{'{NAME}': ...}})}}."
            )
        else:
            try:
                out.append((key, param_to_nni(entry), entry.when[NAME] if entry.when else None))
            except ValueError as e:
                raise ValueError(f"Parameter {key!r}: {e}") from e
    return out


def _choice(group: SearchSpace, key: str, inside: bool) -> dict[str, Any]:
    if inside:
        raise ValueError(
            f"Group {key!r} sits inside another group: NNI 3.0's tuners fail on a choice "
            "nested in a nested choice (KeyError in ParameterSpec.is_activated_in)."
        )
    selector = group[NAME]
    if not isinstance(selector, (Categorical, Fixed)) or selector.when:
        raise ValueError(
            f"{key}/{NAME} must be an unconditional Categorical or Fixed (it is NNI's "
            f"nested choice); got {selector!r}."
        )
    options = selector.choices if isinstance(selector, Categorical) else (selector.value,)
    entries = _emit(group, "", group=True)
    branches = [
        {NAME: o, **{k: spec for k, spec, ok in entries if ok is None or _member(o, ok)}}
        for o in options
    ]
    return {"_type": "choice", "_value": branches}


# Search-space JSON: NNI -> archtune ------------------------------------------------------
def from_nni_json(data: Mapping[str, Any] | str) -> SearchSpace:
    """An archtune space from NNI's search-space JSON (a dict or its JSON text).

    Raises:
        ValueError: for a malformed entry, a type archtune cannot represent exactly, or a
            nested choice that does not fit a group (see the module docs).
    """
    if isinstance(data, str):
        data = json.loads(data)
    if not isinstance(data, Mapping):
        raise ValueError(f"NNI search space must be a dict of name -> spec, got {data!r}.")
    return SearchSpace(nest(_read(data)))


def _read(entries: Mapping[str, Any]) -> dict[str, Any]:
    """``{key: Param or group dict}`` of NNI entries."""
    out: dict[str, Any] = {}
    for key, spec in entries.items():
        if not isinstance(key, str) or not key or key == NAME:
            raise ValueError(f"NNI key {key!r} must be a non-empty string other than {NAME!r}.")
        if not isinstance(spec, Mapping) or set(spec) != {"_type", "_value"}:
            raise ValueError(
                f"NNI entry {key!r} must be {{'_type': .., '_value': [..]}}: {spec!r}."
            )
        value = spec["_value"]
        nested = spec["_type"] == "choice" and isinstance(value, list) and value
        if nested and all(isinstance(v, Mapping) for v in value):
            out[key] = _read_choice(key, value)
        else:
            out[key] = _param_from_spec(key, spec)
    return out


def _read_choice(key: str, branches: list[Mapping[str, Any]]) -> dict[str, Any]:
    if not all(NAME in b for b in branches):
        raise ValueError(f"NNI entry {key!r}: every branch of a nested choice needs {NAME!r}.")
    names = [b[NAME] for b in branches]
    try:
        group: dict[str, Any] = {NAME: Fixed(names[0]) if len(names) == 1 else Categorical(names)}
    except (TypeError, ValueError) as e:
        raise ValueError(f"NNI entry {key!r}: branch names {names}: {e}") from e
    specs: dict[str, Any] = {}
    where: dict[str, list[Any]] = {}
    for name, branch in zip(names, branches, strict=True):
        for k, spec in branch.items():
            if k == NAME:
                continue
            if k in specs and specs[k] != spec:
                raise ValueError(
                    f"NNI key {key!r}: {k!r} differs between branches; archtune needs one "
                    "parameter per name in a group. Rename one of them."
                )
            specs[k] = spec
            where.setdefault(k, []).append(name)
    for k, entry in _read(specs).items():
        if len(where[k]) < len(names):
            if not isinstance(entry, Param) or SEP in k:
                raise ValueError(
                    f"NNI key {key!r}: {k!r} appears in some branches only; archtune can "
                    f"condition a parameter on {NAME!r} of its own group, not a group or a "
                    "parameter of a sub-group."
                )
            entry = param_from_json({**entry.to_json(), "when": {NAME: where[k]}})
        group[k] = entry
    return nest(group)


def _param_from_spec(key: str, spec: Mapping[str, Any]) -> Param:
    kind, value = spec["_type"], spec["_value"]
    try:
        if not isinstance(value, list) or not value:
            raise ValueError("_value must be a non-empty list")
        if kind == "choice":
            return Fixed(value[0]) if len(value) == 1 else Categorical(value)
        if kind in _REFUSED:
            raise ValueError(f"{kind} has no archtune parameter: {_REFUSED[kind]}")
        if kind not in ("randint", "uniform", "loguniform", "quniform"):
            raise ValueError(f"unknown NNI type {kind!r}")
        if len(value) != (3 if kind == "quniform" else 2):
            raise ValueError(f"{kind} takes {3 if kind == 'quniform' else 2} values")
        if kind == "randint":
            low, high = value
            if any(isinstance(v, bool) or not isinstance(v, int) for v in value) or high <= low:
                raise ValueError("randint needs ints low < high (high exclusive)")
            return Fixed(low) if high == low + 1 else Int(low, high - 1)
        if kind == "quniform":
            low, high = grid_bounds(*value)
            return Fixed(low) if low == high else Float(low, high, step=value[2])
        return Float(value[0], value[1], log=kind == "loguniform")
    except (TypeError, ValueError) as e:
        raise ValueError(f"NNI entry {key!r} ({dict(spec)}): {str(e).rstrip('.')}.") from e


def grid_bounds(low: float, high: float, q: float) -> tuple[float, float]:
    """First and last value of NNI's ``clip(round(uniform(low, high) / q) * q, low, high)``.

    The values are the multiples of ``q`` in ``[low, high]`` exactly when the clip never
    changes a value: ``low`` is a multiple of ``q`` or rounds up to one (at least half a
    step above the one below), and ``high`` is a multiple or rounds down to one. So
    ``[1.5, 4.5, 1]`` (NNI's idiom for integers) draws 2, 3 and 4.

    Raises:
        ValueError: when a bound would round outside the range: NNI then draws the bound
            itself, an extra value off the grid (``[2, 10, 5]`` draws 2, 5 and 10).
    """
    for v in (low, high, q):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"quniform takes finite numbers, got {v!r}")
    if q <= 0 or high <= low:
        raise ValueError("quniform needs low < high and q > 0")

    def end(bound: float, lower: bool) -> float:
        if _on_grid(bound, q):
            return bound
        k = bound / q
        frac = k - math.floor(k)
        if lower and frac >= 0.5 - 1e-9:
            return math.ceil(k) * q
        if not lower and frac <= 0.5 + 1e-9:
            return math.floor(k) * q
        raise ValueError(
            f"bound {bound} rounds to a multiple of q={q} outside the range, so NNI would "
            "draw the bound itself after clipping, an extra value off the grid"
        )

    low_end, high_end = end(low, True), end(high, False)
    if low_end > high_end:
        raise ValueError(f"no multiple of q={q} lies in [{low}, {high}]")
    return low_end, high_end


def _on_grid(value: float, step: float) -> bool:
    k = value / step
    return math.isclose(k, round(k), rel_tol=1e-9, abs_tol=1e-12)


def _member(value: Any, allowed: tuple[Any, ...]) -> bool:
    return any(type(value) is type(a) and value == a for a in allowed)


# Trial parameters ---------------------------------------------------------------------
def config_to_nni(space: SearchSpace, config: Mapping[str, Any]) -> dict[str, Any]:
    """An archtune configuration as the parameters an NNI trial of ``to_nni_json(space)`` gets.

    Raises:
        ValueError: if ``config`` does not fit ``space``.
    """

    def flat(node: SearchSpace, values: Mapping[str, Any], prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, entry in node.items():
            if name not in values:
                continue
            if isinstance(entry, SearchSpace) and NAME not in entry:
                out.update(flat(entry, values[name], f"{prefix}{name}{SEP}"))
            elif isinstance(entry, SearchSpace):
                out[prefix + name] = flat(entry, values[name], "")
            else:
                out[prefix + name] = values[name]
        return out

    return flat(space, space.check_config(config), "")


def config_from_nni(space: SearchSpace, params: Mapping[str, Any]) -> dict[str, Any]:
    """The archtune configuration of NNI trial parameters drawn from ``to_nni_json(space)``.

    Stepped floats are snapped onto archtune's grid (``low + k * step``), so that equal
    choices give equal configurations (and architecture ids).

    Raises:
        ValueError: for an unknown, missing, inactive or out-of-range value.
    """

    def nest(node: SearchSpace, values: Mapping[str, Any], where: str) -> dict[str, Any]:
        if not isinstance(values, Mapping):
            raise ValueError(f"NNI parameter {where!r} must be a dict, got {values!r}.")
        out: dict[str, Any] = {}
        for key, value in values.items():
            *groups, leaf = key.split(SEP)
            target, sub = node, out
            for g in groups:
                target, sub = target.get(g), sub.setdefault(g, {})
                if not isinstance(target, SearchSpace) or NAME in target:
                    raise ValueError(f"NNI parameter {where + key!r} is not in the space.")
            entry = target.get(leaf)
            if isinstance(entry, SearchSpace):
                value = nest(entry, value, f"{where}{key}{SEP}")
            elif isinstance(entry, Float) and entry.step is not None and _is_real(value):
                k = round((value - entry.low) / entry.step)
                grid = min(entry.low + k * entry.step, entry.high)
                value = grid if abs(grid - value) <= 1e-9 * max(1.0, abs(value)) else value
            elif entry is None:
                raise ValueError(f"NNI parameter {where + key!r} is not in the space.")
            sub[leaf] = value
        return out

    return space.check_config(nest(space, params, ""))


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
