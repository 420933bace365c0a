"""Tests of the drawing of a trial's network (dashboard.network).

The blocks are checked against the torch model the trainers build from the same
configuration (and, for pruned trials, against ``trainers.pruning.prune_model``), over
configurations sampled from the project's spaces as a study records them.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
import optuna
import plotly.graph_objects as go
import pytest
import torch
from torch import nn

from dashboard.network import (
    KINDS,
    LABEL_LIMIT,
    NO_ARCH,
    NetworkInfo,
    get_network_info,
    plot_network,
)
from spaces import (
    Categorical,
    DenseNetSpace,
    Float,
    Int,
    ResNetSpace,
    SearchSpace,
    TrainingSpace,
)
from spaces.densenet import DenseLayer, Transition
from spaces.optuna_adapter import suggest
from spaces.resnet import BasicBlock, Bottleneck
from studies.records import TrialRecord
from trainers.pruning import prune_model

SHAPE = (1, 6, 6)  # small: the last stages' strides are turned off at 1x1

RESNET = ResNetSpace(
    stages=Int(1, 4),
    depth=Int(1, 3),
    width=Categorical([4, 6]),
    stem=Categorical(["cifar", "imagenet"]),
    block=Categorical(["basic", "bottleneck"]),
    kernel_size=Categorical([3, 5]),
    se=Categorical([False, True]),
    norm=Categorical(["batch", "group", "layer"]),
    width_2=Categorical([5, 12]),
    stride_1=Categorical([1, 2]),
    depth_3=Int(1, 2),
)
DENSENET = DenseNetSpace(
    blocks=Int(1, 3),
    layers=Int(1, 3),
    growth=Categorical([3, 4]),
    stem=Categorical(["cifar", "imagenet"]),
    bn_size=Categorical([0, 2]),
    compression=Float(0.3, 1.0),
    init_features=Categorical([5, 8]),
    layers_2=Int(1, 4),
)


def study_space(family: Any, prune: Any = 0.0) -> SearchSpace:
    return SearchSpace({"model": family, "train": TrainingSpace(prune_ratio=prune)})


def sampled(space: SearchSpace, seed: int) -> dict[str, Any]:
    """The flat params a study records for one sample: its active decisions."""
    config = space.sample(np.random.default_rng(seed))
    decisions = space.decisions()
    return {k: v for k, v in space.flatten_config(config).items() if k in decisions}


def record(space: SearchSpace, params: dict[str, Any], **kw: Any) -> TrialRecord:
    config = space.unflatten(params)
    return TrialRecord(0, "COMPLETE", params, 0.5, arch_id=space.arch_id(config), **kw)


def built(space: SearchSpace, params: dict[str, Any], shape: tuple = SHAPE) -> nn.Module:
    config = space.unflatten(params)
    return space["model"].build(config["model"], shape, num_classes=10)  # type: ignore[union-attr]


def of_kind(info: NetworkInfo, *kinds: str) -> list:
    return [b for b in info.blocks if b.kind in kinds]


def details(block: Any) -> dict[str, Any]:
    return dict(block.details)


# ---------------------------------------------------------------- against the model


@pytest.mark.parametrize("seed", range(12))
def test_resnet_blocks_match_the_built_model(seed: int) -> None:
    space = study_space(RESNET)
    params = sampled(space, seed)
    info = get_network_info(record(space, params), space.to_json(), input_shape=SHAPE)
    net = built(space, params)
    residual = [m for m in net.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    blocks = of_kind(info, "basic", "bottleneck")
    assert info.message is None and info.family == "resnet"
    assert len(blocks) == len(residual)
    assert [b.kind for b in info.blocks] == ["stem", *[b.kind for b in blocks], "head"]
    assert info.blocks[0].width == net.stem[0].out_channels
    for b, m in zip(blocks, residual, strict=True):
        last = m.conv3 if isinstance(m, Bottleneck) else m.conv2
        spatial = m.conv2 if isinstance(m, Bottleneck) else m.conv1
        assert (b.in_width, b.width) == (m.conv1.in_channels, last.out_channels)
        assert details(b)["stride"] == "{}x{}".format(*spatial.stride)
        assert details(b)["kernel"] == "{}x{}".format(*spatial.kernel_size)
        assert b.se == (not isinstance(m.se, nn.Identity))
        if isinstance(m, Bottleneck):
            assert details(b)["inner width"] == str(m.conv1.out_channels)
    assert info.blocks[-1].width == net.head.in_features
    assert [b.stage for b in info.blocks] == sorted(b.stage for b in info.blocks)


@pytest.mark.parametrize("seed", range(12))
def test_densenet_layers_match_the_built_model(seed: int) -> None:
    space = study_space(DENSENET)
    params = sampled(space, seed)
    info = get_network_info(record(space, params), space.to_json(), input_shape=SHAPE)
    net = built(space, params)
    layers = [m for m in net.modules() if isinstance(m, DenseLayer)]
    transitions = [m for m in net.modules() if isinstance(m, Transition)]
    assert info.family == "densenet"
    assert info.blocks[0].width == net.stem[0].out_channels
    assert len(of_kind(info, "dense_layer")) == len(layers)
    for b, m in zip(of_kind(info, "dense_layer"), layers, strict=True):
        first = m.bottleneck[2] if isinstance(m.bottleneck, nn.Sequential) else m.conv
        assert (b.in_width, b.width - b.in_width) == (first.in_channels, m.conv.out_channels)
    assert [b.width for b in of_kind(info, "transition")] == [
        t[2].out_channels for t in transitions
    ]
    assert info.blocks[-1].width == net.head.in_features


def test_params_from_an_optuna_trial_draw_the_same_network() -> None:
    space = study_space(RESNET)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    trial = study.ask()
    suggest(trial, space)
    info = get_network_info(record(space, dict(trial.params)), space.to_json())
    net = built(space, dict(trial.params))
    count = sum(isinstance(m, (BasicBlock, Bottleneck)) for m in net.modules())
    assert info.message is None and len(of_kind(info, "basic", "bottleneck")) == count


def test_deep_presets_draw_every_block() -> None:
    for family, n in ((ResNetSpace, 50), (DenseNetSpace, 98)):
        name = "resnet152" if family is ResNetSpace else "densenet201"
        space = SearchSpace({"model": family(**family.preset(name))})
        info = get_network_info(TrialRecord(0, "COMPLETE", {}), space.to_json())
        assert len(of_kind(info, "basic", "bottleneck", "dense_layer")) == n
        fig = plot_network(TrialRecord(0, "COMPLETE", {}), space.to_json())
        assert len(fig.layout.annotations) == len(info.stage_names)  # no per-block labels


# ---------------------------------------------------------------------- pruning

PRUNED = [
    (ResNetSpace(), {"stages": 3, "depth": 2, "width": 6}, 0.3),
    (ResNetSpace(), {"stages": 2, "depth": 2, "width": 8, "block": "bottleneck", "se": True}, 0.5),
    (ResNetSpace(), {"stages": 2, "depth": 1, "width": 10, "norm": "layer", "width_2": 7}, 0.5),
    (ResNetSpace(), {"stages": 2, "depth": 2, "width": 8, "norm": "group"}, 0.3),
    (ResNetSpace(), {"stages": 2, "depth": 1, "width": 3, "norm": "layer"}, 0.8),  # keeps 2
    (DenseNetSpace(), {"blocks": 2, "layers": 2, "growth": 6, "compression": 0.7}, 0.5),
    (DenseNetSpace(), {"blocks": 2, "layers": 3, "growth": 5, "bn_size": 0, "norm": "layer"}, 0.5),
]


@pytest.mark.parametrize(("family", "config", "ratio"), PRUNED)
def test_kept_widths_are_what_prune_model_keeps(family: Any, config: dict, ratio: float) -> None:
    """The kept widths come from the configuration; prune_model agrees on each layer."""
    space = study_space(type(family)(**config), prune=Float(0.0, 0.9))
    params = {"train/prune_ratio": ratio}
    info = get_network_info(record(space, params), space.to_json(), input_shape=(1, 8, 8))
    assert info.prune_ratio == ratio and info.kept_exact
    net = built(space, params, (1, 8, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every group prunes: nothing left whole
        net = prune_model(net, ratio, torch.zeros(2, 1, 8, 8))
    assert info.blocks[0].kept == net.stem[0].out_channels
    assert info.blocks[-1].kept == net.head.in_features
    residual = [m for m in net.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    for b, m in zip(of_kind(info, "basic", "bottleneck"), residual, strict=True):
        assert b.kept == (m.conv3 if isinstance(m, Bottleneck) else m.conv2).out_channels
        if isinstance(m, Bottleneck):
            assert details(b)["inner width"].endswith(f"→{m.conv1.out_channels}")
    layers = [m for m in net.modules() if isinstance(m, DenseLayer)]
    for b, m in zip(of_kind(info, "dense_layer"), layers, strict=True):
        prev = info.blocks[b.index - 1]
        assert b.kept - prev.kept == m.conv.out_channels
    transitions = [m[2].out_channels for m in net.modules() if isinstance(m, Transition)]
    assert [b.kept for b in of_kind(info, "transition")] == transitions


def test_densenet_group_norm_prunes_approximately() -> None:
    space = study_space(DenseNetSpace(blocks=2, layers=2, growth=8, norm="group"), prune=0.5)
    info = get_network_info(TrialRecord(0, "COMPLETE", {}), space.to_json())
    assert not info.kept_exact and all(b.kept is None for b in info.blocks)
    fig = plot_network(TrialRecord(0, "COMPLETE", {}), space.to_json())
    assert "pruned 50%: ≈ kept 50%" in fig.layout.title.subtitle.text


def test_unpruned_trial_has_no_kept_widths_and_measured_params_show_after_pruning() -> None:
    space = study_space(ResNetSpace(stages=2, depth=1, width=8), prune=Float(0.0, 0.8))
    plain = get_network_info(record(space, {"train/prune_ratio": 0.0}), space.to_json())
    assert plain.prune_ratio == 0 and all(b.kept is None for b in plain.blocks)
    trial = record(
        space,
        {"train/prune_ratio": 0.5},
        stats={"params": 5122.0, "flops": 9e4},
        metrics={"params": [(1, 2000.0), (2, 1382.0)]},
    )
    info = get_network_info(trial, space.to_json())
    assert info.measured == {"params": 1382.0}  # flops not reported: not taken from stats
    subtitle = plot_network(trial, space.to_json()).layout.title.subtitle.text
    assert "5.122k params" in subtitle and "1.382k params after pruning" in subtitle
    assert "pruned 50%: keeps 50%" in subtitle


# ------------------------------------------------------------- what storage holds


@pytest.mark.parametrize(
    ("params", "space"),
    [
        ({"x": 0.3}, None),
        ({}, None),
        ({"model/act": "relu"}, None),  # a knob of both families: no guess
        ({"x": 0.3}, SearchSpace({"x": Float(0.0, 1.0)}).to_json()),
        ({"model/depth": 2, "extra": 1}, study_space(ResNetSpace(depth=Int(1, 3))).to_json()),
        ({"model/depth": 2}, {"type": "space", "kind": "nope", "entries": {}}),
        ({"model/depth": 99}, None),
    ],
)
def test_no_architecture_gives_a_message_never_an_exception(params: dict, space: Any) -> None:
    trial = TrialRecord(4, "COMPLETE", params, 0.1)
    info = get_network_info(trial, space)
    assert info.message and not info.blocks and info.family is None
    fig = plot_network(trial, space)
    assert isinstance(fig, go.Figure) and not fig.data
    assert [a.text for a in fig.layout.annotations] and "Trial 4" in fig.layout.title.text


def test_plain_optuna_params_name_what_they_hold() -> None:
    info = get_network_info(TrialRecord(0, "COMPLETE", {"x": 0.3, "y": 2}))
    assert info.message == f"{NO_ARCH} (x, y)."


@pytest.mark.parametrize("family", [RESNET, DENSENET])
def test_missing_space_guesses_the_family_from_the_param_names(family: Any) -> None:
    space = study_space(family)
    params = sampled(space, 5)
    with_space = get_network_info(record(space, params), space.to_json())
    guessed = get_network_info(record(space, params), None)
    assert guessed.family == with_space.family and guessed.path == "model"
    assert [b.width for b in guessed.blocks] == [b.width for b in with_space.blocks]
    assert any("no space recorded" in n for n in guessed.notes)


def test_missing_space_draws_constants_at_their_defaults() -> None:
    space = study_space(ResNetSpace(stages=2, depth=Int(1, 3)))  # stages 2 is a constant
    trial = record(space, {"model/depth": 1})
    assert len(get_network_info(trial, space.to_json()).blocks) == 2 + 2
    assert len(get_network_info(trial, None).blocks) == 2 + 3  # the default 3 stages


def test_a_family_at_the_root_of_the_space() -> None:
    space = ResNetSpace(stages=2, depth=Int(1, 2), width=4)
    info = get_network_info(TrialRecord(0, "COMPLETE", {"depth": 2}), space.to_json())
    assert info.path == "" and len(of_kind(info, "basic")) == 4


def test_input_shape_turns_off_strides_on_one_pixel_maps() -> None:
    space = SearchSpace({"model": ResNetSpace(stages=4, depth=1, width=4)})
    trial = TrialRecord(0, "COMPLETE", {})
    nominal = get_network_info(trial, space.to_json())
    tiny = get_network_info(trial, space.to_json(), input_shape=(1, 2, 2), num_classes=3)
    assert [details(b)["stride"] for b in of_kind(nominal, "basic")] == ["1x1"] + ["2x2"] * 3
    assert [details(b)["stride"] for b in of_kind(tiny, "basic")] == ["1x1", "2x2", "1x1", "1x1"]
    assert details(of_kind(tiny, "basic")[-1])["output size"] == "1x1"
    assert tiny.blocks[-1].label.endswith("→ 3") and nominal.blocks[-1].label.endswith("→ ?")
    assert any("input size unknown" in n for n in nominal.notes) and not tiny.notes


# -------------------------------------------------------------------------- figure


def test_figure_draws_a_box_per_block_with_hover_and_legend_per_kind() -> None:
    space = study_space(RESNET, prune=Float(0.0, 0.8))
    params = {**sampled(space, 2), "train/prune_ratio": 0.25}
    trial = record(space, params, stats={"params": 12345.0, "flops": 2.5e6})
    info = get_network_info(trial, space.to_json())
    fig = plot_network(trial, space.to_json())
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == len(info.stage_names) + 2 * len(info.blocks)  # planned and kept
    kinds = list(dict.fromkeys(b.kind for b in info.blocks))
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert legend == [KINDS[k][0] for k in kinds]
    hover = [t for t in fig.data if t.hoverinfo == "text"]
    ids = [tuple(c) for t in hover for c in t.customdata]
    assert sorted(ids) == [(0, b.index) for b in info.blocks]
    for text in (x for t in hover for x in t.text):
        assert re.sub("<br>", "", text).count("<") == 0  # no markup but line breaks
    assert len(info.blocks) <= LABEL_LIMIT
    assert len(fig.layout.annotations) == len(info.stage_names) + len(info.blocks)
    title = fig.layout.title
    assert "Trial 0" in title.text and trial.arch_id in title.subtitle.text
    assert "12.345k params" in title.subtitle.text and "2.5M flops" in title.subtitle.text


def test_box_heights_follow_the_square_root_of_the_width() -> None:
    space = SearchSpace({"model": ResNetSpace(stages=3, depth=1, width=4)})  # 4, 8, 16
    fig = plot_network(TrialRecord(0, "COMPLETE", {}), space.to_json())
    boxes = [s for s in fig.layout.shapes if s.type == "rect"][5:]  # after the 5 groups
    heights = [round(s.y1 - s.y0, 6) for s in boxes]
    assert heights[1:4] == [0.5, round(0.5 * 2**0.5, 6), 1.0]  # stages 1-3: width 4, 8, 16


def test_text_from_storage_is_escaped() -> None:
    space = SearchSpace({"model": ResNetSpace(stages=1, depth=1, width=4)})
    trial = TrialRecord(0, "COMPLETE", {}, arch_id="<b>x</b>")
    fig = plot_network(trial, space.to_json())
    assert "&lt;b&gt;x&lt;/b&gt;" in fig.layout.title.subtitle.text
