"""Structural (channel) pruning of a trained network, by dependency graph.

Removes whole channels, so the pruned network is a smaller dense network that runs
faster everywhere, not a masked one. The couplings between layers (a residual sum ties
the channels of every block in a stage, a concatenation maps slices of its input to the
layers that produced them, a norm follows its convolution) come from Torch-Pruning's
dependency graph (Fang et al., 2023, "DepGraph: Towards Any Structural Pruning", CVPR):
each group of coupled channels is ranked by the L2 norm of all its weights (magnitude
importance, as in Li et al., 2017, "Pruning Filters for Efficient ConvNets") and the
weakest are removed from every layer of the group at once.

A pruned network no longer matches the one its configuration builds, so a checkpoint
stores :func:`pruned_structure` beside the state dict, and :func:`restore_pruned` reshapes
a freshly built network before ``load_state_dict``.

Example:
    >>> import torch
    >>> from spaces import ResNetSpace
    >>> config = {"stages": 2, "depth": 1, "width": 8}
    >>> net = ResNetSpace().build(config, (1, 8, 8), num_classes=10)
    >>> x = torch.zeros(1, 1, 8, 8)
    >>> before = measure(net, x, latency=False)["params"]
    >>> net = prune_model(net, 0.5, x)
    >>> net(x).shape, before, measure(net, x, latency=False)["params"]
    (torch.Size([1, 10]), 5122, 1382)
    >>> fresh = restore_pruned(ResNetSpace().build(config, (1, 8, 8), 10), pruned_structure(net))
    >>> fresh.load_state_dict(net.state_dict())
    <All keys matched successfully>
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from spaces.stats import model_stats

STRUCTURE_VERSION = 1
# Module attributes that hold a layer's widths; recorded and restored with the tensors.
_WIDTH_ATTRS = (
    "in_channels",
    "out_channels",
    "groups",
    "num_features",
    "num_channels",
    "num_groups",
    "in_features",
    "out_features",
    "normalized_shape",
)
_ROOT_TYPES = (nn.modules.conv._ConvNd, nn.Linear)


def check_ratio(ratio: float) -> float:
    """``ratio`` as a float, or ValueError unless it is a number in [0, 1).

    Example:
        >>> check_ratio(0.5)
        0.5
    """
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
        raise ValueError(
            f"Pruning ratio must be a number in [0, 1) (the share of channels removed from "
            f"each layer, e.g. 0.5), got {ratio!r}."
        )
    return float(ratio)


def prune_model(
    model: nn.Module,
    ratio: float,
    example_inputs: torch.Tensor,
    *,
    ignored_layers: Iterable[nn.Module] | None = None,
) -> nn.Module:
    """Remove the ``ratio`` least important output channels of every prunable layer, in place.

    ``ratio`` has the meaning of Torch-Pruning's ``pruning_ratio`` with local (per-layer)
    ranking: each group of coupled channels keeps ``round((1 - ratio) * n)`` of its
    ``n`` channels, and at least one. Since both the input and the output channels of
    most convolutions shrink, parameters and FLOPs fall to about ``(1 - ratio) ** 2`` of
    the original (a little more, since the network's input channels and output classes
    stay): ratio 0.3 keeps about 50% of a small ResNet's parameters, 0.5 about 27%, 0.7
    about 10%.

    Under a ``GroupNorm`` with several groups, whole norm groups are removed (the same
    share of them), so every kept channel is normalised with the same channels as before
    and at least one group stays; under a single-group norm (``norm="layer"``) at least
    two channels stay, so it never normalises a single value on a 1x1 map. Every
    ``ResNetSpace`` network, and every ``DenseNetSpace`` network with batch or layer norm,
    prunes fully. A group whose channels a multi-group ``GroupNorm`` normalises together
    with other layers' channels (DenseNet's ``norm="group"``, after each concatenation)
    cannot shrink without changing what that norm computes, so it is left whole, with a
    warning (DenseNet's bottleneck convolutions still prune); grouped (non-depthwise)
    convolutions are left whole likewise.

    Args:
        model: The network; its training mode is kept. Build the optimizer after pruning.
        ratio: Share of channels to remove, in [0, 1); 0 returns the model unchanged.
        example_inputs: A batch the model accepts, on its device, to trace the graph.
        ignored_layers: Layers whose output channels must stay; default the last
            convolution or linear layer the forward pass calls (the classifier), so the
            output keeps its classes.

    Returns:
        ``model``, pruned.

    Raises:
        ValueError: for a ratio outside [0, 1).

    Example:
        >>> from spaces import DenseNetSpace
        >>> net = DenseNetSpace().build({"blocks": 2, "layers": 2, "growth": 8}, (1, 8, 8), 10)
        >>> x = torch.zeros(2, 1, 8, 8)
        >>> prune_model(net, 0.5, x)(x).shape
        torch.Size([2, 10])
    """
    ratio = check_ratio(ratio)
    if ratio == 0:
        return model
    import torch_pruning as tp

    was_training = model.training
    model.eval()  # tracing runs a forward pass: no BatchNorm statistics, no dropout draws
    try:
        with torch.enable_grad():
            keep = _output_layers(model, example_inputs) if ignored_layers is None else []
            ignored = [m for layer in [*keep, *(ignored_layers or [])] for m in layer.modules()]
            graph = tp.DependencyGraph().build_dependency(model, example_inputs=example_inputs)
        importance = tp.importance.MagnitudeImportance(p=2)
        plans, skipped = [], 0
        for group in graph.get_all_groups(ignored_layers=ignored, root_module_types=_ROOT_TYPES):
            found = _norm_groups(group, graph)
            if found is None:
                skipped += 1
                continue
            n_groups, norms = found
            # A GroupNorm must not normalise a single value (a lone channel on a 1x1 map).
            idxs = _weakest(group, importance, n_groups, 2 if norms else 1, ratio)
            if idxs:
                root = group[0].dep.target.module
                plans.append((root, group[0].dep.handler, idxs, norms))
        for root, handler, idxs, norms in plans:
            group = graph.get_pruning_group(root, handler, idxs)
            if graph.check_pruning_group(group):
                channels = [m.num_channels for m in norms]
                group.prune()
                for m, before in zip(norms, channels, strict=True):  # whole norm groups went
                    m.num_groups = max(1, m.num_groups * m.num_channels // before)
    finally:
        model.train(was_training)
    if skipped:
        warnings.warn(
            f"prune_model left {skipped} channel group(s) whole: a multi-group GroupNorm "
            "normalises their channels together with other layers' channels (as after a "
            "concatenation), or a grouped convolution uses them. Use norm='batch' or "
            "'layer' to prune them too.",
            UserWarning,
            stacklevel=2,
        )
    return model


def _output_layers(model: nn.Module, example_inputs: torch.Tensor) -> list[nn.Module]:
    """The last convolution or linear layer a forward pass calls: the classifier."""
    called: list[nn.Module] = []
    handles = [
        m.register_forward_hook(lambda mod, _i, _o: called.append(mod))
        for m in model.modules()
        if isinstance(m, _ROOT_TYPES)
    ]
    try:
        with torch.no_grad():
            model(example_inputs)
    finally:
        for h in handles:
            h.remove()
    return called[-1:]


def _norm_groups(group: Any, graph: Any) -> tuple[int, list[nn.GroupNorm]] | None:
    """The GroupNorm group count shared by the group's layers (1 without one) and those
    norms; None when pruning the group is unsafe."""
    channels = graph.get_out_channels(group[0].dep.target.module)
    norms = []
    for dep, _ in group:
        m = dep.target.module
        if isinstance(m, nn.GroupNorm):
            if m.num_groups > 1 and m.num_channels != channels:
                return None
            if all(m is not seen for seen in norms):
                norms.append(m)
        elif isinstance(m, nn.modules.conv._ConvNd) and 1 < m.groups != m.in_channels:
            return None
    counts = {m.num_groups for m in norms}
    if len(counts) > 1:
        return None
    return (counts.pop() if counts else 1), norms


def _weakest(group: Any, importance: Any, norm_groups: int, least: int, ratio: float) -> list[int]:
    """Root-relative indices of the channels to remove.

    Under a multi-group GroupNorm whole norm groups go (ranked by their mean importance),
    so every channel kept is normalised with the same channels as before; otherwise single
    channels go, keeping at least ``least``.
    """
    imp = importance(group)
    if imp is None:
        return []
    units = imp.detach().float().cpu().view(norm_groups, -1).mean(1 if norm_groups > 1 else 0)
    n = units.numel()
    keep = max(min(least, n) if norm_groups == 1 else 1, math.floor((1 - ratio) * n + 0.5))
    drop = torch.argsort(units)[: n - keep].tolist()
    if norm_groups == 1:
        return sorted(drop)
    size = imp.numel() // norm_groups
    return sorted(b * size + j for b in drop for j in range(size))


def pruned_structure(model: nn.Module) -> dict[str, Any]:
    """The shapes that make ``model`` differ from a freshly built one: a plain dict.

    Holds every parameter's and buffer's shape and every layer's width attributes
    (``in_channels``, ``num_features``, ...), as lists of ints, so it can be
    ``torch.save``-d (and ``torch.load``-ed with ``weights_only=True``) or written as JSON.

    Example:
        >>> pruned_structure(nn.Linear(3, 2))["shapes"]
        {'weight': [2, 3], 'bias': [2]}
    """
    shapes = {
        name: list(t.shape) for name, t in [*model.named_parameters(), *model.named_buffers()]
    }
    attrs: dict[str, dict[str, Any]] = {}
    for name, module in model.named_modules():
        found = {}
        for attr in _WIDTH_ATTRS:
            value = getattr(module, attr, None)
            if isinstance(value, int) and not isinstance(value, bool):
                found[attr] = value
            elif isinstance(value, tuple) and all(isinstance(v, int) for v in value):
                found[attr] = list(value)
        if found:
            attrs[name] = found
    return {"version": STRUCTURE_VERSION, "shapes": shapes, "attrs": attrs}


def restore_pruned(model: nn.Module, structure: Mapping[str, Any]) -> nn.Module:
    """Reshape a freshly built network to a pruned one's structure, in place.

    The tensors are resized but not filled: call ``model.load_state_dict`` next.

    Args:
        model: The unpruned network, built from the same configuration.
        structure: What :func:`pruned_structure` returned for the pruned network.

    Returns:
        ``model``, with the pruned shapes.

    Raises:
        ValueError: for another structure version, or one that names tensors or layers
            ``model`` lacks (the network was built from another configuration).

    Example:
        >>> small = nn.Linear(3, 2)
        >>> restore_pruned(nn.Linear(5, 4), pruned_structure(small))
        Linear(in_features=3, out_features=2, bias=True)
    """
    if structure.get("version") != STRUCTURE_VERSION:
        raise ValueError(
            f"Pruned structure version {structure.get('version')!r} is not supported (this "
            f"code reads version {STRUCTURE_VERSION}); prune the network again."
        )
    modules = dict(model.named_modules())
    tensors = {*dict(model.named_parameters()), *dict(model.named_buffers())}
    missing = sorted(
        (set(structure["shapes"]) - tensors) | (set(structure["attrs"]) - set(modules))
    )
    if missing:
        raise ValueError(
            f"The pruned structure names {missing[:5]} that the model lacks; rebuild the "
            "model from the configuration it was pruned from."
        )
    for name, shape in structure["shapes"].items():
        owner, _, leaf = name.rpartition(".")
        _resize(modules[owner], leaf, shape)
    for name, found in structure["attrs"].items():
        for attr, value in found.items():
            setattr(modules[name], attr, tuple(value) if isinstance(value, list) else value)
    return model


def _resize(module: nn.Module, leaf: str, shape: list[int]) -> None:
    """Replace a parameter or buffer by an uninitialised one of ``shape``."""
    if leaf in module._parameters:
        old = module._parameters[leaf]
        if old is not None and list(old.shape) != shape:
            new = torch.empty(shape, dtype=old.dtype, device=old.device)
            module._parameters[leaf] = nn.Parameter(new, requires_grad=old.requires_grad)
    else:
        buf = module._buffers[leaf]
        if buf is not None and list(buf.shape) != shape:
            module._buffers[leaf] = torch.empty(shape, dtype=buf.dtype, device=buf.device)


def measure(
    model: nn.Module,
    example_inputs: torch.Tensor,
    *,
    latency: bool = True,
    repeats: int = 20,
) -> dict[str, Any]:
    """Parameters, FLOPs, activation bytes and latency of any module, for one image.

    A thin wrapper over :func:`spaces.model_stats` on a built module: batch size 1 of
    ``example_inputs``'s shape ``(N, channels, height, width)``, on its device; latency
    is the median of ``repeats`` no-grad forward passes after two warm-up passes, in
    eval mode (the training mode is restored). A quantized model's packed int8 weights
    are not ``nn.Parameter``s and its quantized kernels are not counted as FLOPs, so read
    only its latency.

    Returns:
        ``{"params", "flops", "activation_bytes", "latency_ms"}`` (``latency_ms`` None
        when ``latency`` is False).

    Example:
        >>> measure(nn.Conv2d(1, 4, 3), torch.zeros(1, 1, 8, 8), latency=False)["params"]
        40
    """
    stats = model_stats(
        model,
        input_shape=tuple(example_inputs.shape[1:]),  # type: ignore[arg-type]
        latency=latency,
        device=example_inputs.device,
        repeats=repeats,
    )
    return dataclasses.asdict(stats)
