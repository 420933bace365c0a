"""The ResNet family: backward compatibility, presets, stride plan, blocks, bad values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from spaces import Categorical, Float, Int, ResNetSpace, SearchSpace
from spaces.resnet import Bottleneck, SqueezeExcite

SHAPES = [(1, 8, 8), (3, 32, 32), (3, 7, 5)]

TORCHVISION_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}


def _params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_presets_match_torchvision_parameter_counts(name: str) -> None:
    with torch.device("meta"):  # count without allocating or initialising
        net = ResNetSpace().build(ResNetSpace.preset(name), (3, 224, 224), 1000)
    assert _params(net) == TORCHVISION_PARAMS[name]


def test_list_presets() -> None:
    assert ResNetSpace.list_presets() == sorted(TORCHVISION_PARAMS)


def test_resnet50_is_v1_5_with_the_stride_in_the_3x3_conv() -> None:
    with torch.device("meta"):
        net = ResNetSpace().build(ResNetSpace.preset("resnet50"), (3, 224, 224), 1000)
    first = net.stages[1][0]
    assert isinstance(first, Bottleneck)
    assert first.conv1.stride == (1, 1) and first.conv2.stride == (2, 2)
    assert [len(s) for s in net.stages] == [3, 4, 6, 3]
    assert net.num_features == 2048


def test_resnet18_runs_at_224() -> None:
    net = ResNetSpace().build(ResNetSpace.preset("resnet18"), (3, 224, 224), 1000).eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)


def test_old_three_knob_spaces_keep_their_configs() -> None:
    space = SearchSpace(
        {"model": ResNetSpace(stages=Int(1, 3), depth=Int(1, 2), width=Categorical([8, 16]))}
    )
    config = space.sample(np.random.default_rng(0))["model"]
    assert set(config) == {"stages", "depth", "width"}
    family = ResNetSpace(stages=2, depth=Int(1, 3), width=16)
    net = family.build(
        {"stages": 2, "depth": 1, "width": 16}, input_shape=(1, 8, 8), num_classes=10
    )
    assert net(torch.zeros(4, 1, 8, 8)).shape == (4, 10)
    shape = tuple(np.array([1, 8, 8]))  # numpy ints are fine too
    assert family.build({"stages": 1}, shape, np.int64(3))(torch.zeros(2, 1, 8, 8)).shape == (2, 3)


@pytest.mark.parametrize(
    ("config", "shape", "sizes"),
    [
        ({"stages": 6}, (1, 8, 8), [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1), (1, 1)]),
        ({"stages": 4}, (3, 7, 5), [(7, 5), (4, 3), (2, 2), (1, 1)]),
        ({"stages": 3}, (3, 1, 9), [(1, 9), (1, 5), (1, 3)]),
        ({"stages": 2, "stem": "imagenet"}, (3, 7, 5), [(2, 2), (1, 1)]),
        ({"stages": 3, "stride_1": 2, "stride_2": 1}, (3, 32, 32), [(16, 16), (16, 16), (8, 8)]),
    ],
)
def test_strides_stop_at_1x1(config, shape, sizes) -> None:
    plan = ResNetSpace().stage_plan(config, shape)
    assert [s.size for s in plan] == sizes
    for before, stage in itertools.pairwise(plan):
        assert all(st == 1 for st, n in zip(stage.stride, before.size, strict=True) if n == 1)
    net = ResNetSpace().build(config, shape, 3).eval()
    with torch.no_grad():
        assert net(torch.zeros(1, *shape)).shape == (1, 3)


def test_per_stage_knobs_override_the_shared_rule() -> None:
    plan = ResNetSpace().stage_plan(
        {"stages": 3, "depth": 2, "width": 8, "depth_2": 5, "width_3": 10}, (3, 32, 32)
    )
    assert [(s.depth, s.width) for s in plan] == [(2, 8), (5, 16), (2, 10)]


def test_per_stage_knobs_are_active_only_with_their_stage() -> None:
    family = ResNetSpace(stages=Int(2, 4), depth_3=Int(1, 3), width_4=Categorical([8, 16]))
    assert family.conditions() == {"depth_3": {"stages": (3, 4)}, "width_4": {"stages": (4,)}}
    space = SearchSpace({"model": family})
    rng = np.random.default_rng(0)
    for _ in range(20):
        config = space.sample(rng)["model"]
        assert ("depth_3" in config) == (config["stages"] >= 3)
        assert ("width_4" in config) == (config["stages"] == 4)


def test_squeeze_excitation_only_where_asked() -> None:
    with_se = ResNetSpace().build({"stages": 1, "depth": 1, "se": True}, (3, 8, 8), 2)
    without = ResNetSpace().build({"stages": 1, "depth": 1}, (3, 8, 8), 2)
    assert any(isinstance(m, SqueezeExcite) for m in with_se.modules())
    assert not any(isinstance(m, SqueezeExcite) for m in without.modules())
    se = SqueezeExcite(64, 0.0625)
    assert se.reduce.out_channels == 4


def test_more_depth_and_width_mean_more_parameters() -> None:
    family = ResNetSpace()

    def count(cfg):
        return _params(family.build(cfg, (1, 8, 8), 10))

    small = count({"stages": 2, "depth": 1, "width": 8})
    assert count({"stages": 2, "depth": 2, "width": 8}) > small
    assert count({"stages": 2, "depth": 1, "width": 16}) > small
    assert count({"stages": 2, "depth": 1, "width": 8, "block": "bottleneck"}) > small


@pytest.mark.parametrize(
    ("knobs", "match"),
    [
        ({"block": "dense"}, r"unsupported value\(s\) \['dense'\]; supported"),
        ({"kernel_size": Categorical([3, 4])}, r"unsupported value\(s\) \[4\]"),
        ({"stem": Float(0.0, 1.0)}, "use Categorical"),
        ({"se": 1}, r"unsupported value\(s\) \[1\]"),
        ({"stages": Int(1, 9)}, r"in \[1, 6\]"),
        ({"width_2": Float(8.0, 16.0)}, "integer; use Int"),
        ({"stride_2": 3}, r"supported: \[1, 2\]"),
        ({"se": True, "se_ratio": 0.0}, r"in \[0.01, 1.0\]"),
    ],
)
def test_bad_knob_values_raise_with_a_fix(knobs, match) -> None:
    with pytest.raises(ValueError, match=match):
        ResNetSpace(**knobs)


@pytest.mark.parametrize(
    ("config", "shape", "classes", "match"),
    [
        ({"stages": 1, "kernel": 5}, (1, 8, 8), 10, "unknown key"),
        ({"stages": 2, "depth_3": 1}, (1, 8, 8), 10, "depth_3"),
        ({"stages": 2, "se_ratio": 0.5}, (1, 8, 8), 10, "se_ratio"),
        ({"stages": 7}, (1, 8, 8), 10, r"in \[1, 6\]"),
        ({"stages": 1}, (8, 8), 10, "input_shape must be"),
        ({"stages": 1}, (1, 0, 8), 10, "positive ints"),
        ({"stages": 1}, (1, 8, 8), 0, "num_classes"),
    ],
)
def test_build_rejects_bad_configs_and_shapes(config, shape, classes, match) -> None:
    with pytest.raises(ValueError, match=match):
        ResNetSpace().build(config, shape, classes)
