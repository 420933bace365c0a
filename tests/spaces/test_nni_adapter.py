"""The NNI adapter: search-space JSON both ways (no NNI needed), NNI's own tuners and
semantics pinned, and NNI 3 model spaces as archtune families (skipped without NNI)."""

from __future__ import annotations

import collections
import json
import sys
import warnings

import numpy as np
import pytest

from spaces import Categorical, Fixed, Float, Int, ResNetSpace, SearchSpace, TrainingSpace
from spaces.nni_adapter import (
    config_from_nni,
    config_to_nni,
    from_nni_json,
    grid_bounds,
    to_nni_json,
)
from spaces.nni_model import NniModelSpace, from_nni

try:  # the model-space tests need NNI 3 (and pytorch-lightning, which its NAS imports)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import nni
        import torch
        from nni.mutable import Categorical as NniCategorical
        from nni.nas.nn.pytorch import (
            InputChoice,
            LayerChoice,
            ModelSpace,
            MutableConv2d,
            MutableDropout,
            MutableLinear,
            Repeat,
        )
        from torch import nn
except ImportError:
    nni = None


def _space() -> SearchSpace:
    return SearchSpace(
        {
            "block": {
                "_name": Categorical(["basic", "bottleneck", "wide"]),
                "width": Int(16, 64, when={"_name": "bottleneck"}),
                "squeeze": Categorical([True, False], when={"_name": ["bottleneck", "wide"]}),
                "kernel": Categorical([3, 5]),
                "act": {"slope": Float(0.0, 0.3)},
            },
            "train": {
                "lr": Float(1e-4, 1e-1, log=True),
                "p": Float(0.0, 0.7, step=0.1),
                "n": Int(1, 3),
                "opt": {"_name": Fixed("sgd"), "momentum": Float(0.5, 0.99)},
            },
            "tag": Fixed("v1"),
        }
    )


# NNI's documented nested search space (examples/trials/mnist-nested-search-space).
NESTED = {
    "layer0": {
        "_type": "choice",
        "_value": [
            {"_name": "Empty"},
            {"_name": "Conv", "kernel_size": {"_type": "choice", "_value": [1, 2, 3, 5]}},
            {"_name": "Max_pool", "pooling_size": {"_type": "choice", "_value": [2, 3, 5]}},
            {"_name": "Avg_pool", "pooling_size": {"_type": "choice", "_value": [2, 3, 5]}},
        ],
    },
    "layer1": {
        "_type": "choice",
        "_value": [
            {"_name": "Empty"},
            {"_name": "Conv", "kernel_size": {"_type": "choice", "_value": [1, 2, 3, 5]}},
        ],
    },
}


# JSON: conversions ----------------------------------------------------------------------
def test_to_nni_json_types_bounds_and_keys() -> None:
    data = to_nni_json(_space())
    assert json.loads(json.dumps(data)) == data
    assert set(data) == {"block", "train/lr", "train/p", "train/n", "train/opt", "tag"}
    assert data["train/n"] == {"_type": "randint", "_value": [1, 4]}  # upper exclusive
    assert data["train/lr"] == {"_type": "loguniform", "_value": [1e-4, 1e-1]}
    assert data["train/p"] == {"_type": "quniform", "_value": [0.0, 0.7, 0.1]}
    assert data["tag"] == {"_type": "choice", "_value": ["v1"]}
    branches = {b["_name"]: b for b in data["block"]["_value"]}
    assert set(branches["basic"]) == {"_name", "kernel", "act/slope"}
    assert set(branches["bottleneck"]) == {"_name", "width", "squeeze", "kernel", "act/slope"}
    assert set(branches["wide"]) == {"_name", "squeeze", "kernel", "act/slope"}
    assert branches["bottleneck"]["width"] == {"_type": "randint", "_value": [16, 65]}
    assert data["train/opt"]["_value"] == [
        {"_name": "sgd", "momentum": {"_type": "uniform", "_value": [0.5, 0.99]}}
    ]


def test_round_trip_through_nni_json() -> None:
    space = _space()
    assert from_nni_json(to_nni_json(space)) == space
    assert from_nni_json(json.dumps(to_nni_json(space))) == space


