"""Post-training int8 quantization (trainers.quantize, PT2E through torchao) of small
trained networks: accuracy and latency beside fp32, int8 weights, the layers left in fp32,
the oneDNN lowering the latency is measured on, and the errors."""

from __future__ import annotations

import operator
import sys

import pytest
import torch
from torch import nn

from spaces import DenseNetSpace, ResNetSpace
from trainers.data import batches, load_dataset
from trainers.pruning import prune_model
from trainers.quantize import (
    QuantizationError,
    int8_report,
    int8_weight_layers,
    lower_int8,
    quantize_int8,
)

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


def _int8_weights(q: torch.fx.GraphModule) -> list[torch.Tensor]:
    found = [operator.attrgetter(n.target)(q) for n in q.graph.nodes if n.op == "get_attr"]
    return [t for t in found if isinstance(t, torch.Tensor) and t.dtype == torch.int8]


def test_quantized_model_has_int8_weights_and_float_model_is_untouched(trained):
    data = load_dataset("digits")
    state = {k: v.clone() for k, v in trained.state_dict().items()}
    q = quantize_int8(trained, data.x_train[:128].split(64))
    assert isinstance(q, torch.fx.GraphModule)
    assert len(_int8_weights(q)) == 7 and all(w.dim() >= 2 for w in _int8_weights(q))
    ops = {str(n.target) for n in q.graph.nodes if n.op == "call_function"}
    assert "quantized_decomposed.quantize_per_tensor.default" in ops  # PT2E's QDQ graph
    assert not any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in q.modules())
    assert not any(isinstance(p, torch.Tensor) and p.is_quantized for p in trained.parameters())
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in state.items())
    assert trained.training is False and q(data.x_val[:5]).dtype == torch.float32
    assert q(data.x_val[:1]).shape == (1, 10)  # any batch size


def test_onednn_lowering_computes_what_the_graph_does(trained):
    # The latency is measured on oneDNN's int8 kernels; the accuracy on the graph.
    data = load_dataset("digits")
    q = quantize_int8(trained, data.x_train[:256].split(64))
    fast = lower_int8(q, data.x_val[:1])
    with torch.no_grad():
        for i in range(8):
            x = data.x_val[i : i + 1]
            ref = q(x)
            assert fast(x).argmax(1) == ref.argmax(1)
            assert (fast(x) - ref).abs().max() <= 0.05 * ref.abs().max()


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
    # BatchNorms are folded into the convolution before them, or become an affine map
    # (DenseNet's pre-activations): none is left for convert_pt2e's slow conv-BN search.
    assert not any("batch_norm" in str(n.target) for n in q.graph.nodes)


def test_densenet_int8_keeps_its_accuracy():
    data = load_dataset("digits")
    net = train(build(DenseNetSpace(), {"blocks": 2, "layers": 2, "growth": 8}), 120)
    report = int8_report(net, data.x_train[:256], data.x_val, data.y_val, repeats=3)
    assert report["fp32_acc"] > 0.8
    assert abs(report["int8_acc"] - report["fp32_acc"]) <= 0.03


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


def test_without_torchao_it_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchao.quantization.pt2e.quantize_pt2e", None)
    with pytest.raises(QuantizationError, match=r"pip install 'torchao"):
        quantize_int8(nn.Linear(4, 2), [torch.ones(2, 4)])


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
