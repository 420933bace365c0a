"""The DenseNet family: presets, channel bookkeeping, tiny inputs, bad values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spaces import Categorical, DenseNetSpace, Float, Int, SearchSpace
from spaces.densenet import DenseLayer, Transition

TORCHVISION_PARAMS = {
    "densenet121": 7_978_856,
    "densenet161": 28_681_000,
    "densenet169": 14_149_480,
    "densenet201": 20_013_928,
}


def _params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_presets_match_torchvision_parameter_counts(name: str) -> None:
    with torch.device("meta"):
        net = DenseNetSpace().build(DenseNetSpace.preset(name), (3, 224, 224), 1000)
    assert _params(net) == TORCHVISION_PARAMS[name]


def test_densenet121_shape() -> None:
    config = DenseNetSpace.preset("densenet121")
    assert DenseNetSpace.list_presets() == sorted(TORCHVISION_PARAMS)
    with torch.device("meta"):
        net = DenseNetSpace().build(config, (3, 224, 224), 1000)
    blocks = [len(m.layers) for m in net.features if hasattr(m, "layers")]
    assert blocks == [6, 12, 24, 16]
    assert net.num_features == 1024


def test_channels_follow_growth_and_compression() -> None:
    config = {"blocks": 2, "layers": 3, "growth": 4, "init_features": 10, "compression": 0.5}
    net = DenseNetSpace().build(config, (3, 16, 16), 5)
    transition = next(m for m in net.modules() if isinstance(m, Transition))
    assert transition[2].in_channels == 10 + 3 * 4 and transition[2].out_channels == 11
    assert net.num_features == 11 + 3 * 4


def test_no_bottleneck_and_default_stem_width() -> None:
    net = DenseNetSpace().build(
        {"blocks": 1, "layers": 2, "growth": 6, "bn_size": 0}, (1, 8, 8), 2
    )
    layer = next(m for m in net.modules() if isinstance(m, DenseLayer))
    assert isinstance(layer.bottleneck, torch.nn.Identity)
    assert net.stem[0].out_channels == 12  # 2 * growth


def test_transitions_never_pool_below_1x1() -> None:
    net = DenseNetSpace().build({"blocks": 6, "layers": 1, "growth": 4}, (1, 3, 1), 4).eval()
    pools = [m[3].kernel_size for m in net.features if isinstance(m, Transition)]
    assert pools == [(2, 1), (1, 1), (1, 1), (1, 1), (1, 1)]
    with torch.no_grad():
        assert net(torch.zeros(1, 1, 3, 1)).shape == (1, 4)


def test_per_block_layers_are_active_only_with_their_block() -> None:
    family = DenseNetSpace(blocks=Int(2, 4), layers_3=Int(1, 4))
    space = SearchSpace({"model": family})
    rng = np.random.default_rng(0)
    for _ in range(20):
        config = space.sample(rng)["model"]
        assert ("layers_3" in config) == (config["blocks"] >= 3)


@pytest.mark.parametrize(
    ("knobs", "match"),
    [
        ({"compression": 0.0}, r"in \[0.01, 1.0\]"),
        ({"dropout": Float(0.0, 1.0)}, r"in \[0.0, 0.9\]"),
        ({"bn_size": Float(1.0, 4.0)}, "integer; use Int"),
        ({"blocks": 7}, r"in \[1, 6\]"),
        ({"stem": Categorical(["cifar", "tiny"])}, r"unsupported value\(s\) \['tiny'\]"),
        ({"norm": "instance"}, r"supported: \['batch', 'group', 'layer'\]"),
    ],
)
def test_bad_knob_values_raise_with_a_fix(knobs, match) -> None:
    with pytest.raises(ValueError, match=match):
        DenseNetSpace(**knobs)


def test_build_rejects_inactive_per_block_knobs() -> None:
    with pytest.raises(ValueError, match="layers_3"):
        DenseNetSpace().build({"blocks": 2, "layers_3": 2}, (3, 8, 8), 2)