def test_nni_documented_nested_space_reads_as_groups_and_writes_back_unchanged() -> None:
    space = from_nni_json(NESTED)
    layer0 = space["layer0"]
    assert layer0["_name"] == Categorical(["Empty", "Conv", "Max_pool", "Avg_pool"])
    assert layer0["kernel_size"].when == {"_name": ("Conv",)}
    assert layer0["pooling_size"].when == {"_name": ("Max_pool", "Avg_pool")}
    assert space["layer1"]["kernel_size"] == layer0["kernel_size"]  # same name, own group
    assert to_nni_json(space) == NESTED


def test_what_comes_back_different_is_pinned() -> None:
    back = from_nni_json(to_nni_json(SearchSpace({"c": Categorical([4]), "r": ResNetSpace()})))
    assert back["c"] == Fixed(4)  # a one-option choice reads as a constant
    assert type(back["r"]) is SearchSpace  # family kinds have no place in NNI's JSON
    assert back["r"].flatten() == ResNetSpace().flatten()


def test_trial_parameters_convert_both_ways() -> None:
    space = _space()
    rng = np.random.default_rng(0)
    for _ in range(40):
        config = space.sample(rng)
        params = config_to_nni(space, config)
        assert "train/lr" in params and isinstance(params["block"], dict)
        assert config_from_nni(space, params) == config
    with pytest.raises(ValueError, match="not in the space"):
        config_from_nni(space, {**params, "nope": 1})
    with pytest.raises(ValueError, match="does not use"):
        bad = {**params, "block": {"_name": "basic", "width": 20, "kernel": 3, "act/slope": 0.1}}
        config_from_nni(space, bad)


@pytest.mark.parametrize(
    ("spec", "param"),
    [
        ({"_type": "randint", "_value": [1, 4]}, Int(1, 3)),
        ({"_type": "randint", "_value": [5, 6]}, Fixed(5)),
        ({"_type": "uniform", "_value": [0, 1]}, Float(0.0, 1.0)),
        ({"_type": "loguniform", "_value": [1e-3, 1]}, Float(1e-3, 1.0, log=True)),
        ({"_type": "quniform", "_value": [0, 1, 0.25]}, Float(0.0, 1.0, step=0.25)),
        ({"_type": "quniform", "_value": [1.5, 4.5, 1]}, Float(2.0, 4.0, step=1)),
        ({"_type": "choice", "_value": ["a", 1, None]}, Categorical(["a", 1, None])),
    ],
)
def test_from_nni_json_types(spec, param) -> None:
    assert from_nni_json({"x": spec})["x"] == param


# JSON: refusals -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("entries", "match"),
    [
        ({"a": Int(1, 64, log=True)}, "only integer type is randint"),
        ({"a": Int(0, 12, step=4)}, "only integer type is randint"),
        ({"a": Float(0.05, 0.85, step=0.2)}, "counted from 0"),
        ({"b": Categorical(["x", "y"]), "a": Int(1, 2, when={"b": "y"})}, "nested choice"),
        ({"g": {"_name": Int(1, 3), "a": Int(1, 2)}}, "unconditional Categorical or Fixed"),
        ({"g": {"_name": Categorical([1, 2]), "s": {"a": Float(0, 1), "b": Int(1, 2)}}}, None),
        ({"g": {"_name": Categorical([1, 2]), "h": {"_name": Categorical([3, 4])}}}, "KeyError"),
        ({"g": {}}, "empty"),
        ({"_name": Categorical([1, 2])}, "NNI skips that key"),
    ],
)
def test_to_nni_json_refuses_what_nni_cannot_hold(entries, match) -> None:
    space = SearchSpace(entries)
    if match is None:  # control: a plain sub-group inside a group is fine
        assert from_nni_json(to_nni_json(space)) == space
        return
    with pytest.raises(ValueError, match=match):
        to_nni_json(space)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"_type": "normal", "_value": [0, 1]}, "bounded"),
        ({"_type": "qnormal", "_value": [0, 1, 0.5]}, "bounded"),
        ({"_type": "lognormal", "_value": [0, 1]}, "bounded"),
        ({"_type": "qlognormal", "_value": [0, 1, 1]}, "bounded"),
        ({"_type": "qloguniform", "_value": [1, 100, 1]}, "log scale with a step"),
        ({"_type": "quniform", "_value": [0.05, 0.85, 0.2]}, "off the grid"),
        ({"_type": "randint", "_value": [1.0, 4]}, "needs ints"),
        ({"_type": "randint", "_value": [True, 4]}, "needs ints"),
        ({"_type": "randint", "_value": [4, 4]}, "needs ints"),
        ({"_type": "uniform", "_value": [0, 1, 2]}, "takes 2 values"),
        ({"_type": "beta", "_value": [0, 1]}, "unknown NNI type"),
        ({"_type": "choice", "_value": [[1, 2]]}, "str, int, float"),
        ({"_type": "choice", "_value": []}, "non-empty"),
        ({"_type": "choice"}, "_type"),
    ],
)
def test_from_nni_json_refuses_what_does_not_map_exactly(spec, match) -> None:
    with pytest.raises(ValueError, match=match):
        from_nni_json({"x": spec})


