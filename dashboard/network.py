"""A drawing of one trial's network, built from its recorded configuration.

A pure :func:`get_network_info` step, unit-tested without a browser, and a
:func:`plot_network` renderer (the split of :mod:`dashboard.figures`), over what storage
holds: a :class:`studies.records.TrialRecord` and the study's space JSON
(``StudyRecord.space``). The space nests the flat params and fills in its constants
(:meth:`SearchSpace.unflatten`), the family its defaults (:meth:`Family.resolve`), and
:meth:`ResNetSpace.stage_plan` gives the stages. Without a space the family is guessed
from the parameter names, and knobs that were constants are drawn at their defaults.

One box per block, left to right, grouped by stage: the stem, every residual block
(ResNet) or dense layer and transition (DenseNet), and the head. Box height is
proportional to the **square root** of the width (output channels; a dense layer's is
the concatenation after it, the head's its pooled features).

**Pruning.** Storage records no kept widths (only the pruned network's last reported
``params`` and ``flops``, shown in the subtitle), but :func:`trainers.pruning.prune_model`
keeps ``floor((1 - ratio) * n + 0.5)`` of the ``n`` channels of each group of coupled
channels (at least 1; 2 under a one-group norm; whole groups under a ``GroupNorm``): a
count set by the configuration alone (the weights only pick *which* go). So for ResNets
and for DenseNets with batch or layer norm the kept widths are computed here (the tests
pin them against ``prune_model``) and drawn solid inside the dotted planned box. A
DenseNet with ``norm="group"`` leaves some groups whole: its planned widths are drawn and
the ratio is annotated as "≈ kept".

Example:
    >>> from spaces import Int, ResNetSpace, SearchSpace
    >>> space = SearchSpace({"model": ResNetSpace(stages=2, depth=Int(1, 3), width=8)})
    >>> trial = TrialRecord(0, "COMPLETE", {"model/depth": 2}, 0.9)
    >>> info = get_network_info(trial, space.to_json())
    >>> [(b.kind, b.width) for b in info.blocks][:3], len(info.blocks)
    ([('stem', 8), ('basic', 8), ('basic', 8)], 6)
    >>> get_network_info(TrialRecord(1, "COMPLETE", {"x": 0.3})).message
    "No architecture in this trial's parameters (x)."
    >>> fig = plot_network(trial, space.to_json())  # a plotly.graph_objects.Figure
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go

import spaces
from dashboard.figures import _message, _style, format_value, is_finite
from dashboard.pareto import _short, last_reported
from spaces.family import Family
from spaces.space import SEP, SearchSpace, nest
from studies.records import TrialRecord

# Each kind of box: its name in the legend and hover text, and its colour.
KINDS = {
    "stem": ("stem", "#64748b"),
    "basic": ("basic residual block", "#2563eb"),
    "bottleneck": ("bottleneck residual block", "#7c3aed"),
    "dense_layer": ("dense layer", "#059669"),
    "transition": ("transition", "#f59e0b"),
    "head": ("head", "#dc2626"),
}
NO_ARCH = "No architecture in this trial's parameters"
LABEL_LIMIT = 40  # with more blocks, no label under each box (the hover still has it)
_STAGE = {"type": "rect", "fillcolor": "#f3f4f6", "line_width": 0, "layer": "below"}
_FLOW = {"type": "line", "layer": "below", "line": {"color": "#9ca3af", "width": 1}}
_NAME = {"showarrow": False, "yanchor": "bottom", "font": {"size": 11}}
_LABEL = {"showarrow": False, "yanchor": "top", "textangle": -90, "font": {"size": 10}}
_NOMINAL = (3, 4096, 4096)  # an input that no stride clamps, when the real one is unknown
Keep = Callable[[int], "int | None"]  # a width -> its width after pruning (None: unknown)
Width = tuple[int, "int | None"]  # (planned, kept)


class _NotDrawable(Exception):
    """What the trial holds is not a network this module draws; the message says why."""


@dataclass(frozen=True)
class NetworkBlock:
    """One drawn box.

    Attributes:
        index: Position, left to right (0 is the stem).
        stage: 0 for the stem, ``k`` for stage or dense block ``k``, the last for the head.
        kind: One of :data:`KINDS`.
        in_width: Input channels (the stem's: the input's, None when unknown).
        width: Output channels (see the module doc for dense layers and the head).
        kept: ``width`` after pruning, when the trial is pruned and it is known exactly.
        label: Short text under the box: width, kernel, stride, SE or growth rate.
        details: ``(name, value)`` rows of its hover text (None values are not shown).
        se: Whether the block has squeeze-and-excitation.
    """

    index: int
    stage: int
    kind: str
    in_width: int | None
    width: int
    kept: int | None
    label: str
    details: tuple[tuple[str, Any], ...]
    se: bool = False


@dataclass(frozen=True)
class NetworkInfo:
    """Data of :func:`plot_network`.

    Attributes:
        number, arch_id: The trial's number and architecture id.
        family: ``"resnet"`` or ``"densenet"``; None when there is nothing to draw.
        path: Where the family sits in the configuration (``"model"``; ``""``: the root).
        config: The family's knobs, every default filled in (:meth:`Family.resolve`).
        blocks: The boxes, left to right.
        stage_names: ``{stage: name}`` of the groups of boxes.
        prune_ratio: The trial's ``prune_ratio`` (0: not pruned).
        kept_exact: Whether the blocks' ``kept`` hold the kept widths (module doc).
        stats: The trial's statistics computed before training (``params``, ``flops``).
        measured: A pruned trial's last reported ``params`` and ``flops`` (after pruning).
        notes: Caveats to show (no space recorded, input size unknown).
        message: Why nothing is drawn, or None.
    """

    number: int
    arch_id: str | None
    family: str | None = None
    path: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    blocks: list[NetworkBlock] = field(default_factory=list)
    stage_names: dict[int, str] = field(default_factory=dict)
    prune_ratio: float = 0.0
    kept_exact: bool = True
    stats: dict[str, float] = field(default_factory=dict)
    measured: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    message: str | None = None


def _families() -> dict[str, type[Family]]:
    return {"resnet": spaces.ResNetSpace, "densenet": spaces.DenseNetSpace}


def _from_space(data: Mapping[str, Any], params: Mapping[str, Any]) -> tuple[str, str, dict, dict]:
    """``(kind, path, family config, flat values)`` through the recorded space: its
    ``"model"`` family first (what trainers build), else the root or another entry."""
    space = SearchSpace.from_json(data)
    config = space.unflatten(params)
    nodes = [("", space), *((k, v) for k, v in space.items() if isinstance(v, SearchSpace))]
    archs = [(p, s) for p, s in nodes if getattr(s, "architecture", False)]
    if not archs:
        raise _NotDrawable(f"{NO_ARCH}: the study's space has no architecture family.")
    path, family = min(archs, key=lambda a: a[0] != "model")
    if family.kind not in _families():
        raise _NotDrawable(f"A {family.kind!r} architecture is not drawn (ResNet, DenseNet).")
    sub = config.get(path, {}) if path else config
    return family.kind, path, dict(sub), space.flatten_config(config)


def _guess(params: Mapping[str, Any]) -> tuple[str, str, dict, dict]:
    """``(kind, path, family config, flat values)`` guessed from the parameter names:
    the first group of parameters that are knobs of exactly one family."""
    tree = nest(params)
    groups = [("", tree), *((k, v) for k, v in tree.items() if isinstance(v, dict))]
    for path, node in groups:
        if not node or any(isinstance(v, dict) for v in node.values()):
            continue
        kinds = [k for k, c in _families().items() if set(node) <= {*c.defaults, *c.optional}]
        if len(kinds) == 1:
            return kinds[0], path, dict(node), dict(params)
    raise _NotDrawable(f"{NO_ARCH} ({', '.join(sorted(params)) or 'none'}).")


def _kept(n: int, ratio: float, norm: str) -> int:
    """Channels ``prune_model`` keeps of a group of ``n`` (``trainers.pruning._weakest``).

    Example:
        >>> _kept(10, 0.3, "batch"), _kept(16, 0.3, "group"), _kept(2, 0.9, "layer")
        (7, 12, 2)
    """
    from spaces.resnet import group_norm

    groups = group_norm(n).num_groups if norm == "group" else 1
    if groups == 1:
        least = 1 if norm == "batch" else 2
        return max(min(least, n), math.floor((1 - ratio) * n + 0.5))
    return max(1, math.floor((1 - ratio) * groups + 0.5)) * (n // groups)


def _w(width: int, kept: int | None) -> str:
    return f"{width}→{kept}" if kept is not None and kept != width else str(width)


def _size(size: tuple[int, int] | None) -> str | None:
    return None if size is None else f"{size[0]}x{size[1]}"


def _block(
    blocks: list[NetworkBlock], stage: int, kind: str, out: Width, label: str, rows: dict
) -> NetworkBlock:
    """The block after ``blocks``: ``out`` is its (width, kept); ``rows`` of its hover text
    (an ``"SE"`` row that is not None: it has squeeze-and-excitation)."""
    (width, kept), prev = out, blocks[-1]
    flow = f"{_w(prev.width, prev.kept)} → {_w(width, kept)}"
    rows = {KINDS[kind][0]: f"#{len(blocks)}", "channels in → out": flow, **rows}
    label, se = f"{_w(width, kept)} · {label}", rows.get("SE") is not None
    return NetworkBlock(
        len(blocks), stage, kind, prev.width, width, kept, label, (*rows.items(),), se
    )


def _stem(cfg: dict, width: int, keep: Keep, shape: tuple | None) -> NetworkBlock:
    from spaces.resnet import stem_size

    big = cfg["stem"] == "imagenet"
    how = "7x7 conv s2, 3x3 max pool s2" if big else "3x3 conv s1"
    size = _size(stem_size(cfg["stem"], shape[1:])) if shape else None
    rows = {"stem": f"{cfg['stem']}: {how}", "channels out": _w(width, keep(width))}
    label = f"{_w(width, keep(width))} · " + ("7x7 · s4" if big else "3x3")
    rows, cin = {**rows, "output size": size}, shape[0] if shape else None
    return NetworkBlock(0, 0, "stem", cin, width, keep(width), label, tuple(rows.items()))


def _resnet(cfg: dict, raw: dict, shape: tuple | None, keep: Keep) -> list[NetworkBlock]:
    """The stem, one box per residual block, stage by stage."""
    plan = spaces.ResNetSpace().stage_plan(raw, shape or _NOMINAL)
    blocks = [_stem(cfg, cfg["width"], keep, shape)]
    exp, k = (4 if cfg["block"] == "bottleneck" else 1), cfg["kernel_size"]
    se = cfg["se_ratio"] if cfg["se"] else 0
    for s, spec in enumerate(plan, 1):
        for i in range(spec.depth):
            stride, width = spec.stride if i == 0 else (1, 1), spec.width * exp
            rows = {
                "block": f"stage {s}, block {i + 1} of {spec.depth}",
                "inner width": _w(spec.width, keep(spec.width)) if exp > 1 else None,
                "kernel": f"{k}x{k}",
                "stride": f"{stride[0]}x{stride[1]}",
                "SE": f"ratio {se:g}, {max(1, round(width * se))} hidden" if se else None,
                "output size": _size(spec.size) if shape else None,
            }
            bits = [f"{k}x{k}", *([f"s{max(stride)}"] if max(stride) > 1 else [])]
            label = " · ".join(bits + (["SE"] if se else []))
            out = (width, keep(width))
            blocks.append(_block(blocks, s, cfg["block"], out, label, rows))
    return blocks


def _densenet(cfg: dict, shape: tuple | None, keep: Keep) -> list[NetworkBlock]:
    """The stem, one box per dense layer and one per transition."""
    g, mid = cfg["growth"], cfg["bn_size"] * cfg["growth"]
    from spaces.resnet import stem_size

    h, w = stem_size(cfg["stem"], shape[1:]) if shape else (0, 0)
    blocks = [_stem(cfg, cfg["init_features"] or 2 * g, keep, shape)]
    for b in range(1, cfg["blocks"] + 1):
        n = cfg[f"layers_{b}"] or cfg["layers"]
        for i in range(n):
            prev = blocks[-1]
            rows = {
                "layer": f"dense block {b}, layer {i + 1} of {n}",
                "1x1 bottleneck width": _w(mid, keep(mid)) if mid else "none",
                "3x3 conv, new channels (growth k)": _w(g, keep(g)),
            }
            out = (prev.width + g, None if prev.kept is None else prev.kept + keep(g))
            blocks.append(_block(blocks, b, "dense_layer", out, f"k={_w(g, keep(g))}", rows))
        if b < cfg["blocks"]:
            t = max(1, int(blocks[-1].width * cfg["compression"] + 1e-6))
            pool = (2 if h > 1 else 1, 2 if w > 1 else 1) if shape else (2, 2)
            h, w = h // pool[0], w // pool[1]
            rows = {
                "transition": f"1x1 conv, {pool[0]}x{pool[1]} average pool",
                "compression": cfg["compression"],
                "output size": _size((h, w)) if shape else None,
            }
            label = f"pool {max(pool)}"
            blocks.append(_block(blocks, b, "transition", (t, keep(t)), label, rows))
    return blocks


def _head(blocks: list[NetworkBlock], name: str, num_classes: int | None) -> dict[int, str]:
    """Append the head to ``blocks``; return the name of each stage."""
    head, classes = blocks[-1].stage + 1, "?" if num_classes is None else num_classes
    rows = {"head": "global average pool, linear", "classes": num_classes}
    out = (blocks[-1].width, blocks[-1].kept)
    blocks.append(_block(blocks, head, "head", out, f"→ {classes}", rows))
    return {0: "stem", **{k: f"{name} {k}" for k in range(1, head)}, head: "head"}


def get_network_info(
    trial: TrialRecord,
    space: Mapping[str, Any] | None = None,
    *,
    input_shape: tuple[int, int, int] | None = None,
    num_classes: int | None = None,
) -> NetworkInfo:
    """The blocks of the network that a trial's recorded parameters build.

    Never raises on what storage holds: parameters that are no ResNet or DenseNet (a
    plain Optuna study), or that do not fit the space, give an info with ``message``
    set and no blocks.

    Args:
        trial: The trial (its ``params``, ``stats``, ``metrics`` and ``arch_id``).
        space: The study's space JSON (``StudyRecord.space``); None to guess the family
            from the parameter names (the space's constants are then drawn at their
            defaults, and a note says so).
        input_shape: ``(channels, height, width)`` of the trainer's data, for feature-map
            sizes and the strides a 1-pixel map turns off; None (storage does not record
            it) draws the configured strides and no sizes.
        num_classes: The head's classes, for its label; None shows ``?``.

    Example:
        >>> trial = TrialRecord(0, "COMPLETE", {"m/blocks": 2, "m/layers": 2, "m/growth": 4})
        >>> info = get_network_info(trial)
        >>> info.family, [b.kind for b in info.blocks][1:4], info.blocks[-1].width
        ('densenet', ['dense_layer', 'dense_layer', 'transition'], 16)
    """
    try:
        kind, path, raw, flat = _from_space(space, trial.params) if space else _guess(trial.params)
        cfg = _families()[kind]().resolve(raw)
    except Exception as e:  # a view of whatever storage holds: say why, never raise
        text = str(e) if isinstance(e, _NotDrawable) else f"Cannot draw this network: {e}"
        return NetworkInfo(trial.number, trial.arch_id, message=text)
    ratio = next((v for p, v in flat.items() if p.split(SEP)[-1] == "prune_ratio"), 0)
    ratio = float(ratio) if is_finite(ratio) and 0 < ratio < 1 else 0.0
    exact = kind == "resnet" or cfg["norm"] != "group"
    keep: Keep = (lambda n: _kept(n, ratio, cfg["norm"])) if ratio and exact else lambda n: None
    shape = tuple(input_shape) if input_shape else None
    blocks = _resnet(cfg, raw, shape, keep) if kind == "resnet" else _densenet(cfg, shape, keep)
    names = _head(blocks, "stage" if kind == "resnet" else "dense block", num_classes)
    notes = [] if space else ["no space recorded: constants drawn at their defaults"]
    notes += [] if shape else ["input size unknown: configured strides"]
    found = {m: last_reported(trial, m) for m in ("params", "flops")} if ratio else {}
    measured = {m: v[1] for m, v in found.items() if v and v[0] is not None}  # not stats
    drawn = (kind, path, cfg, blocks, names, ratio, exact, dict(trial.stats or {}))
    return NetworkInfo(trial.number, trial.arch_id, *drawn, measured, notes)


# ------------------------------------------------------------------------ renderer


def _subtitle(info: NetworkInfo) -> str:
    """Arch id, params and FLOPs before training, pruning and the notes."""
    bits = [f"arch {info.arch_id}"] if info.arch_id else []
    bits += [f"{_short(info.stats[k])} {k}" for k in ("params", "flops") if k in info.stats]
    if info.prune_ratio:
        kept = "keeps" if info.kept_exact else "≈ kept"
        bits.append(f"pruned {info.prune_ratio:.0%}: {kept} {1 - info.prune_ratio:.0%}")
        bits += [f"{_short(v)} {k} after pruning" for k, v in info.measured.items()]
    return " · ".join(bits + info.notes)


def _hover(block: NetworkBlock) -> str:
    """The block's rows, escaped (Plotly reads tags in text), joined by ``<br>``."""
    rows = [f"{k}: {format_value(v)}" for k, v in block.details if v is not None]
    return "<br>".join(html.escape(r) for r in rows)


