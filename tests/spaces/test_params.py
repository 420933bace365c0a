"""Parameters: validation messages, membership, JSON round trip."""

from __future__ import annotations

import json

import pytest

from spaces import Categorical, Fixed, Float, Int, param_from_json


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: Float(1.0, 0.5), ValueError, "low must be smaller than high"),
        (lambda: Float(1.0, 1.0), ValueError, "use Fixed"),
        (lambda: Int(5, 2), ValueError, "swap them"),
        (lambda: Float(0.0, 1.0, log=True), ValueError, "log scale needs low > 0"),
        (lambda: Int(-1, 4, log=True), ValueError, "log scale needs low > 0"),
        (lambda: Float(0.0, 1.0, step=0.3), ValueError, "step must divide"),
        (lambda: Int(0, 10, step=3), ValueError, "step must divide"),
        (lambda: Float(1e-3, 1.0, log=True, step=0.001), ValueError, "cannot be combined"),
        (lambda: Float(0.0, 1.0, step=-0.1), ValueError, "positive number"),
        (lambda: Float(0.0, float("inf")), ValueError, "finite"),
        (lambda: Int(1.5, 3), TypeError, "must be an int"),
        (lambda: Float("a", 3), TypeError, "must be a number"),
        (lambda: Categorical([]), ValueError, "choices is empty"),
        (lambda: Categorical("abc"), TypeError, "must be a list"),
        (lambda: Categorical([1, 1]), ValueError, "duplicates"),
        (lambda: Categorical([[1, 2]]), TypeError, "is not a str"),
        (lambda: Fixed([1]), TypeError, "must be a str"),
    ],
)
def test_invalid_parameters_raise_with_a_fix(make, error, match) -> None:
    with pytest.raises(error, match=match):
        make()


def test_membership_honours_bounds_step_and_type() -> None:
    f = Float(0.0, 0.8, step=0.2)
    assert f.contains(0.4) and f.contains(0.8) and f.contains(0)
    assert not f.contains(0.5) and not f.contains(1.0) and not f.contains(True)
    i = Int(1, 4)
    assert i.contains(1) and i.contains(4)
    assert not i.contains(2.0) and not i.contains(5) and not i.contains(True)
    c = Categorical([1, "1", True, None])
    assert c.contains(1) and c.contains("1") and c.contains(True) and c.contains(None)
    assert not c.contains(1.0) and not c.contains(False)


@pytest.mark.parametrize(
    "param",
    [
        Float(1e-5, 1.0, log=True),
        Float(0.0, 1.0, step=0.25),
        Int(1, 64, log=True),
        Int(0, 12, step=4),
        Categorical(["fp32", "bf16", None, 3, 2.5, False]),
        Fixed("x"),
        Fixed(None),
    ],
)
def test_json_round_trip(param) -> None:
    text = json.dumps(param.to_json())
    again = param_from_json(json.loads(text))
    assert again == param
    assert type(again) is type(param)


def test_unknown_json_type_lists_known_types() -> None:
    with pytest.raises(ValueError, match="known types"):
        param_from_json({"type": "gaussian"})