def test_from_nni_json_refuses_nested_choices_that_do_not_fit_a_group() -> None:
    inner = {"_type": "choice", "_value": [{"_name": "x"}, {"_name": "y"}]}
    one = {"_type": "uniform", "_value": [0, 1]}
    two = {"_type": "uniform", "_value": [0, 2]}

    def nested(*branches):
        return {"g": {"_type": "choice", "_value": list(branches)}}

    with pytest.raises(ValueError, match="differs between branches"):
        from_nni_json(nested({"_name": "a", "w": one}, {"_name": "b", "w": two}))
    with pytest.raises(ValueError, match="some branches only"):
        from_nni_json(nested({"_name": "a", "h": inner}, {"_name": "b"}))
    with pytest.raises(ValueError, match="some branches only"):
        from_nni_json(nested({"_name": "a", "s/w": one}, {"_name": "b"}))
    with pytest.raises(ValueError, match="needs '_name'"):
        from_nni_json(nested({"_name": "a"}, {"w": one}))
    # An inner choice present in every branch alike is an unconditional sub-group.
    space = from_nni_json(nested({"_name": "a", "h": inner}, {"_name": "b", "h": inner}))
    assert space["g"]["h"]["_name"] == Categorical(["x", "y"])


def test_grid_bounds_follow_nni_clip_round_rule() -> None:
    assert grid_bounds(0, 10, 2.5) == (0, 10)
    assert grid_bounds(1.5, 4.5, 1) == (2, 4)  # NNI's idiom for the integers 2..4
    assert grid_bounds(0.15, 0.85, 0.2) == (0.2, 0.8)  # both bounds round inwards
    for low, high, q in ((2, 10, 5), (0.05, 0.85, 0.2), (0.0, 0.95, 0.2), (0.3, 0.35, 0.2)):
        with pytest.raises(ValueError, match=r"off the grid|no multiple"):
            grid_bounds(low, high, q)  # NNI's own docs: [2, 10, 5] draws 2., 5., 10.


# NNI's own code, pinned (needs NNI) ----------------------------------------------------
def _tuner_params(search_space: dict, n: int) -> list[dict]:
    """``n`` draws of NNI's random tuner (its sampling, without its de-duplication)."""
    random_tuner = pytest.importorskip("nni.algorithms.hpo.random_tuner")
    from nni.common.hpo_utils import deformat_parameters, format_search_space

    space, rng = format_search_space(search_space), np.random.default_rng(0)
    return [deformat_parameters(random_tuner.suggest(rng, space), space) for _ in range(n)]


