"""The Ray Tune adapter: conversions both ways, and Ray 2.60's edge cases pinned by sampling.

Every domain is sampled with Ray's own sampler (``domain.sample(random_state=...)``),
so a change in Tune's bounds or rounding shows up here, not in a study.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest
from ray import tune
from ray.tune.search import sample as rs
from ray.tune.search.variant_generator import generate_variants

from spaces import Categorical, Fixed, Float, Int, ResNetSpace, SearchSpace
from spaces.ray_adapter import config_from_ray, from_ray_tune, param_to_ray, to_ray_tune

N = 4000


def _draw(domain: rs.Domain, n: int = N, seed: int = 0) -> list:
    return list(domain.sample(size=n, random_state=np.random.default_rng(seed)))


def _space() -> SearchSpace:
    return SearchSpace(
        {
            "a": Int(1, 4),
            "b": Int(2, 64, log=True),
            "c": Int(0, 12, step=4),
            "d": Int(3, 7, step=1),
            "g": {
                "lr": Float(1e-5, 1.0, log=True),
                "p": Float(0.0, 0.8, step=0.2),
                "u": Float(-1.0, 1.0),
                "c": Categorical(["x", None, 3, 1.5, True]),
            },
            "k": Fixed(7),
            "s": "text",
        }
    )


# Conversions ----------------------------------------------------------------------------
def test_to_ray_tune_shifts_integer_upper_bounds_and_keeps_nesting() -> None:
    ps = to_ray_tune(_space())
    assert (ps["a"].lower, ps["a"].upper) == (1, 5)  # randint: upper exclusive
    assert (ps["b"].lower, ps["b"].upper) == (2, 65)  # lograndint: upper exclusive
    assert (ps["c"].lower, ps["c"].upper, ps["c"].sampler.q) == (0, 12, 4)  # q > 1: inclusive
    assert (ps["d"].lower, ps["d"].upper, ps["d"].sampler.q) == (3, 8, 1)  # q == 1: exclusive
    assert (ps["g"]["p"].lower, ps["g"]["p"].upper, ps["g"]["p"].sampler.q) == (0.0, 0.8, 0.2)
    assert isinstance(ps["g"]["lr"].sampler, rs.Float._LogUniform)
    assert ps["g"]["c"].categories == ["x", None, 3, 1.5, True]
    assert ps["k"] == 7 and ps["s"] == "text"


def test_round_trip_through_ray_tune() -> None:
    space = _space()
    assert from_ray_tune(to_ray_tune(space)) == space


def test_family_kind_is_not_carried_but_its_parameters_are() -> None:
    space = SearchSpace({"model": ResNetSpace(stages=2, depth=Int(1, 3), width=16)})
    back = from_ray_tune(to_ray_tune(space))
    assert type(back["model"]) is SearchSpace
    assert back.flatten() == space.flatten()


def test_ray_resolves_the_param_space_into_configs_of_the_space() -> None:
    space = _space()
    rng = np.random.default_rng(0)
    for _ in range(30):
        [(_, config)] = generate_variants(to_ray_tune(space), random_state=rng)
        normal = config_from_ray(space, config)
        assert space.check_config(normal) == normal
        assert normal["k"] == 7 and normal["s"] == "text"


# Edge cases, pinned by sampling Ray's domains -------------------------------------------
def test_randint_and_lograndint_hit_both_bounds_and_never_high_plus_one() -> None:
    for param in (Int(1, 4), Int(2, 9, log=True), Int(-3, 3)):
        values = set(_draw(param_to_ray(param)))
        assert values == set(range(param.low, param.high + 1)), param
    # Ray's own bounds: randint's upper is exclusive.
    assert set(_draw(tune.randint(1, 4))) == {1, 2, 3}
    assert set(_draw(tune.lograndint(2, 9))) == set(range(2, 9))


def test_qrandint_upper_is_inclusive_for_q_above_one_and_exclusive_for_q_one() -> None:
    assert set(_draw(tune.qrandint(2, 10, 2))) == {2, 4, 6, 8, 10}
    assert set(_draw(tune.qrandint(2, 10, 1))) == set(range(2, 10))
    assert set(_draw(param_to_ray(Int(0, 12, step=4)))) == {0, 4, 8, 12}
    assert set(_draw(param_to_ray(Int(3, 7, step=1)))) == set(range(3, 8))


def test_ray_quantised_grids_are_anchored_at_zero_so_off_grid_lows_are_refused() -> None:
    assert set(_draw(tune.qrandint(1, 9, 2))) == {2, 4, 6, 8}  # not 1, 3, 5, 7, 9
    with pytest.raises(ValueError, match="not divisible"):
        tune.quniform(0.05, 0.85, 0.2)  # Ray refuses this one itself
    with pytest.raises(ValueError, match="multiples of q counted from 0"):
        to_ray_tune(SearchSpace({"a": Int(1, 9, step=2)}))
    with pytest.raises(ValueError, match="multiples of q counted from 0"):
        to_ray_tune(SearchSpace({"f": Float(0.05, 0.85, step=0.2)}))


def test_quniform_stays_on_the_grid_with_half_weight_ends_and_an_ulp_overshoot() -> None:
    param = Float(0.0, 0.7, step=0.1)
    values = _draw(param_to_ray(param), n=20000)
    counts = collections.Counter(round(v, 9) for v in values)
    assert sorted(counts) == [round(0.1 * k, 9) for k in range(8)]
    inner = np.mean([counts[round(0.1 * k, 9)] for k in range(1, 7)])
    assert 0.4 < counts[0.0] / inner < 0.6 and 0.4 < counts[0.7] / inner < 0.6
    # Ray rounds 0.7 / 0.1 * 0.1 to 0.7000000000000001, past archtune's inclusive bound ...
    assert max(values) == 0.7000000000000001 and not param.contains(max(values))
    # ... and config_from_ray snaps it back onto archtune's grid.
    space = SearchSpace({"f": param})
    assert config_from_ray(space, {"f": max(values)}) == {"f": 0.7}
    assert all(space.check_config(config_from_ray(space, {"f": v})) for v in values[:200])


def test_config_from_ray_refuses_values_off_the_grid_and_unknown_keys() -> None:
    space = SearchSpace({"f": Float(0.0, 0.8, step=0.2), "g": {"a": Int(1, 3)}})
    with pytest.raises(ValueError, match="outside"):
        config_from_ray(space, {"f": 0.3, "g": {"a": 1}})
    with pytest.raises(ValueError, match="does not use"):
        config_from_ray(space, {"f": 0.2, "g": {"a": 1, "zz": 2}})


def test_loguniform_and_uniform_stay_in_bounds() -> None:
    for param in (Float(1e-5, 1.0, log=True), Float(-1.0, 1.0)):
        values = _draw(param_to_ray(param))
        assert all(param.contains(v) for v in values)


def test_choice_keeps_python_types() -> None:
    choices = ["x", None, 3, 1.5, True]
    values = _draw(param_to_ray(Categorical(choices)))
    seen = {(type(v), v) for v in values}
    assert seen == {(type(c), c) for c in choices}


# Refusals ------------------------------------------------------------------------------
def test_conditional_spaces_are_refused_with_the_way_out() -> None:
    space = SearchSpace({"block": Categorical(["a", "b"]), "w": Int(1, 4, when={"block": "b"})})
    with pytest.raises(ValueError, match="Optuna-based search"):
        to_ray_tune(space)


@pytest.mark.parametrize(
    ("domain", "match"),
    [
        (tune.randn(0.0, 1.0), "normal"),
        (tune.qrandn(0.0, 1.0, 0.5), "normal"),
        (tune.qloguniform(1.0, 10.0, 1.0), "log scale with a step"),
        (tune.qlograndint(2, 10, 2), "log scale with a step"),
        (tune.sample_from(lambda config: 1), "sample_from"),
        (rs.Categorical([1, 2]).grid(), "grid search"),
        (tune.randint(1.0, 3.0), "must be an int"),
        (tune.randint(3, 3), "empty"),
    ],
)
def test_from_ray_tune_refuses_what_does_not_map_exactly(domain, match) -> None:
    with pytest.raises(ValueError, match=match):
        from_ray_tune({"g": {"x": domain}})


def test_from_ray_tune_refuses_grid_search_and_non_scalar_constants() -> None:
    with pytest.raises(ValueError, match="grid_search"):
        from_ray_tune({"x": tune.grid_search([1, 2])})
    with pytest.raises(ValueError, match="neither a Ray Tune domain"):
        from_ray_tune({"x": [1, 2]})


def test_from_ray_tune_maps_ray_only_forms_exactly() -> None:
    space = from_ray_tune(
        {
            "one": tune.randint(3, 4),  # a single value
            "odd": tune.qrandint(1, 9, 2),  # Ray rounds the bounds inwards: 2..8
            "q1": tune.qrandint(1, 10),  # q defaults to 1: exclusive
            "raw": rs.Float(0.5, 2.0),  # no sampler set: uniform
        }
    )
    assert space["one"] == Fixed(3)
    assert space["odd"] == Int(2, 8, step=2)
    assert space["q1"] == Int(1, 9, step=1)
    assert space["raw"] == Float(0.5, 2.0)