def _rect(x: float, half: float, color: str, **style: Any) -> dict[str, Any]:
    return {"type": "rect", "x0": x - 0.35, "x1": x + 0.35, "y0": -half, "y1": half,
            "fillcolor": color, **style}  # fmt: skip


def _draw(fig: go.Figure, info: NetworkInfo, xs: list[float]) -> None:
    """Stage backgrounds and names, the flow line, a box (and a kept box) per block, and
    each box's label under it (unless there are too many); set at once (add_shape, one
    at a time, takes seconds for a DenseNet-201)."""
    top, shapes, notes = max(b.width for b in info.blocks), [], []
    for s, name in info.stage_names.items():
        on = [x for x, b in zip(xs, info.blocks, strict=True) if b.stage == s]
        shapes.append({"x0": on[0] - 0.5, "x1": on[-1] + 0.5, "y0": -0.6, "y1": 0.6, **_STAGE})
        notes.append({"x": (on[0] + on[-1]) / 2, "y": 0.62, "text": html.escape(name), **_NAME})
    shapes.append({"x0": xs[0], "x1": xs[-1], "y0": 0, "y1": 0, **_FLOW})
    for x, b in zip(xs, info.blocks, strict=True):
        color, half = KINDS[b.kind][1], max(0.015, 0.5 * math.sqrt(b.width / top))
        line = {"color": "#111827" if b.se else color, "width": 2 if b.se else 1}
        if b.kept is None:
            shapes.append(_rect(x, half, color, opacity=0.85, line=line))
        else:
            shapes.append(_rect(x, half, color, opacity=0.2, line={**line, "dash": "dot"}))
            shapes.append(_rect(x, max(0.015, 0.5 * math.sqrt(b.kept / top)), color, line=line))
        if len(info.blocks) <= LABEL_LIMIT:
            notes.append({"x": x, "y": -0.64, "text": html.escape(b.label), **_LABEL})
    fig.update_layout(shapes=shapes, annotations=notes)


