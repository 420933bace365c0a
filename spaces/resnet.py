"""The ResNet family (He et al., 2016, "Deep Residual Learning for Image Recognition").

This first version searches the macro shape of a CIFAR-style ResNet of basic blocks:
the number of stages, the blocks per stage and the base width (doubled at each stage,
with stride 2 at the start of every stage after the first while the feature map is
larger than 1x1). Block type, kernel size, squeeze-and-excitation and the reference
presets come with the full family.

Example:
    >>> import torch
    >>> from spaces import ResNetSpace, Int
    >>> family = ResNetSpace(stages=2, depth=Int(1, 3), width=16)
    >>> net = family.build({"stages": 2, "depth": 1, "width": 16}, input_shape=(1, 8, 8),
    ...                    num_classes=10)
    >>> net(torch.zeros(4, 1, 8, 8)).shape
    torch.Size([4, 10])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from spaces.family import Family, config_of
from spaces.params import Param


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (projection when the shape changes).

    Args:
        in_ch: Input channels.
        out_ch: Output channels.
        stride: Stride of the first convolution.
        act_layer: Activation module class.
        norm_layer: Normalisation module class taking the channel count.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        stride: int = 1,
        act_layer: type[nn.Module] = nn.ReLU,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = norm_layer(out_ch)
        self.act1 = act_layer()
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = norm_layer(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), norm_layer(out_ch)
            )
        self.act2 = act_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class ResNet(nn.Module):
    """A stem, ``stages`` stages of ``depth`` basic blocks, global pooling and a classifier."""

    def __init__(
        self, in_ch: int, num_classes: int, stages: int, depth: int, width: int, spatial: int
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_ch, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        blocks: list[nn.Module] = []
        ch, size = width, spatial
        for s in range(stages):
            out_ch = width * 2**s
            stride = 2 if s > 0 and size > 1 else 1
            size = (size + stride - 1) // stride
            for b in range(depth):
                blocks.append(BasicBlock(ch, out_ch, stride if b == 0 else 1))
                ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.head(torch.flatten(self.pool(x), 1))


class ResNetSpace(Family):
    """Search space of CIFAR-style ResNets of basic blocks.

    Args:
        stages: Number of stages (1-6); width doubles from one stage to the next.
        depth: Basic blocks per stage (1-16).
        width: Channels of the stem and first stage (1-1024).
    """

    kind = "resnet"
    architecture = True
    defaults = {"stages": 3, "depth": 2, "width": 16}

    def check_knob(self, name: str, param: Param) -> None:
        limits = {"stages": (1, 6), "depth": (1, 16), "width": (1, 1024)}
        self._require_range(name, param, *limits[name], integer=True)

    def build(
        self, config: Mapping[str, Any], input_shape: tuple[int, int, int], num_classes: int
    ) -> nn.Module:
        """Build the network a sampled configuration describes.

        Args:
            config: This family's part of a sampled configuration.
            input_shape: ``(channels, height, width)`` of one input.
            num_classes: Number of output logits.
        """
        cfg = config_of(type(self), config)
        c, h, w = input_shape
        return ResNet(c, num_classes, cfg["stages"], cfg["depth"], cfg["width"], min(h, w))
