"""Constraints on model statistics, and the canonical architecture id."""

from __future__ import annotations

import math

import pytest

from spaces import Categorical, Constraint, Float, Int, ResNetSpace, SearchSpace, TrainingSpace


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metric": "accuracy", "max": 1}, r"unknown metric 'accuracy'; constrain one of \["),
        ({"metric": "params"}, "needs max"),
        ({"metric": "flops", "max": 1, "min": 2}, "min 2 > max 1"),
        ({"metric": "params", "max": math.inf}, "finite"),
        ({"metric": "params", "max": "big"}, "finite"),
    ],
)
def test_bad_constraints_raise(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        Constraint(**kwargs)


def test_violations_say_by_how_much() -> None:
    c = Constraint("flops", min=1e3, max=1e6)
    assert c.violation({"flops": 5e5}) is None
    assert c.violation({"flops": 2e6}) == "flops = 2e+06 > max 1e+06"
    assert c.violation({"flops": 10}) == "flops = 10 < min 1000"
    with pytest.raises(ValueError, match="lack 'flops'"):
        c.violation({"params": 1})


def test_constraints_survive_json_and_must_be_constraints() -> None:
    space = SearchSpace({"x": Int(1, 3)}, constraints=[Constraint("params", max=1e6)])
    again = SearchSpace.from_json(space.dumps())
    assert again.constraints == space.constraints and again == space
    assert again != SearchSpace({"x": Int(1, 3)})
    with pytest.raises(TypeError, match="Constraint"):
        SearchSpace({"x": Int(1, 3)}, constraints=[{"metric": "params", "max": 1}])


def _arch_space() -> SearchSpace:
    return SearchSpace(
        {
            "model": ResNetSpace(depth=Int(1, 3), width=Categorical([8, 16])),
            "train": TrainingSpace(lr=Float(1e-3, 1e-1, log=True)),
            "extra": {
                "mode": Categorical(["a", "b"]),
                "knob": Int(1, 5, when={"mode": "b"}),
            },
        }
    )


def test_arch_id_ignores_training_knobs() -> None:
    space = _arch_space()
    a = space.unflatten({"model/depth": 2, "model/width": 8, "train/lr": 0.01, "extra/mode": "a"})
    b = space.unflatten({"model/depth": 2, "model/width": 8, "train/lr": 0.05, "extra/mode": "a"})
    c = space.unflatten({"model/depth": 3, "model/width": 8, "train/lr": 0.01, "extra/mode": "a"})
    assert space.arch_id(a) == space.arch_id(b)
    assert space.arch_id(a) != space.arch_id(c)
    assert len(space.arch_id(a)) == 16


def test_arch_id_without_a_family_ignores_inactive_choices() -> None:
    space = SearchSpace({"mode": Categorical(["a", "b"]), "knob": Int(1, 5, when={"mode": "b"})})
    x = space.unflatten({"mode": "a", "knob": 1})
    y = space.unflatten({"mode": "a", "knob": 5})
    z = space.unflatten({"mode": "b", "knob": 5})
    assert x == y and space.arch_id(x) == space.arch_id(y) != space.arch_id(z)
