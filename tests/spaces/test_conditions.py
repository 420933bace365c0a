"""Conditional parameters: activity, validation, Optuna define-by-run, round trips."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest

from spaces import Categorical, Fixed, Float, Int, SearchSpace
from spaces.optuna_adapter import suggest


def _space() -> SearchSpace:
    return SearchSpace(
        {
            "block": Categorical(["basic", "bottleneck"]),
            "bottleneck_width": Int(16, 64, when={"block": "bottleneck"}),
            "squeeze": Categorical([True, False], when={"block": ["bottleneck"]}),
            "se_ratio": Float(0.1, 0.5, when={"squeeze": True}),
            "train": {
                "opt": Categorical(["sgd", "adamw"]),
                "momentum": Float(0.5, 0.99, when={"opt": "sgd"}),
            },
            "tag": Fixed("v1", when={"block": "basic"}),
        }
    )


def test_only_active_decisions_enter_the_configuration() -> None:
    space = _space()
    basic = space.unflatten(
        {"block": "basic", "train/opt": "adamw", "bottleneck_width": 32}
    )  # inactive value: dropped
    assert basic == {"block": "basic", "train": {"opt": "adamw"}, "tag": "v1"}
    deep = space.unflatten(
        {
            "block": "bottleneck",
            "bottleneck_width": 32,
            "squeeze": True,
            "se_ratio": 0.25,
            "train/opt": "sgd",
            "train/momentum": 0.9,
        }
    )
    assert deep == {
        "block": "bottleneck",
        "bottleneck_width": 32,
        "squeeze": True,
        "se_ratio": 0.25,
        "train": {"opt": "sgd", "momentum": 0.9},
    }
    with pytest.raises(ValueError, match="Missing value for parameter 'se_ratio'"):
        space.unflatten(
            {"block": "bottleneck", "bottleneck_width": 32, "squeeze": True, "train/opt": "adamw"}
        )


def test_parents_come_before_children_whatever_the_declaration_order() -> None:
    space = SearchSpace(
        {"child": Int(1, 2, when={"parent": "on"}), "parent": Categorical(["on", "off"])}
    )
    assert list(space.flatten()) == ["parent", "child"]


@pytest.mark.parametrize(
    ("entries", "match"),
    [
        ({"a": Int(1, 2, when={"nope": 1})}, "conditioned on 'nope', which is not a parameter"),
        ({"a": Categorical(["x"]), "b": Int(1, 2, when={"a": "y"})}, r"lists \['y'\]"),
        ({"a": Int(1, 2, when={"b": 1}), "b": Int(1, 2, when={"a": 1})}, "cycle"),
        ({"a": Int(1, 2, when={"a": 1})}, "cycle"),
    ],
)
def test_bad_conditions_raise_at_construction(entries, match) -> None:
    with pytest.raises(ValueError, match=match):
        SearchSpace(entries)


@pytest.mark.parametrize("when", [{}, "block", {"block": []}, {"block": [[1]]}])
def test_malformed_when_is_refused(when) -> None:
    with pytest.raises((TypeError, ValueError)):
        Int(1, 2, when=when)


def test_json_round_trip_keeps_conditions_and_configs() -> None:
    space = _space()
    again = SearchSpace.from_json(json.loads(space.dumps()))
    assert again == space and again.conditions() == space.conditions()
    rng = np.random.default_rng(0)
    for _ in range(30):
        config = space.sample(rng)
        assert space.check_config(json.loads(json.dumps(config))) == config


def test_check_config_rejects_inactive_and_unknown_values() -> None:
    space = _space()
    with pytest.raises(ValueError, match="does not use"):
        space.check_config(
            {
                "block": "basic",
                "bottleneck_width": 32,
                "train": {"opt": "sgd", "momentum": 0.9},
                "tag": "v1",
            }
        )
    with pytest.raises(ValueError, match="does not use"):
        space.check_config({"block": "basic", "train": {"opt": "adamw", "x": 1}, "tag": "v1"})


def test_sampling_covers_both_branches_and_stays_in_the_space() -> None:
    space = _space()
    rng = np.random.default_rng(1)
    configs = [space.sample(rng) for _ in range(60)]
    assert {c["block"] for c in configs} == {"basic", "bottleneck"}
    assert any("se_ratio" in c for c in configs)
    for c in configs:
        assert ("bottleneck_width" in c) == (c["block"] == "bottleneck")


def test_optuna_define_by_run_records_only_active_params() -> None:
    space = _space()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(40):
        trial = study.ask()
        flat = suggest(trial, space)
        config = space.unflatten(flat)
        assert set(trial.params) == {k for k in flat if k != "tag"}
        assert ("bottleneck_width" in trial.params) == (config["block"] == "bottleneck")
        study.tell(trial, 0.0)
