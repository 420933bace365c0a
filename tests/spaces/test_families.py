"""Contract suite over every architecture family: any sample builds, runs and trains.

Each family is swept with a space that exercises every knob and every choice of a
categorical knob, and with a space of its core knobs only, at tiny, odd and larger
input shapes (timm's registry-wide tests are the model).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spaces import (
    Categorical,
    DenseNetSpace,
    Family,
    Fixed,
    Float,
    Int,
    ResNetSpace,
    SearchSpace,
)
from spaces.resnet import ACT_LAYERS, NORM_LAYERS

SHAPES = [(1, 8, 8), (3, 32, 32), (3, 7, 5), (3, 64, 48)]
SAMPLES_PER_SHAPE = 4
ACTS = Categorical(sorted(ACT_LAYERS))
NORMS = Categorical(sorted(NORM_LAYERS))


def _spaces() -> dict[str, Family]:
    return {
        "resnet-core": ResNetSpace(stages=Int(1, 3), depth=Int(1, 2), width=Categorical([4, 8])),
        "resnet-all": ResNetSpace(
            stages=Int(1, 6),
            depth=Int(1, 2),
            width=Categorical([4, 6]),
            stem=Categorical(["cifar", "imagenet"]),
            block=Categorical(["basic", "bottleneck"]),
            kernel_size=Categorical([3, 5, 7]),
            se=Categorical([False, True]),
            se_ratio=Float(0.1, 0.5),
            act=ACTS,
            norm=NORMS,
            depth_2=Int(1, 2),
            width_3=Categorical([4, 12]),
            stride_1=Categorical([1, 2]),
            stride_4=Categorical([1, 2]),
            depth_6=Fixed(1),
        ),
        "densenet-core": DenseNetSpace(
            blocks=Int(1, 3), layers=Int(1, 3), growth=Categorical([4, 8])
        ),
        "densenet-all": DenseNetSpace(
            blocks=Int(1, 6),
            layers=Int(1, 2),
            growth=Categorical([4, 6]),
            stem=Categorical(["cifar", "imagenet"]),
            init_features=Categorical([4, 10]),
            bn_size=Categorical([0, 2, 4]),
            compression=Float(0.3, 1.0),
            dropout=Categorical([0.0, 0.2]),
            act=ACTS,
            norm=NORMS,
            layers_2=Int(1, 3),
            layers_5=Fixed(1),
        ),
    }


def _samples(family: Family, shape_index: int) -> list[dict]:
    space = SearchSpace({"model": family})
    rng = np.random.default_rng(1000 + shape_index)
    return [space.sample(rng)["model"] for _ in range(SAMPLES_PER_SHAPE)]


@pytest.mark.parametrize("name", list(_spaces()))
@pytest.mark.parametrize("shape_index", range(len(SHAPES)))
def test_every_sample_builds_runs_and_trains(name: str, shape_index: int) -> None:
    family = _spaces()[name]
    input_shape = SHAPES[shape_index]
    for config in _samples(family, shape_index):
        torch.manual_seed(0)
        net = family.build(config, input_shape=input_shape, num_classes=7)
        out = net(torch.randn(2, *input_shape))
        assert out.shape == (2, 7), config
        assert torch.isfinite(out).all(), config
        out.logsumexp(1).sum().backward()
        missing = [n for n, p in net.named_parameters() if p.grad is None]
        assert not missing, f"{config}: parameters without gradient: {missing}"
        net.eval()
        with torch.no_grad():
            assert net(torch.randn(1, *input_shape)).shape == (1, 7)


@pytest.mark.parametrize("name", list(_spaces()))
def test_the_sweep_covers_every_choice(name: str) -> None:
    family = _spaces()[name]
    configs = [c for i in range(len(SHAPES)) for c in _samples(family, i)]
    for knob, param in family.items():
        seen = {json.dumps(c[knob]) for c in configs if knob in c}
        if isinstance(param, Categorical):
            assert seen == {json.dumps(v) for v in param.choices}, knob
        else:
            assert seen, f"{knob} never active in the sweep"


@pytest.mark.parametrize("name", list(_spaces()))
def test_space_and_configs_survive_json(name: str) -> None:
    family = _spaces()[name]
    space = SearchSpace({"model": family})
    again = SearchSpace.from_json(space.dumps())
    assert again == space and type(again["model"]) is type(family)
    assert again.conditions() == space.conditions()
    rng = np.random.default_rng(0)
    for _ in range(20):
        config = space.sample(rng)
        assert again.check_config(json.loads(json.dumps(config))) == config
        assert family.resolve(config["model"]).keys() >= config["model"].keys()


@pytest.mark.parametrize("family_cls", [ResNetSpace, DenseNetSpace])
def test_every_preset_is_a_space_of_constants(family_cls: type[Family]) -> None:
    assert family_cls.list_presets()
    for name in family_cls.list_presets():
        config = family_cls.preset(name)
        family = family_cls(**config)
        assert not family.decisions()
        assert family.check_config(config) == config
        assert SearchSpace.from_json(family.dumps()) == family
    with pytest.raises(ValueError, match=r"valid presets: \['"):
        family_cls.preset("nope")


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: ResNetSpace(kernel=3), TypeError, "Did you mean 'kernel_size'"),
        (lambda: DenseNetSpace(growth_rate=8), TypeError, "Did you mean 'growth'"),
        (lambda: ResNetSpace(stages=2, depth_3=1), ValueError, "remove 'depth_3' or widen"),
        (lambda: DenseNetSpace(blocks=Int(1, 2), layers_4=1), ValueError, "layers_4"),
        (lambda: ResNetSpace(se_ratio=0.25), ValueError, "used only when 'se'"),
        (
            lambda: ResNetSpace(stages=2, depth=Int(1, 3), depth_1=1, depth_2=2),
            ValueError,
            "never be used",
        ),
        (
            lambda: ResNetSpace(stages=Int(1, 3), depth_2=Int(1, 2, when={"stages": 3})),
            ValueError,
            "gets its condition",
        ),
        (lambda: ResNetSpace(stages=Float(1.0, 3.0)), ValueError, "integer; use Int"),
        (lambda: ResNetSpace(width=[8, 16]), TypeError, "must be a parameter"),
    ],
)
def test_bad_family_definitions_raise_with_a_fix(make, error, match) -> None:
    with pytest.raises(error, match=match):
        make()


def test_unknown_config_keys_name_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['growth'\].*depth_1..depth_6"):
        ResNetSpace().build({"growth": 8}, (3, 8, 8), 2)
