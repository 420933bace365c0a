"""Post-training int8 quantization (trainers.quantize) of small trained networks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spaces import DenseNetSpace, ResNetSpace
from trainers.data import batches, load_dataset
from trainers.pruning import prune_model
from trainers.quantize import QuantizationError, int8_report, int8_weight_layers, quantize_int8

CONFIG = {"stages": 2, "depth": 1, "width": 8}


def build(family, config):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return family.build(config, (1, 8, 8), num_classes=10)


def train(net: nn.Module, steps: int = 120) -> nn.Module:
    data = load_dataset("digits")
    gen = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    step = 0
    while step < steps:
        for idx in batches(len(data.y_train), 64, gen):
            loss = nn.functional.cross_entropy(net(data.x_train[idx]), data.y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step == steps:
                break
    return net.eval()


@pytest.fixture(scope="module")
def trained() -> nn.Module:
    return train(build(ResNetSpace(), CONFIG))


def test_int8_accuracy_is_close_to_fp32(trained):
    data = load_dataset("digits")
    report = int8_report(trained, data.x_train[:256], data.x_val, data.y_val, repeats=3)
    assert report["fp32_acc"] > 0.85
    assert abs(report["int8_acc"] - report["fp32_acc"]) <= 0.03
    assert report["int8_latency_ms"] > 0 and report["fp32_latency_ms"] > 0
    convs_and_linears = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in trained.modules())
    assert report["int8_weight_layers"] == convs_and_linears


def test_quantized_model_has_int8_weights_and_float_model_is_untouched(trained):
    data = load_dataset("digits")
    state = {k: v.clone() for k, v in trained.state_dict().items()}
    q = quantize_int8(trained, data.x_train[:128].split(64))
    convs = [m for m in q.modules() if type(m).__module__.startswith("torch.ao.nn.quantized")]
    assert any(m.weight().dtype == torch.qint8 for m in convs if hasattr(m, "weight"))
    assert not any(isinstance(p, torch.Tensor) and p.is_quantized for p in trained.parameters())
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in state.items())
    assert q(data.x_val[:5]).dtype == torch.float32


@pytest.mark.parametrize(
    ("family", "config"),
    [
        pytest.param(
            ResNetSpace(),
            {**CONFIG, "block": "bottleneck", "se": True, "norm": "group", "act": "silu"},
            id="resnet-se-groupnorm-silu",
        ),
        pytest.param(ResNetSpace(), {**CONFIG, "norm": "layer", "act": "gelu"}, id="resnet-gelu"),
        pytest.param(DenseNetSpace(), {"blocks": 2, "layers": 2, "growth": 8}, id="densenet"),
    ],
)
def test_layers_without_int8_kernels_stay_in_fp32(family, config):
    net = build(family, config).eval()
    x = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    q = quantize_int8(net, [x])
    assert int8_weight_layers(q) > 0
    with torch.no_grad():
        out, ref = q(x), net(x)
    assert out.shape == ref.shape and torch.isfinite(out).all()


def test_pruned_model_quantizes(trained):
    data = load_dataset("digits")
    net = build(ResNetSpace(), CONFIG)
    net.load_state_dict(trained.state_dict())
    prune_model(net, 0.5, data.x_train[:4])
    q = quantize_int8(net, [data.x_train[:128]])
    assert q(data.x_val[:3]).shape == (3, 10)


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) if x.sum() > 0 else -self.fc(x)


def test_untraceable_model_raises():
    with pytest.raises(QuantizationError, match="cannot be traced"):
        quantize_int8(DataDependent(), [torch.ones(2, 4)])


def test_model_without_weight_layers_raises():
    with pytest.raises(QuantizationError, match="int8 kernel"):
        quantize_int8(nn.Sequential(nn.Flatten(), nn.Softmax(1)), [torch.ones(2, 4)])


def test_empty_or_bad_calibration_raises():
    with pytest.raises(QuantizationError, match="at least one batch"):
        quantize_int8(nn.Linear(4, 2), [])
    with pytest.raises(QuantizationError, match="NaN"):
        quantize_int8(nn.Linear(4, 2), [torch.full((2, 4), float("nan"))])
    assert issubclass(QuantizationError, ValueError)
