"""Cost of a network before training: parameters, FLOPs, activation memory, latency.

Cheap enough to run on every proposal of a small search space, so a study can refuse
an architecture over a parameter or FLOP budget before it trains.

Example:
    >>> from spaces import ResNetSpace, model_stats
    >>> stats = model_stats(ResNetSpace(), {"stages": 2, "depth": 1, "width": 8},
    ...                     input_shape=(1, 8, 8), num_classes=10, latency=False)
    >>> stats.params, stats.latency_ms
    (5122, None)
    >>> stats.flops > 0 and stats.activation_bytes > 0
    True
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from spaces.family import Family, check_build_args


@dataclass(frozen=True)
class ModelStats:
    """What a network costs for one input (batch size 1).

    Attributes:
        params: Number of parameters (shared ones once), trainable or not.
        flops: Floating-point operations of one forward pass as
            :class:`torch.utils.flop_counter.FlopCounterMode` counts them: a multiply-add
            is 2 FLOPs (so FLOPs = 2 * MACs), and only matrix products and convolutions
            (and attention) are counted, not norms, activations, pooling or sums.
        activation_bytes: An estimate of activation memory: the bytes of every leaf
            module's output in one forward pass, in the model's dtype (fp32 as built).
            Tensor operations outside modules (residual sums, concatenations) are not
            counted, and in-place outputs count again.
        latency_ms: Median wall time of a forward pass (no_grad, eval mode) after
            warm-up, or None when not measured.
    """

    params: int
    flops: int
    activation_bytes: int
    latency_ms: float | None


def model_stats(
    model: nn.Module | Family,
    config: Mapping[str, Any] | None = None,
    *,
    input_shape: tuple[int, int, int],
    num_classes: int | None = None,
    latency: bool = True,
    device: str | torch.device = "cpu",
    repeats: int = 5,
) -> ModelStats:
    """Measure a network, given as a module or as a family and a configuration.

    A family's network is built on the CPU (without touching the global random state)
    and moved to ``device``. A module is measured where it is, in eval mode, and its
    training mode is restored afterwards.

    Args:
        model: An ``nn.Module``, or an architecture family with a ``build`` method.
        config: The family's configuration; only with a family.
        input_shape: ``(channels, height, width)`` of one input.
        num_classes: Output logits; needed with a family.
        latency: Whether to time forward passes.
        device: Where to run a family's network; a module must already be there.
        repeats: Timed forward passes (after two warm-up passes) whose median is taken.

    Raises:
        TypeError: for a ``model`` that is neither, or a missing/unexpected ``config``.
        ValueError: for a bad shape, a module on another device, or ``repeats < 1``.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive int, got {repeats!r}.")
    net = _network(model, config, input_shape, num_classes, torch.device(device))
    x = torch.zeros(1, *input_shape, device=device)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            flops, act_bytes = _count_forward(net, x)
            ms = _median_latency_ms(net, x, repeats) if latency else None
    finally:
        net.train(was_training)
    params = sum(p.numel() for p in net.parameters())
    return ModelStats(params=params, flops=flops, activation_bytes=act_bytes, latency_ms=ms)


def _network(
    model: nn.Module | Family,
    config: Mapping[str, Any] | None,
    input_shape: tuple[int, int, int],
    num_classes: int | None,
    device: torch.device,
) -> nn.Module:
    if isinstance(model, nn.Module):
        check_build_args(input_shape, 1)
        if config is not None:
            raise TypeError("model_stats: config is for a family; a module needs none.")
        where = {p.device for p in model.parameters()} | {b.device for b in model.buffers()}
        if where and where != {device}:
            raise ValueError(
                f"model_stats: the module is on {sorted(map(str, where))}; pass device= that, "
                f"or move it to {device} first."
            )
        return model
    if not isinstance(model, Family) or not hasattr(model, "build"):
        raise TypeError(
            "model_stats: model must be an nn.Module or an architecture family such as "
            f"ResNetSpace(); got {model!r}."
        )
    if config is None or num_classes is None:
        raise TypeError("model_stats: give config= and num_classes= to measure a family.")
    with torch.random.fork_rng(devices=[]), torch.device("cpu"):
        net = model.build(config, input_shape=input_shape, num_classes=num_classes)
    return net.to(device)


def _tensors(out: Any) -> Iterator[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        yield out
    elif isinstance(out, (list, tuple)):
        for item in out:
            yield from _tensors(item)
    elif isinstance(out, Mapping):
        for item in out.values():
            yield from _tensors(item)


def _count_forward(net: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """FLOPs and leaf-module output bytes of one forward pass."""
    total = [0]

    def hook(_module: nn.Module, _inputs: Any, out: Any) -> None:
        total[0] += sum(t.numel() * t.element_size() for t in _tensors(out))

    leaves = [m for m in net.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        counter = FlopCounterMode(display=False)
        with counter:
            net(x)
    finally:
        for h in handles:
            h.remove()
    return int(counter.get_total_flops()), total[0]


def forward_latency_ms(net: nn.Module, x: torch.Tensor, repeats: int = 5) -> float:
    """Median wall time in ms of ``net(x)`` (as called: wrap in ``no_grad``/eval mode first)
    over ``repeats`` passes after two warm-up passes, synchronising CUDA around each.

    Example:
        >>> forward_latency_ms(nn.Linear(4, 2), torch.zeros(8, 4)) > 0
        True
    """
    return _median_latency_ms(net, x, repeats)


def _median_latency_ms(net: nn.Module, x: torch.Tensor, repeats: int) -> float:
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    for _ in range(2):
        net(x)
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        net(x)
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)
