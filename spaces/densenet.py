"""The DenseNet family (Huang et al., 2017, "Densely Connected Convolutional Networks").

A network is a stem, ``blocks`` dense blocks separated by transitions, a final norm and
activation, global average pooling and a linear classifier. Inside a dense block each
layer sees the concatenation of all earlier feature maps and adds ``growth`` new
channels. Layers are pre-activation: norm, act, 1x1 conv to ``bn_size * growth``
channels (the "B" of DenseNet-BC; ``bn_size=0`` drops it), norm, act, 3x3 conv to
``growth``, then dropout. A transition (norm, act, 1x1 conv keeping
``floor(compression * C)`` channels, 2x2 average pool) halves each dimension larger
than 1, so any input down to 1x1 works.

Per-block depth follows a shared rule that per-block knobs override: ``layers_k``
(layers of block ``k``, active only when ``blocks >= k``) defaults to ``layers``.

Example:
    >>> import torch
    >>> from spaces import DenseNetSpace, Int
    >>> family = DenseNetSpace(blocks=2, layers=Int(2, 6), growth=8)
    >>> net = family.build({"blocks": 2, "layers": 3, "growth": 8}, (1, 8, 8), num_classes=10)
    >>> net(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    >>> d121 = DenseNetSpace.preset("densenet121")
    >>> sum(p.numel() for p in family.build(d121, (3, 224, 224), 1000).parameters())
    7978856
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from spaces.family import (
    Family,
    check_build_args,
    check_shared_used,
    stage_knobs,
)
from spaces.params import Param
from spaces.resnet import (
    ACT_LAYERS,
    NORM_LAYERS,
    STEMS,
    NormLayer,
    make_stem,
    stem_size,
)

MAX_BLOCKS = 6


class DenseLayer(nn.Module):
    """One layer of a dense block: returns ``growth`` new channels.

    Args:
        in_ch: Channels of the concatenated input.
        growth: New channels produced.
        bn_size: Bottleneck width as a multiple of ``growth``; 0 for no bottleneck.
        dropout: Dropout probability on the new channels.
        act_layer: Activation module class.
        norm_layer: Normalisation module factory taking the channel count.
    """

    def __init__(
        self,
        in_ch: int,
        growth: int,
        bn_size: int = 4,
        dropout: float = 0.0,
        act_layer: type[nn.Module] = nn.ReLU,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        mid = bn_size * growth if bn_size else in_ch
        self.bottleneck: nn.Module = nn.Identity()
        if bn_size:
            self.bottleneck = nn.Sequential(
                norm_layer(in_ch), act_layer(), nn.Conv2d(in_ch, mid, 1, bias=False)
            )
        self.norm = norm_layer(mid)
        self.act = act_layer()
        self.conv = nn.Conv2d(mid, growth, 3, 1, 1, bias=False)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.conv(self.act(self.norm(self.bottleneck(x)))))


class DenseBlock(nn.Module):
    """``num_layers`` dense layers; the output concatenates the input and every new map."""

    def __init__(self, num_layers: int, in_ch: int, growth: int, **layer_args: Any) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DenseLayer(in_ch + i * growth, growth, **layer_args) for i in range(num_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """Norm, act, 1x1 conv to ``out_ch``, and average pooling by ``pool`` per dimension."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        pool: tuple[int, int],
        act_layer: type[nn.Module] = nn.ReLU,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__(
            norm_layer(in_ch),
            act_layer(),
            nn.Conv2d(in_ch, out_ch, 1, bias=False),
            nn.AvgPool2d(pool, pool),
        )