def _traces(fig: go.Figure, info: NetworkInfo, xs: list[float]) -> None:
    """Per kind, hover points at the boxes' centres and a legend entry."""
    for kind in dict.fromkeys(b.kind for b in info.blocks):
        on = [(x, b) for x, b in zip(xs, info.blocks, strict=True) if b.kind == kind]
        marker = {"symbol": "square", "size": 12, "color": KINDS[kind][1]}
        hover = {"text": [_hover(b) for _, b in on], "hoverinfo": "text", "showlegend": False}
        points = {"x": [x for x, _ in on], "y": [0.0] * len(on), "mode": "markers"}
        ids = [[info.number, b.index] for _, b in on]
        invisible = {**marker, "size": 16, "opacity": 0.01}  # hoverable, not seen
        fig.add_trace(go.Scatter(**points, marker=invisible, customdata=ids, **hover))
        legend = {"x": [None], "y": [None], "mode": "markers", "hoverinfo": "skip"}
        fig.add_trace(go.Scatter(**legend, marker=marker, name=KINDS[kind][0]))


def plot_network(
    trial: TrialRecord,
    space: Mapping[str, Any] | None = None,
    *,
    input_shape: tuple[int, int, int] | None = None,
    num_classes: int | None = None,
) -> go.Figure:
    """Draw a trial's network: a box per block, height ∝ √width, coloured by kind.

    Takes the arguments of :func:`get_network_info`. Hovering a box shows its details;
    each hover point's ``customdata`` is ``[trial number, block index]``, to link the
    drawing to the trial's metrics. A trial without an architecture in its parameters
    gives a figure that says so. Bottleneck widths are drawn as the block's output
    (``4 * width``); the inner width is in the hover text.
    """
    info = get_network_info(trial, space, input_shape=input_shape, num_classes=num_classes)
    title = f"Trial {trial.number} network" + (f": {info.family}" if info.family else "")
    fig = _style(go.Figure(), title, _subtitle(info))
    if info.message:
        return _message(fig, info.message)
    steps = (1 + 0.6 * (b.stage != a.stage) for a, b in itertools.pairwise(info.blocks))
    xs = list(itertools.accumulate(steps, initial=0.0))  # a gap between stages
    _draw(fig, info, xs)
    _traces(fig, info, xs)
    bottom = -1.5 if len(info.blocks) <= LABEL_LIMIT else -0.7
    fig.update_xaxes(visible=False, range=[xs[0] - 0.8, xs[-1] + 0.8])
    fig.update_yaxes(visible=False, range=[bottom, 0.8], fixedrange=True)
    return fig
