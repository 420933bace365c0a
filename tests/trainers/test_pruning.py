"""Channel pruning (trainers.pruning) over both families: smaller, same outputs' shape,
trainable, and restorable from a checkpoint."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from spaces import DenseNetSpace, ResNetSpace
from trainers.pruning import measure, prune_model, pruned_structure, restore_pruned

SHAPE = (1, 8, 8)
CONFIGS = [
    pytest.param(ResNetSpace(), {"stages": 2, "depth": 1, "width": 8}, id="resnet-basic"),
    pytest.param(
        ResNetSpace(),
        {"stages": 2, "depth": 2, "width": 8, "block": "bottleneck", "se": True},
        id="resnet-bottleneck-se",
    ),
    pytest.param(
        ResNetSpace(),
        {"stages": 3, "depth": 1, "width": 8, "norm": "group", "act": "silu", "kernel_size": 5},
        id="resnet-groupnorm-k5",
    ),
    pytest.param(
        ResNetSpace(),
        {"stages": 3, "depth": 1, "width": 8, "stem": "imagenet", "norm": "layer", "act": "gelu"},
        id="resnet-layernorm-imagenet-stem",
    ),
    pytest.param(
        ResNetSpace(),
        {"stages": 2, "depth": 1, "width": 8, "stride_1": 2, "act": "hardswish", "se": True},
        id="resnet-strided-hardswish",
    ),
    pytest.param(DenseNetSpace(), {"blocks": 2, "layers": 2, "growth": 8}, id="densenet"),
    pytest.param(
        DenseNetSpace(),
        {"blocks": 3, "layers": 2, "growth": 8, "bn_size": 0, "norm": "layer", "dropout": 0.1},
        id="densenet-no-bottleneck-layernorm",
    ),
]


def build(family, config):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return family.build(config, SHAPE, num_classes=10)


def inputs(n: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, *SHAPE, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("family", "config"), CONFIGS)
def test_pruned_model_is_smaller_and_trains(family, config):
    net, x = build(family, config), inputs()
    before = measure(net, x[:1], repeats=3)
    assert prune_model(net, 0.5, x) is net
    after = measure(net, x[:1], repeats=3)
    # Both sides of most layers halve: about a quarter of the parameters and FLOPs stay.
    assert 0.15 < after["params"] / before["params"] < 0.4
    assert 0.15 < after["flops"] / before["flops"] < 0.4
    assert after["latency_ms"] > 0
    assert net.training  # the mode is kept
    out = net(x)
    assert out.shape == (4, 10) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize("ratio", [0.3, 0.7])
def test_params_fall_with_the_ratio(ratio):
    net, x = build(ResNetSpace(), {"stages": 2, "depth": 1, "width": 16}), inputs()
    before = measure(net, x[:1], latency=False)["params"]
    prune_model(net, ratio, x)
    kept = measure(net, x[:1], latency=False)["params"] / before
    assert kept == pytest.approx((1 - ratio) ** 2, abs=0.06)


def test_fine_tuning_after_pruning_lowers_the_loss():
    net, x = build(ResNetSpace(), {"stages": 2, "depth": 1, "width": 8}), inputs(32)
    y = torch.arange(32) % 10
    prune_model(net, 0.5, x)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)  # built after pruning
    losses = []
    for _ in range(5):
        loss = nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(("family", "config"), CONFIGS)
def test_checkpoint_restores_the_pruned_network(family, config):
    net, x = build(family, config), inputs()
    prune_model(net, 0.5, x)
    net.eval()
    buffer = io.BytesIO()
    torch.save({"structure": pruned_structure(net), "model": net.state_dict()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)  # plain data only
    fresh = restore_pruned(family.build(config, SHAPE, num_classes=10), checkpoint["structure"])
    fresh.load_state_dict(checkpoint["model"])
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh(x), net(x))
    assert measure(fresh, x[:1], latency=False) == measure(net, x[:1], latency=False)


def test_restore_rejects_another_architecture_or_version():
    net, x = build(ResNetSpace(), {"stages": 2, "depth": 2, "width": 8}), inputs()
    structure = pruned_structure(prune_model(net, 0.5, x))
    other = build(ResNetSpace(), {"stages": 2, "depth": 1, "width": 8})
    with pytest.raises(ValueError, match="rebuild the model"):
        restore_pruned(other, structure)
    with pytest.raises(ValueError, match="version"):
        restore_pruned(other, {**structure, "version": 99})


def test_groupnorm_loses_whole_groups():
    net = build(ResNetSpace(), {"stages": 2, "depth": 1, "width": 16, "norm": "group"})
    prune_model(net, 0.5, inputs())
    for m in net.modules():
        if isinstance(m, nn.GroupNorm):
            assert m.num_channels % m.num_groups == 0
            assert m.num_channels // m.num_groups == 2  # group size as built (8 groups of 2)


def test_densenet_groupnorm_warns_about_groups_left_whole():
    config = {"blocks": 2, "layers": 2, "growth": 8, "norm": "group"}
    net, x = build(DenseNetSpace(), config), inputs()
    before = measure(net, x[:1], latency=False)["params"]
    with pytest.warns(UserWarning, match="left .* channel group"):
        prune_model(net, 0.5, x)
    assert before * 0.5 < measure(net, x[:1], latency=False)["params"] < before  # bottlenecks
    assert net(x).shape == (4, 10)


def test_ratio_zero_is_a_no_op():
    net, x = build(ResNetSpace(), {"stages": 1, "depth": 1, "width": 4}), inputs()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    assert prune_model(net, 0, x) is net
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5, True, "0.5", None])
def test_bad_ratio_raises(ratio):
    net = build(ResNetSpace(), {"stages": 1, "depth": 1, "width": 4})
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        prune_model(net, ratio, inputs())


def test_high_ratio_keeps_at_least_one_channel_per_layer():
    net, x = build(ResNetSpace(), {"stages": 2, "depth": 1, "width": 4}), inputs()
    prune_model(net, 0.95, x)
    assert all(m.out_channels >= 1 for m in net.modules() if isinstance(m, nn.Conv2d))
    assert net(x).shape == (4, 10)


def test_pruning_keeps_batchnorm_statistics_of_kept_channels():
    net, x = build(ResNetSpace(), {"stages": 1, "depth": 1, "width": 8}), inputs()
    net.stem[1].running_mean.copy_(torch.arange(8.0))
    prune_model(net, 0.5, x)  # traced in eval mode: statistics not updated
    kept = net.stem[1].running_mean
    assert len(kept) == 4 and set(kept.tolist()) <= set(range(8))
