"""Adapter between archtune spaces and Ray Tune param spaces (``ray.tune.search.sample``).

A Ray Tune ``param_space`` is a nested dict of constants and sampling domains; archtune's
nesting maps onto it one to one. What each parameter becomes, and the edge cases of
Ray Tune 2.60 that the tests pin by sampling the domains:

============================  ===================================  ===========================
archtune                      Ray Tune                             why
============================  ===================================  ===========================
``Int(lo, hi)``               ``tune.randint(lo, hi + 1)``         Tune's upper bound is
                                                                   exclusive
``Int(lo, hi, log=True)``     ``tune.lograndint(lo, hi + 1)``      exclusive too; Tune floors
                                                                   ``exp(uniform)``, archtune
                                                                   rounds: same values
``Int(lo, hi, step=1)``       ``tune.qrandint(lo, hi + 1, 1)``     ``qrandint`` is exclusive
                                                                   only for ``q == 1``
``Int(lo, hi, step=q)``       ``tune.qrandint(lo, hi, q)``         inclusive for ``q > 1``;
                                                                   needs ``lo % q == 0``
``Float(lo, hi)``             ``tune.uniform(lo, hi)``
``Float(lo, hi, log=True)``   ``tune.loguniform(lo, hi)``
``Float(lo, hi, step=q)``     ``tune.quniform(lo, hi, q)``         needs ``lo`` a multiple of q
``Categorical(choices)``      ``tune.choice(choices)``             types kept (no numpy
                                                                   coercion)
``Fixed(v)`` / constant       ``v``
============================  ===================================  ===========================

Ray's quantised domains count their grid from 0 (``qrandint(1, 9, 2)`` draws 2, 4, 6, 8),
archtune's from ``low``; a stepped parameter whose ``low`` is not a multiple of its step
has no exact Ray domain and is refused. ``tune.quniform`` draws ``uniform(lo, hi)`` and
rounds to a multiple of ``q``, so the two end points come up half as often as the inner
grid points, and the rounded value can overshoot ``hi`` by one float ulp
(``quniform(0, 0.7, 0.1)`` yields ``0.7000000000000001``); :func:`config_from_ray`
snaps such values back onto archtune's grid before checking them.

Conditional parameters (``when=``) are refused: Tune can express them only through
``tune.sample_from``, which its searchers cannot see into. Run such spaces through
archtune's own Optuna-based search (``studies.Study``). Family kinds (``ResNetSpace``)
have no place in a param space: :func:`from_ray_tune` returns plain spaces.

Ray is imported when a function is called, not with this module, so that
``import spaces`` stays light.

Example:
    >>> from spaces import SearchSpace, Int, Float
    >>> space = SearchSpace({"depth": Int(1, 4), "opt": {"lr": Float(1e-3, 1.0, log=True)}})
    >>> param_space = to_ray_tune(space)
    >>> param_space["depth"].lower, param_space["depth"].upper
    (1, 5)
    >>> from_ray_tune(param_space) == space
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from spaces.params import Categorical, Fixed, Float, Int, Param
from spaces.space import SearchSpace


def param_to_ray(param: Param) -> Any:
    """The Ray Tune domain of one parameter (the value itself for a ``Fixed``).

    Raises:
        ValueError: for a stepped parameter whose ``low`` is not a multiple of its step.
        TypeError: for an unknown parameter type.
    """
    from ray import tune

    if isinstance(param, Fixed):
        return param.value
    if isinstance(param, Categorical):
        return tune.choice(list(param.choices))
    if isinstance(param, Int):
        if param.log:
            return tune.lograndint(param.low, param.high + 1)
        if param.step is None:
            return tune.randint(param.low, param.high + 1)
        if param.step == 1:
            return tune.qrandint(param.low, param.high + 1, 1)
        _require_zero_anchored(param, param.step)
        return tune.qrandint(param.low, param.high, param.step)
    if isinstance(param, Float):
        if param.log:
            return tune.loguniform(param.low, param.high)
        if param.step is None:
            return tune.uniform(param.low, param.high)
        _require_zero_anchored(param, param.step)
        return tune.quniform(param.low, param.high, param.step)
    raise TypeError(f"{param!r} has no Ray Tune domain.")


def to_ray_tune(space: SearchSpace) -> dict[str, Any]:
    """The nested Ray Tune ``param_space`` of ``space``, constants included.

    Raises:
        ValueError: if ``space`` has conditional parameters, or a parameter Ray cannot
            express exactly (see the module docstring).
    """
    conditional = sorted(space.conditions())
    if conditional:
        raise ValueError(
            f"Conditional parameters {conditional} cannot be expressed faithfully in a Ray "
            "Tune param space (only tune.sample_from could, and Tune's searchers cannot see "
            "into it); run this space through archtune's Optuna-based search (studies.Study) "
            "instead, or drop the when= conditions."
        )
    return _to_ray(space)


def _to_ray(space: SearchSpace) -> dict[str, Any]:
    return {
        name: _to_ray(entry) if isinstance(entry, SearchSpace) else param_to_ray(entry)
        for name, entry in space.items()
    }


def _require_zero_anchored(param: Int | Float, step: float) -> None:
    k = param.low / step
    if not math.isclose(k, round(k), rel_tol=1e-9, abs_tol=1e-12):
        raise ValueError(
            f"{param!r} has no exact Ray Tune domain: Ray's quantised domains hold the "
            f"multiples of q counted from 0, archtune's grid starts at low={param.low}. "
            f"Use a low that is a multiple of {param.step}, or a Categorical of the values."
        )


def param_from_ray(domain: Any, path: str = "?") -> Param:
    """The archtune parameter of one Ray Tune domain that maps exactly.

    Args:
        domain: A ``ray.tune.search.sample.Domain``.
        path: Where the domain sits in the param space, for error messages.

    Raises:
        ValueError: for a domain archtune has no exact parameter for (normal, quantised
            log, ``sample_from``, grid search, a custom sampler, an empty range).
    """
    try:
        result = _convert(domain)
    except (TypeError, ValueError) as e:
        result = str(e).rstrip(".")
    if isinstance(result, str):
        raise ValueError(f"Ray Tune domain at {path!r} ({domain.domain_str}): {result}.")
    return result


def _convert(domain: Any) -> Param | str:
    """The parameter of ``domain``, or why there is none."""
    from ray.tune.search import sample as rs

    sampler = domain.get_sampler()
    q = None
    if isinstance(sampler, rs.Quantized):
        q, sampler = sampler.q, sampler.get_sampler()
    if isinstance(domain, rs.Function):
        return (
            "tune.sample_from runs arbitrary code archtune cannot inspect; "
            "write a parameter instead, with when= for a condition"
        )
    if isinstance(sampler, rs.Grid):
        return "grid search has no archtune parameter; use Categorical"
    if isinstance(sampler, (rs.Float._LogUniform, rs.Integer._LogUniform)) and q is not None:
        return "archtune has no log scale with a step (qloguniform / qlograndint)"
    if isinstance(sampler, rs.Float._Normal):
        return "archtune parameters are bounded; a normal distribution is not"
    if isinstance(sampler, rs.Categorical._Uniform):
        return Categorical(list(domain.categories))
    if isinstance(sampler, rs.Float._Uniform):
        return Float(domain.lower, domain.upper, step=q)
    if isinstance(sampler, rs.Float._LogUniform):
        return Float(domain.lower, domain.upper, log=True)
    if isinstance(sampler, rs.Integer._LogUniform):
        return _int_or_fixed(domain.lower, domain.upper - 1, log=True)
    if isinstance(sampler, rs.Integer._Uniform):
        return _int_from_ray(domain.lower, domain.upper, q)
    return f"sampler {type(sampler).__name__} has no archtune parameter"


def _int_from_ray(lower: int, upper: int, q: int | None) -> Param:
    if q is None:
        return _int_or_fixed(lower, upper - 1)
    if q == 1:  # Ray: qrandint with q == 1 keeps randint's exclusive upper bound
        return Int(lower, upper - 1, step=1)
    lo, hi = math.ceil(lower / q) * q, math.floor(upper / q) * q  # Ray rounds inwards
    if lo > hi:
        raise ValueError(f"no multiple of q={q} lies in [{lower}, {upper}]")
    return Fixed(lo) if lo == hi else Int(lo, hi, step=q)


def _int_or_fixed(low: int, high: int, log: bool = False) -> Param:
    if high < low:
        raise ValueError(f"the range [{low}, {high + 1}) is empty")
    return Fixed(low) if high == low else Int(low, high, log=log)


def from_ray_tune(param_space: Mapping[str, Any]) -> SearchSpace:
    """An archtune space from a nested Ray Tune ``param_space``.

    Domains map as in the module docstring's table, read backwards; a ``randint`` with a
    single value becomes a ``Fixed``. Plain JSON scalars become constants.

    Raises:
        ValueError: for a domain or constant archtune cannot represent exactly.
    """
    return SearchSpace(_from_ray(param_space, ""))


def _from_ray(node: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    from ray.tune.search.sample import Domain

    entries: dict[str, Any] = {}
    for name, value in node.items():
        path = f"{prefix}{name}"
        if isinstance(value, Domain):
            entries[name] = param_from_ray(value, path)
        elif isinstance(value, Mapping) and set(value) == {"grid_search"}:
            raise ValueError(
                f"{path!r} is a tune.grid_search, which has no archtune parameter; "
                "use Categorical."
            )
        elif isinstance(value, Mapping):
            entries[name] = _from_ray(value, f"{path}/")
        elif value is None or isinstance(value, (bool, int, float, str)):
            entries[name] = Fixed(value)
        else:
            raise ValueError(
                f"{path!r} = {value!r} is neither a Ray Tune domain nor a str/int/float/bool/"
                "None constant; archtune cannot hold it."
            )
    return entries


def config_from_ray(space: SearchSpace, config: Mapping[str, Any]) -> dict[str, Any]:
    """Check a configuration Ray Tune sampled from ``to_ray_tune(space)``; return it canonical.

    Stepped floats are snapped onto archtune's grid (``low + k * step``, at most ``high``),
    which undoes the float ulp that Ray's ``quniform`` rounding may leave; every other
    value must already lie in the space.

    Raises:
        ValueError: for a value outside the space, an unknown or a missing key.
    """
    flat = dict(space.flatten_config(config))
    leaves = space.flatten()
    for path, value in flat.items():
        param = leaves[path]
        if isinstance(param, Float) and param.step is not None:
            flat[path] = _snap(param, param.step, value)
    snapped = _replace(config, flat)
    return space.check_config(snapped)


def _snap(param: Float, step: float, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    grid = min(param.low + round((value - param.low) / step) * step, param.high)
    return grid if abs(grid - value) <= 1e-9 * max(1.0, abs(value)) else value


def _replace(config: Mapping[str, Any], flat: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: _replace(v, {}) if isinstance(v, Mapping) else v for k, v in config.items()}
    for path, value in flat.items():
        node = out
        *parents, leaf = path.split("/")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return out
