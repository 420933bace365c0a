"""model_stats: parameters, FLOPs, activation bytes and latency of a network."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from spaces import DenseNetSpace, ModelStats, ResNetSpace, model_stats


def test_params_are_the_sum_of_numel() -> None:
    config = {"stages": 2, "depth": 1, "width": 8}
    stats = model_stats(ResNetSpace(), config, input_shape=(1, 8, 8), num_classes=10)
    net = ResNetSpace().build(config, (1, 8, 8), 10)
    assert stats.params == sum(p.numel() for p in net.parameters())
    assert isinstance(stats, ModelStats)
    assert stats.latency_ms is not None and stats.latency_ms > 0


def test_flops_of_a_linear_and_a_conv_follow_the_formula() -> None:
    linear = model_stats(nn.Linear(10, 5), input_shape=(1, 1, 10), latency=False)
    assert linear.flops == 2 * 10 * 5  # a multiply-add is 2 FLOPs; the bias is not counted
    conv = model_stats(nn.Conv2d(3, 8, 3, padding=1), input_shape=(3, 8, 8), latency=False)
    assert conv.flops == 2 * (8 * 8 * 8) * (3 * 3 * 3)
    assert conv.activation_bytes == 8 * 8 * 8 * 4  # one fp32 output map
    assert conv.latency_ms is None


def test_activation_bytes_grow_with_width() -> None:
    def stats(width: int) -> ModelStats:
        config = {"blocks": 2, "layers": 2, "growth": width}
        return model_stats(
            DenseNetSpace(), config, input_shape=(3, 16, 16), num_classes=5, latency=False
        )

    small, large = stats(4), stats(8)
    assert 0 < small.activation_bytes < large.activation_bytes
    assert 0 < small.flops < large.flops and small.params < large.params


def test_a_module_keeps_its_mode_and_the_global_rng_is_untouched() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).train()
    state = torch.get_rng_state()
    model_stats(net, input_shape=(1, 5, 5), latency=False)
    model_stats(ResNetSpace(), {"stages": 1}, input_shape=(1, 5, 5), num_classes=2)
    assert net.training and torch.equal(state, torch.get_rng_state())


def test_stats_are_json_able() -> None:
    stats = model_stats(nn.Linear(4, 2), input_shape=(1, 1, 4))
    assert set(dataclasses.asdict(stats)) == {"params", "flops", "activation_bytes", "latency_ms"}


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: model_stats(ResNetSpace(), input_shape=(1, 8, 8)), TypeError, "config="),
        (
            lambda: model_stats(nn.Linear(2, 2), {"stages": 1}, input_shape=(1, 1, 2)),
            TypeError,
            "needs none",
        ),
        (lambda: model_stats("resnet", input_shape=(1, 8, 8)), TypeError, "nn.Module"),
        (lambda: model_stats(nn.Linear(2, 2), input_shape=(2,)), ValueError, "input_shape"),
        (
            lambda: model_stats(nn.Linear(2, 2), input_shape=(1, 1, 2), device="meta"),
            ValueError,
            "the module is on",
        ),
        (
            lambda: model_stats(nn.Linear(2, 2), input_shape=(1, 1, 2), repeats=0),
            ValueError,
            "repeats",
        ),
    ],
)
def test_bad_arguments_raise_with_a_fix(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()