def test_nni_randint_is_upper_exclusive_and_quniform_clips_with_half_weight_ends() -> None:
    params = _tuner_params(
        to_nni_json(SearchSpace({"a": Int(1, 4), "p": Float(0, 0.7, step=0.1)})), 4000
    )
    assert {p["a"] for p in params} == {1, 2, 3, 4}
    counts = collections.Counter(round(p["p"], 9) for p in params)
    assert sorted(counts) == [round(0.1 * k, 9) for k in range(8)]
    assert max(p["p"] for p in params) == 0.7  # clipped: no float overshoot, unlike Ray
    inner = np.mean([counts[round(0.1 * k, 9)] for k in range(1, 7)])
    assert 0.35 < counts[0.0] / inner < 0.65 and 0.35 < counts[0.7] / inner < 0.65
    expressions = pytest.importorskip("nni.parameter_expressions")
    rs = np.random.RandomState(0)
    drawn = {float(expressions.quniform(0.05, 0.85, 0.2, rs)) for _ in range(2000)}
    assert 0.05 in drawn  # rounds down to 0, clipped up: an off-grid value (refused) ...
    assert 0.85 not in drawn and 0.8 in drawn  # ... 0.85 rounds down to 0.8: no clip


def test_nni_tuners_sample_configs_of_the_space() -> None:
    space = _space()
    for params in _tuner_params(to_nni_json(space), 200):
        config = config_from_nni(space, params)
        assert space.check_config(config) == config
    assert {p["layer0"]["_name"] for p in _tuner_params(NESTED, 100)} == set(
        from_nni_json(NESTED)["layer0"]["_name"].choices
    )


def test_nni_tuners_fail_on_a_choice_nested_in_a_nested_choice() -> None:
    inner = {
        "_type": "choice",
        "_value": [{"_name": "x", "v": {"_type": "uniform", "_value": [0, 1]}}],
    }
    deep = {
        "g": {
            "_type": "choice",
            "_value": [{"_name": "a", "h": inner}, {"_name": "b", "h": inner}],
        }
    }
    with pytest.raises(KeyError):
        _tuner_params(deep, 20)  # why to_nni_json refuses a group inside a group


# NNI 3 model spaces ---------------------------------------------------------------------
if nni is not None:

    class TinyNet(ModelSpace, label_prefix="tiny"):
        """Conv widths, a repeated block, an activation choice and a dropout rate."""

        def __init__(self, num_classes: int = 10) -> None:
            super().__init__()
            width = nni.choice("width", [4, 8])
            self.stem = MutableConv2d(1, width, 3, padding=1)
            self.blocks = Repeat(
                lambda _: nn.Sequential(MutableConv2d(width, width, 3, padding=1), nn.ReLU()),
                (1, 2),
                label="depth",
            )
            self.act = LayerChoice([nn.ReLU(), nn.Tanh()], label="act")
            self.drop = MutableDropout(nni.uniform("drop", 0.0, 0.5))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.head = MutableLinear(width, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.act(self.blocks(self.stem(x)))
            return self.head(self.drop(torch.flatten(self.pool(x), 1)))

    class FixedHead(ModelSpace, label_prefix="fixed"):
        """Ten outputs whatever the data: its __init__ takes no num_classes."""

        def __init__(self) -> None:
            super().__init__()
            self.head = LayerChoice([nn.Linear(64, 10), nn.Linear(64, 10)], label="head")

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.flatten(x, 1))

    class OneMutable(ModelSpace, label_prefix="one"):
        """A single mutable ``x``, picked by ``kind``."""

        def __init__(self, kind: str = "normal") -> None:
            super().__init__()
            if kind == "inputs":
                self.pick = InputChoice(2, 1, label="x")
                return
            make = {
                "log": lambda: nni.loguniform("x", 0.1, 1.0),
                "ints": lambda: nni.quniform("x", 1.5, 4.5, 1.0),
                "grid": lambda: nni.quniform("x", 0.0, 1.0, 0.25),
                "names": lambda: nni.choice("x", ["a", "b"]),
                "normal": lambda: nni.normal("x", 0.0, 1.0),
                "weighted": lambda: NniCategorical([1, 2], weights=[0.9, 0.1], label="x"),
                "qlog": lambda: nni.qloguniform("x", 1.0, 10.0, 1.0),
                "offgrid": lambda: nni.quniform("x", 0.05, 0.85, 0.2),
                "dicts": lambda: nni.choice("x", [{"a": 1}, {"b": 2}]),
            }
            self.x = self.add_mutable(make[kind]())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x


@pytest.fixture
def nas() -> object:
    return pytest.importorskip("nni.nas.nn.pytorch")