class DenseNet(nn.Module):
    """Stem, dense blocks with transitions, final norm and act, pooling, linear head.

    Args:
        in_chans: Input channels.
        num_classes: Output logits.
        block_layers: Layers of each dense block.
        pools: Pooling of each transition (one fewer than blocks), per dimension.
        growth: Channels each layer adds.
        init_features: Channels of the stem.
        stem: ``"cifar"`` or ``"imagenet"`` (see :func:`spaces.resnet.make_stem`).
        bn_size: Bottleneck factor (0: none).
        compression: Share of channels a transition keeps, in (0, 1].
        dropout: Dropout probability after each dense layer.
        act_layer: Activation module class.
        norm_layer: Normalisation module factory taking the channel count.
    """

    def __init__(
        self,
        in_chans: int,
        num_classes: int,
        block_layers: Sequence[int],
        pools: Sequence[tuple[int, int]],
        growth: int = 12,
        init_features: int = 24,
        stem: str = "cifar",
        bn_size: int = 4,
        compression: float = 0.5,
        dropout: float = 0.0,
        act_layer: type[nn.Module] = nn.ReLU,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if len(pools) != len(block_layers) - 1:
            raise ValueError(f"Give one pool per transition: {len(block_layers) - 1}.")
        layer_args = {"bn_size": bn_size, "dropout": dropout}
        layer_args.update(act_layer=act_layer, norm_layer=norm_layer)
        parts: list[nn.Module] = []
        ch = init_features
        for i, n in enumerate(block_layers):
            parts.append(DenseBlock(n, ch, growth, **layer_args))
            ch += n * growth
            if i < len(pools):
                out = max(1, int(ch * compression + 1e-6))
                parts.append(Transition(ch, out, pools[i], act_layer, norm_layer))
                ch = out
        self.stem = make_stem(stem, in_chans, init_features, act_layer, norm_layer)
        self.features = nn.Sequential(*parts)
        self.final = nn.Sequential(norm_layer(ch), act_layer())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(ch, num_classes)
        self.num_features = ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final(self.features(self.stem(x)))
        return self.head(torch.flatten(self.pool(x), 1))


def _torchvision_preset(growth: int, init: int, layers: tuple[int, ...]) -> dict[str, Any]:
    """torchvision's DenseNet-BC: ImageNet stem, bn_size 4, compression 0.5."""
    config: dict[str, Any] = {"blocks": len(layers), "layers": layers[0], "growth": growth}
    config.update(stem="imagenet", init_features=init)
    config.update({f"layers_{k}": n for k, n in enumerate(layers, 1) if n != layers[0]})
    return config


class DenseNetSpace(Family):
    """Search space of DenseNets: blocks, layers, growth, bottleneck, compression, dropout.

    Core knobs (always in the configuration):

    Args:
        blocks: Number of dense blocks (1-6). Default 3.
        layers: Layers per block, unless ``layers_k`` says otherwise (1-128). Default 4.
        growth: Growth rate k, the channels each layer adds (1-512). Default 12.

    Optional knobs (in the configuration only when passed; the default otherwise):

    Args:
        stem: ``"cifar"`` (3x3, stride 1; default) or ``"imagenet"`` (7x7 stride 2 and
            3x3 stride-2 max pool), as in :class:`~spaces.ResNetSpace`.
        init_features: Channels of the stem (1-2048); default ``2 * growth``.
        bn_size: Bottleneck width in multiples of ``growth`` (0-16; 0: no bottleneck).
            Default 4.
        compression: Share of channels a transition keeps, in [0.01, 1]. Default 0.5.
        dropout: Dropout after each dense layer, in [0, 0.9]. Default 0.
        act: ``"relu"`` (default), ``"silu"``, ``"gelu"``, ``"hardswish"``, ``"leaky_relu"``.
        norm: ``"batch"`` (default), ``"group"`` or ``"layer"``.
        layers_1..layers_6: Layers of block k (1-128); active when ``blocks >= k``.

    Presets (:meth:`preset`): ``densenet121``, ``densenet161``, ``densenet169``,
    ``densenet201`` reproduce torchvision's networks (same parameter counts).

    Example:
        >>> from spaces import Categorical, Int
        >>> space = DenseNetSpace(blocks=Int(2, 3), growth=Categorical([12, 24]), layers_3=8)
        >>> space.conditions()
        {'layers_3': {'blocks': (3,)}}
    """

    kind = "densenet"
    architecture = True
    defaults = {"blocks": 3, "layers": 4, "growth": 12}
    optional = {
        "stem": "cifar",
        "init_features": None,
        "bn_size": 4,
        "compression": 0.5,
        "dropout": 0.0,
        "act": "relu",
        "norm": "batch",
        **stage_knobs("layers", MAX_BLOCKS),
    }
    rules = {
        "blocks": ("range", 1, MAX_BLOCKS, True),
        "layers": ("range", 1, 128, True),
        "growth": ("range", 1, 512, True),
        "stem": ("in", STEMS),
        "init_features": ("range", 1, 2048, True),
        "bn_size": ("range", 0, 16, True),
        "compression": ("range", 0.01, 1.0, False),
        "dropout": ("range", 0.0, 0.9, False),
        "act": ("in", set(ACT_LAYERS)),
        "norm": ("in", set(NORM_LAYERS)),
    }
    stage_count = "blocks"
    presets = {
        "densenet121": _torchvision_preset(32, 64, (6, 12, 24, 16)),
        "densenet161": _torchvision_preset(48, 96, (6, 12, 36, 24)),
        "densenet169": _torchvision_preset(32, 64, (6, 12, 32, 32)),
        "densenet201": _torchvision_preset(32, 64, (6, 12, 48, 32)),
    }

    def knob_conditions(self, knobs: Mapping[str, Param]) -> dict[str, dict[str, list[Any]]]:
        out = super().knob_conditions(knobs)
        check_shared_used(self, knobs, "layers")
        return out

    def build(
        self, config: Mapping[str, Any], input_shape: tuple[int, int, int], num_classes: int
    ) -> DenseNet:
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
        h, w = stem_size(cfg["stem"], (h, w))
        pools = []
        for _ in range(cfg["blocks"] - 1):
            pool = (2 if h > 1 else 1, 2 if w > 1 else 1)
            h, w = h // pool[0], w // pool[1]
            pools.append(pool)
        return DenseNet(
            c,
            int(num_classes),
            [cfg[f"layers_{k}"] or cfg["layers"] for k in range(1, cfg["blocks"] + 1)],
            pools,
            growth=cfg["growth"],
            init_features=cfg["init_features"] or 2 * cfg["growth"],
            stem=cfg["stem"],
            bn_size=cfg["bn_size"],
            compression=cfg["compression"],
            dropout=cfg["dropout"],
            act_layer=ACT_LAYERS[cfg["act"]],
            norm_layer=NORM_LAYERS[cfg["norm"]],
        )
