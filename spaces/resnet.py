"""The ResNet family (He et al., 2016, "Deep Residual Learning for Image Recognition").

A network is a stem, ``stages`` stages of residual blocks, global average pooling and a
linear classifier. Blocks are basic (two kxk convolutions) or bottleneck (1x1, kxk,
1x1 with expansion 4; the stride sits in the kxk convolution, as in torchvision's
"ResNet v1.5"), optionally with squeeze-and-excitation (Hu et al., 2018,
"Squeeze-and-Excitation Networks") before the residual sum.

Per-stage shape follows a shared rule that per-stage knobs override:

* ``depth_k`` (blocks in stage ``k``) defaults to ``depth``;
* ``width_k`` (channels of stage ``k``; a bottleneck outputs 4x as many) defaults to
  ``width * 2 ** (k - 1)``; ``width`` is also the stem's width;
* ``stride_k`` (1 or 2) defaults to 1 for the first stage and 2 for the others.

A per-stage knob is active only when the network has that stage (``when=`` on
``stages``), so ``ResNetSpace(stages=Int(2, 4), depth_4=Int(1, 8))`` searches the depth
of a fourth stage only for four-stage networks. A stride never reduces a dimension that
is already 1, so any input down to 1x1 works; odd sizes round up.

Example:
    >>> import torch
    >>> from spaces import ResNetSpace, Int
    >>> family = ResNetSpace(stages=2, depth=Int(1, 3), width=16)
    >>> net = family.build({"stages": 2, "depth": 1, "width": 16}, input_shape=(1, 8, 8),
    ...                    num_classes=10)
    >>> net(torch.zeros(4, 1, 8, 8)).shape
    torch.Size([4, 10])
    >>> r50 = ResNetSpace.preset("resnet50")
    >>> sum(p.numel() for p in ResNetSpace().build(r50, (3, 224, 224), 1000).parameters())
    25557032
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from spaces.family import (
    Family,
    check_build_args,
    check_shared_used,
    stage_knobs,
    when_in,
)
from spaces.params import Fixed, Param

NormLayer = Callable[[int], nn.Module]

MAX_STAGES = 6


def group_norm(channels: int) -> nn.Module:
    """GroupNorm (Wu & He, 2018) with up to 32 groups of at least 2 channels each.

    The group count is the largest divisor of ``channels`` that is at most 32 and at most
    ``channels // 2`` (1 for a single channel), so a group never normalises a single
    value on a 1x1 feature map.
    """
    cap = min(32, max(1, channels // 2))
    return nn.GroupNorm(max(g for g in range(1, cap + 1) if channels % g == 0), channels)


def layer_norm(channels: int) -> nn.Module:
    """Normalisation over channels and space of each example (GroupNorm with one group)."""
    return nn.GroupNorm(1, channels)


ACT_LAYERS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "hardswish": nn.Hardswish,
    "leaky_relu": nn.LeakyReLU,
}
NORM_LAYERS: dict[str, NormLayer] = {
    "batch": nn.BatchNorm2d,
    "group": group_norm,
    "layer": layer_norm,
}
STEMS = {"cifar", "imagenet"}


def make_stem(
    kind: str, in_ch: int, out_ch: int, act_layer: type[nn.Module], norm_layer: NormLayer
) -> nn.Sequential:
    """The stem: ``"cifar"`` is a 3x3 conv, stride 1; ``"imagenet"`` a 7x7 stride-2 conv
    and a 3x3 stride-2 max pool. Both end with norm and activation after the conv."""
    if kind == "cifar":
        return nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False), norm_layer(out_ch), act_layer()
        )
    if kind == "imagenet":
        return nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 7, 2, 3, bias=False),
            norm_layer(out_ch),
            act_layer(),
            nn.MaxPool2d(3, 2, 1),
        )
    raise ValueError(f"Unknown stem {kind!r}; valid stems: {sorted(STEMS)}.")


def stem_size(kind: str, size: tuple[int, int]) -> tuple[int, int]:
    """The spatial size after :func:`make_stem` (each stride-2 step rounds up)."""
    steps = 2 if kind == "imagenet" else 0
    h, w = size
    for _ in range(steps):
        h, w = -(-h // 2), -(-w // 2)
    return h, w


class SqueezeExcite(nn.Module):
    """Channel attention: pool, reduce to ``round(channels * ratio)``, expand, gate.

    Example:
        >>> SqueezeExcite(16, 0.25)(torch.ones(2, 16, 4, 4)).shape
        torch.Size([2, 16, 4, 4])
    """

    def __init__(self, channels: int, ratio: float, act_layer: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        hidden = max(1, round(channels * ratio))
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.act = act_layer()
        self.expand = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.expand(self.act(self.reduce(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(scale)


def _shortcut(in_ch: int, out_ch: int, stride: tuple[int, int], norm: NormLayer) -> nn.Module:
    if stride == (1, 1) and in_ch == out_ch:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), norm(out_ch))


class BasicBlock(nn.Module):
    """Two kxk convolutions with a residual connection (projection when the shape changes).

    Args:
        in_ch: Input channels.
        width: Channels of both convolutions (and of the output).
        stride: Stride of the first convolution, per dimension.
        kernel_size: Odd kernel size of both convolutions.
        se_ratio: Squeeze-and-excitation reduction ratio, or None for no SE.
        act_layer: Activation module class.
        norm_layer: Normalisation module factory taking the channel count.
    """

    expansion = 1

    def __init__(
        self,
        in_ch: int,
        width: int,
        stride: tuple[int, int] = (1, 1),
        kernel_size: int = 3,
        se_ratio: float | None = None,
        act_layer: type[nn.Module] = nn.ReLU,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv2d(in_ch, width, kernel_size, stride, pad, bias=False)
        self.bn1 = norm_layer(width)
        self.act1 = act_layer()
        self.conv2 = nn.Conv2d(width, width, kernel_size, 1, pad, bias=False)
        self.bn2 = norm_layer(width)
        self.se = SqueezeExcite(width, se_ratio, act_layer) if se_ratio else nn.Identity()
        self.shortcut = _shortcut(in_ch, width, stride, norm_layer)
        self.act2 = act_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        return self.act2(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, kxk (strided), 1x1 expand to ``4 * width``, with a residual connection.

    Takes the same arguments as :class:`BasicBlock`; the output has ``4 * width`` channels.
    """

    expansion = 4

    def __init__(
        self,
        in_ch: int,
        width: int,
        stride: tuple[int, int] = (1, 1),
        kernel_size: int = 3,
        se_ratio: float | None = None,
        act_layer: type[nn.Module] = nn.ReLU,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = norm_layer(width)
        self.act1 = act_layer()
        self.conv2 = nn.Conv2d(width, width, kernel_size, stride, kernel_size // 2, bias=False)
        self.bn2 = norm_layer(width)
        self.act2 = act_layer()
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = norm_layer(out_ch)
        self.se = SqueezeExcite(out_ch, se_ratio, act_layer) if se_ratio else nn.Identity()
        self.shortcut = _shortcut(in_ch, out_ch, stride, norm_layer)
        self.act3 = act_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        return self.act3(out + self.shortcut(x))


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
}


@dataclass(frozen=True)
class StageSpec:
    """One stage: ``depth`` blocks of ``width``, the first with ``stride``; ``size`` after it."""

    depth: int
    width: int
    stride: tuple[int, int]
    size: tuple[int, int]


class ResNet(nn.Module):
    """A stem, a sequence of residual stages, global average pooling and a linear head.

    Args:
        in_chans: Input channels.
        num_classes: Output logits.
        stages: What each stage holds (see :meth:`ResNetSpace.stage_plan`).
        stem: ``"cifar"`` or ``"imagenet"`` (see :func:`make_stem`).
        stem_width: Output channels of the stem.
        block: ``"basic"`` or ``"bottleneck"``.
        kernel_size: Odd kernel size of the blocks' spatial convolutions.
        se_ratio: Squeeze-and-excitation ratio in every block, or None.
        act_layer: Activation module class.
        norm_layer: Normalisation module factory taking the channel count.
    """

    def __init__(
        self,
        in_chans: int,
        num_classes: int,
        stages: Sequence[StageSpec],
        stem: str = "cifar",
        stem_width: int = 16,
        block: str = "basic",
        kernel_size: int = 3,
        se_ratio: float | None = None,
        act_layer: type[nn.Module] = nn.ReLU,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.stem = make_stem(stem, in_chans, stem_width, act_layer, norm_layer)
        block_cls = BLOCKS[block]
        ch = stem_width
        layers: list[nn.Module] = []
        for spec in stages:
            blocks = []
            for i in range(spec.depth):
                stride = spec.stride if i == 0 else (1, 1)
                blocks.append(
                    block_cls(ch, spec.width, stride, kernel_size, se_ratio, act_layer, norm_layer)
                )
                ch = spec.width * block_cls.expansion
            layers.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(ch, num_classes)
        self.num_features = ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.head(torch.flatten(self.pool(x), 1))


def _plan(cfg: Mapping[str, Any], size: Sequence[int]) -> list[StageSpec]:
    """The stages of a resolved configuration, for an input of spatial ``size``."""
    h, w = stem_size(cfg["stem"], (size[0], size[1]))
    plan = []
    for k in range(1, cfg["stages"] + 1):
        s = cfg[f"stride_{k}"] or (1 if k == 1 else 2)
        stride = (s if h > 1 else 1, s if w > 1 else 1)
        h, w = -(-h // stride[0]), -(-w // stride[1])
        depth = cfg[f"depth_{k}"] or cfg["depth"]
        width = cfg[f"width_{k}"] or cfg["width"] * 2 ** (k - 1)
        plan.append(StageSpec(depth, width, stride, (h, w)))
    return plan


def _torchvision_preset(block: str, depths: tuple[int, ...]) -> dict[str, Any]:
    """torchvision's ResNets: ImageNet stem, width 64; ``depth`` is the first stage's."""
    config: dict[str, Any] = {"stages": 4, "depth": depths[0], "width": 64, "stem": "imagenet"}
    if block != "basic":
        config["block"] = block
    config.update({f"depth_{k}": d for k, d in enumerate(depths, 1) if d != depths[0]})
    return config


class ResNetSpace(Family):
    """Search space of ResNets: macro shape, block type, kernel, SE, activation and norm.

    Core knobs (always in the configuration):

    Args:
        stages: Number of stages (1-6). Default 3.
        depth: Blocks per stage, unless ``depth_k`` says otherwise (1-64). Default 2.
        width: Stem width, and width of stage ``k`` is ``width * 2**(k-1)`` unless
            ``width_k`` says otherwise (1-1024). Default 16.

    Optional knobs (in the configuration only when passed; the default otherwise):

    Args:
        stem: ``"cifar"`` (3x3, stride 1; default) or ``"imagenet"`` (7x7 stride 2 and
            3x3 stride-2 max pool).
        block: ``"basic"`` (default) or ``"bottleneck"`` (expansion 4).
        kernel_size: 3 (default), 5 or 7, for the blocks' spatial convolutions.
        se: Squeeze-and-excitation in every block (default False).
        se_ratio: SE reduction ratio in [0.01, 1] (default 1/16, the paper's r = 16);
            active only when ``se`` is True.
        act: ``"relu"`` (default), ``"silu"``, ``"gelu"``, ``"hardswish"``, ``"leaky_relu"``.
        norm: ``"batch"`` (default), ``"group"`` (up to 32 groups) or ``"layer"``.
        depth_1..depth_6: Blocks of stage k (1-64); active when ``stages >= k``.
        width_1..width_6: Width of stage k (1-4096); active when ``stages >= k``.
        stride_1..stride_6: Stride (1 or 2) of stage k; active when ``stages >= k``.

    Presets (:meth:`preset`): ``resnet18``, ``resnet34``, ``resnet50``, ``resnet101``,
    ``resnet152`` reproduce torchvision's networks (same parameter counts).

    Example:
        >>> from spaces import Categorical, Int
        >>> space = ResNetSpace(stages=Int(2, 4), block=Categorical(["basic", "bottleneck"]),
        ...                     depth_4=Int(1, 3))
        >>> sorted(space.decisions())
        ['block', 'depth_4', 'stages']
    """

    kind = "resnet"
    architecture = True
    defaults = {"stages": 3, "depth": 2, "width": 16}
    optional = {
        "stem": "cifar",
        "block": "basic",
        "kernel_size": 3,
        "se": False,
        "se_ratio": 0.0625,
        "act": "relu",
        "norm": "batch",
        **stage_knobs("depth", MAX_STAGES),
        **stage_knobs("width", MAX_STAGES),
        **stage_knobs("stride", MAX_STAGES),
    }
    rules = {
        "stages": ("range", 1, MAX_STAGES, True),
        "depth": ("range", 1, 64, True),
        "width": ("range", 1, 1024, True),
        "width_k": ("range", 1, 4096, True),
        "stride_k": ("in", {1, 2}),
        "stem": ("in", STEMS),
        "block": ("in", set(BLOCKS)),
        "kernel_size": ("in", {3, 5, 7}),
        "se": ("in", {False, True}),
        "se_ratio": ("range", 0.01, 1.0, False),
        "act": ("in", set(ACT_LAYERS)),
        "norm": ("in", set(NORM_LAYERS)),
    }
    stage_count = "stages"
    presets = {
        "resnet18": _torchvision_preset("basic", (2, 2, 2, 2)),
        "resnet34": _torchvision_preset("basic", (3, 4, 6, 3)),
        "resnet50": _torchvision_preset("bottleneck", (3, 4, 6, 3)),
        "resnet101": _torchvision_preset("bottleneck", (3, 4, 23, 3)),
        "resnet152": _torchvision_preset("bottleneck", (3, 8, 36, 3)),
    }

    def knob_conditions(self, knobs: Mapping[str, Param]) -> dict[str, dict[str, list[Any]]]:
        out = super().knob_conditions(knobs)
        if "se_ratio" in knobs:
            se = knobs.get("se", Fixed(False))
            when = when_in(self, "se_ratio", "se", se, [True])
            if when:
                out["se_ratio"] = when
        check_shared_used(self, knobs, "depth")
        return out

    def stage_plan(
        self, config: Mapping[str, Any], input_shape: tuple[int, int, int]
    ) -> list[StageSpec]:
        """Depth, width, stride and output size of each stage of a configuration.

        Example:
            >>> [s.size for s in ResNetSpace().stage_plan({"stages": 3}, (3, 7, 5))]
            [(7, 5), (4, 3), (2, 2)]
        """
        _, h, w = check_build_args(input_shape, 1)
        return _plan(self.resolve(config), (h, w))

    def build(
        self, config: Mapping[str, Any], input_shape: tuple[int, int, int], num_classes: int
    ) -> ResNet:
        """Build the network a configuration describes (on the current default device).

        Args:
            config: This family's part of a sampled configuration (missing optional
                knobs take their defaults); any valid configuration, not only this
                space's.
            input_shape: ``(channels, height, width)`` of one input; any size >= 1x1.
            num_classes: Number of output logits.

        Raises:
            ValueError: for an unknown key, unsupported value, or a bad shape.
        """
        cfg = self.resolve(config)
        c, h, w = check_build_args(input_shape, num_classes)
        return ResNet(
            c,
            int(num_classes),
            _plan(cfg, (h, w)),
            stem=cfg["stem"],
            stem_width=cfg["width"],
            block=cfg["block"],
            kernel_size=cfg["kernel_size"],
            se_ratio=cfg["se_ratio"] if cfg["se"] else None,
            act_layer=ACT_LAYERS[cfg["act"]],
            norm_layer=NORM_LAYERS[cfg["norm"]],
        )