def test_from_nni_maps_mutables_by_label(nas) -> None:
    family = from_nni(TinyNet)
    assert isinstance(family, NniModelSpace)
    assert family.decisions() == {
        "tiny/width": Categorical([4, 8]),
        "tiny/depth": Categorical([1, 2]),
        "tiny/act": Categorical([0, 1]),
        "tiny/drop": Float(0.0, 0.5),
    }
    assert family["nni_model_space"] == Fixed(f"{__name__}:TinyNet")


def test_sampled_configs_build_networks_of_the_right_shape(nas) -> None:
    space = SearchSpace({"model": from_nni(TinyNet)})
    rng = np.random.default_rng(0)
    widths = set()
    for _ in range(10):
        config = space.sample(rng)
        net = space["model"].build(config["model"], input_shape=(1, 8, 8), num_classes=3)
        assert net(torch.zeros(5, 1, 8, 8)).shape == (5, 3)
        widths.add(net.stem.out_channels)
        assert net.stem.out_channels == config["model"]["tiny"]["width"]
        assert len(net.blocks) == config["model"]["tiny"]["depth"]
    assert widths == {4, 8}


def test_nni_family_survives_json_and_trains_in_the_image_classifier(nas) -> None:
    from trainers import ImageClassifier

    space = SearchSpace({"model": from_nni(TinyNet(num_classes=10)), "train": TrainingSpace()})
    again = SearchSpace.from_json(json.loads(space.dumps()))
    assert again == space and isinstance(again["model"], NniModelSpace)
    config = again.sample(np.random.default_rng(1))
    metrics = ImageClassifier(dataset="digits", epochs=1).fit(config, again)
    assert 0.0 <= metrics["val_acc"] <= 1.0


def test_build_refuses_a_network_whose_output_does_not_fit(nas) -> None:
    family = from_nni(FixedHead)
    config = family.sample(np.random.default_rng(0))
    assert family.build(config, (1, 8, 8), 10)(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(ValueError, match="let its __init__ take num_classes"):
        family.build(config, (1, 8, 8), 3)
    with pytest.raises(ValueError, match="outside"):
        family.build({"fixed": {"head": 7}}, (1, 8, 8), 10)


@pytest.mark.parametrize(
    ("kind", "param"),
    [
        ("log", Float(0.1, 1.0, log=True)),
        ("ints", Float(2.0, 4.0, step=1.0)),  # NNI's idiom quniform(lo - 0.5, hi + 0.5, 1)
        ("grid", Float(0.0, 1.0, step=0.25)),
        ("names", Categorical(["a", "b"])),
    ],
)
def test_from_nni_maps_numerical_and_categorical_mutables(nas, kind, param) -> None:
    family = from_nni(OneMutable(kind=kind))
    assert family.decisions() == {"one/x": param}
    assert family["nni_kwargs"] == Fixed(json.dumps({"kind": kind}))


@pytest.mark.parametrize(
    ("kind", "match"),
    [
        ("normal", "only uniform and log-uniform"),
        ("weighted", "drop the weights"),
        ("qlog", "log scale with a step"),
        ("offgrid", "off the grid"),
        ("dicts", "str, int, float"),
        ("inputs", "CategoricalMultiple has no archtune parameter"),
    ],
)
def test_from_nni_refuses_mutables_without_an_exact_parameter(nas, kind, match) -> None:
    with pytest.raises(ValueError, match=match):
        from_nni(OneMutable(kind=kind))


def test_from_nni_refuses_classes_it_could_not_import_back(nas) -> None:
    class Local(nas.ModelSpace):
        def __init__(self) -> None:
            super().__init__()

    with pytest.raises(ValueError, match="cannot be imported back"):
        from_nni(Local)
    with pytest.raises(TypeError, match="ModelSpace class or instance"):
        from_nni(nn.Linear(2, 2))


def test_from_nni_says_how_to_install_nni_when_it_is_missing(monkeypatch) -> None:
    for name in [m for m in sys.modules if m == "nni" or m.startswith("nni.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "nni", None)
    with pytest.raises(ImportError, match="pip install nni"):
        from_nni(object)
