"""SearchSpace: nesting, flat view, unflatten checks, JSON, families."""

from __future__ import annotations

import pytest

from spaces import (
    Categorical,
    Fixed,
    Float,
    Int,
    ResNetSpace,
    SearchSpace,
    TrainingSpace,
)


def _space() -> SearchSpace:
    return SearchSpace(
        {
            "model": ResNetSpace(stages=2, depth=Int(1, 4), width=Categorical([16, 32])),
            "train": TrainingSpace(
                lr=Float(1e-4, 1e-1, log=True), precision=Categorical(["fp32", "bf16"])
            ),
            "note": "constant",
        }
    )


def test_flatten_lists_decisions_and_constants() -> None:
    space = _space()
    assert set(space.decisions()) == {"model/depth", "model/width", "train/lr", "train/precision"}
    flat = space.flatten()
    assert flat["model/stages"] == Fixed(2)
    assert flat["note"] == Fixed("constant")
    assert flat["train/optimizer"] == Fixed("adamw")


def test_unflatten_nests_and_fills_constants() -> None:
    config = _space().unflatten(
        {"model/depth": 3, "model/width": 32, "train/lr": 0.01, "train/precision": "bf16"}
    )
    assert config["model"] == {"stages": 2, "depth": 3, "width": 32}
    assert config["train"]["lr"] == 0.01 and config["train"]["batch_size"] == 64
    assert config["note"] == "constant"
    assert _space().flatten_config(config)["model/depth"] == 3


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"model/depth": 3, "model/width": 32, "train/lr": 0.01}, "Missing value"),
        (
            {"model/depth": 9, "model/width": 32, "train/lr": 0.01, "train/precision": "fp32"},
            "outside",
        ),
        (
            {
                "model/depth": 1,
                "model/width": 32,
                "train/lr": 0.01,
                "train/precision": "fp32",
                "model/kernel": 3,
            },
            "Unknown parameter",
        ),
    ],
)
def test_unflatten_rejects_bad_proposals(values, match) -> None:
    with pytest.raises(ValueError, match=match):
        _space().unflatten(values)


def test_json_round_trip_keeps_family_kinds() -> None:
    space = _space()
    again = SearchSpace.from_json(space.dumps())
    assert again == space
    assert isinstance(again["model"], ResNetSpace)
    assert isinstance(again["train"], TrainingSpace)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: SearchSpace({"a/b": Int(1, 2)}), ValueError, "contain no '/'"),
        (lambda: SearchSpace({1: Int(1, 2)}), TypeError, "must be a string"),
        (lambda: SearchSpace({"a": object()}), TypeError, "is not a parameter"),
        (lambda: ResNetSpace(kernel=3), TypeError, r"valid knobs: \['depth', 'stages', 'width'\]"),
        (lambda: ResNetSpace(depth=Float(1.0, 3.0)), ValueError, "integer; use Int"),
        (lambda: ResNetSpace(stages=Int(1, 9)), ValueError, r"in \[1, 6\]"),
        (
            lambda: TrainingSpace(optimizer=Categorical(["adamw", "lion"])),
            ValueError,
            r"unsupported value\(s\) \['lion'\]",
        ),
        (lambda: TrainingSpace(precision="fp8"), ValueError, "supported"),
        (lambda: TrainingSpace(lr=Float(0.0, 1.0)), ValueError, "takes numbers in"),
        (lambda: TrainingSpace(dropout=0.5), TypeError, "unknown knob"),
        (
            lambda: SearchSpace.from_json({"type": "space", "kind": "vit", "entries": {}}),
            ValueError,
            "known kinds",
        ),
    ],
)
def test_invalid_spaces_raise_with_a_fix(make, error, match) -> None:
    with pytest.raises(error, match=match):
        make()
