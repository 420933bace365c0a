"""The ResNet family builds working networks for every sampled configuration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spaces import Categorical, Int, ResNetSpace, SearchSpace

SHAPES = [(1, 8, 8), (3, 32, 32), (3, 7, 5)]


@pytest.mark.parametrize("input_shape", SHAPES)
def test_sampled_resnets_train_on_any_input_shape(input_shape) -> None:
    family = ResNetSpace(stages=Int(1, 3), depth=Int(1, 2), width=Categorical([4, 8]))
    space = SearchSpace({"model": family})
    rng = np.random.default_rng(0)
    for _ in range(4):
        values = {
            "model/stages": int(rng.integers(1, 4)),
            "model/depth": int(rng.integers(1, 3)),
            "model/width": int(rng.choice([4, 8])),
        }
        config = space.unflatten(values)["model"]
        torch.manual_seed(0)
        net = family.build(config, input_shape=input_shape, num_classes=7)
        x = torch.randn(3, *input_shape)
        out = net(x)
        assert out.shape == (3, 7)
        assert torch.isfinite(out).all()
        out.logsumexp(1).sum().backward()
        missing = [n for n, p in net.named_parameters() if p.grad is None]
        assert not missing, f"parameters without gradient: {missing}"


def test_more_depth_and_width_mean_more_parameters() -> None:
    family = ResNetSpace()

    def count(cfg):
        return sum(p.numel() for p in family.build(cfg, (1, 8, 8), 10).parameters())

    small = count({"stages": 2, "depth": 1, "width": 8})
    assert count({"stages": 2, "depth": 2, "width": 8}) > small
    assert count({"stages": 2, "depth": 1, "width": 16}) > small


def test_build_rejects_unknown_config_keys() -> None:
    with pytest.raises(ValueError, match="unknown key"):
        ResNetSpace().build({"stages": 1, "kernel": 5}, (1, 8, 8), 10)
