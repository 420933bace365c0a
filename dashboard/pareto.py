"""The Pareto front of a study with several objectives, two objectives at a time.

The same split as :mod:`dashboard.figures`: a pure :func:`get_pareto_info` step,
unit-tested without a browser, and a :func:`plot_pareto` renderer that the static report
and the dashboard share. Four groups of trials are drawn, each with its own colour,
symbol and legend entry:

- **front**: complete, feasible trials with finite values that no other such trial
  dominates (:attr:`studies.records.StudyRecord.front`, over *all* objectives), joined by
  the staircase that bounds the region they dominate;
- **dominated**: complete, feasible trials that some trial of the front beats;
- **infeasible**: complete trials that violate a constraint (never on the front);
- **pruned**: trials a scheduler stopped early, placed at their last reported value of
  each objective (a cost is the last reported one, else the statistics computed before
  training); they are never on the front, and a pruned trial with nothing to place it by
  is counted, not drawn.

Failed, running and waiting trials, and complete ones without finite values, are counted
in the subtitle, not drawn. Each point carries its trial number in ``customdata``; a
group of more than :data:`HOVER_TEXT_MAX` points hovers its trial and two objectives only.

Example:
    >>> from studies.records import StudyRecord, TrialRecord
    >>> def done(n: int, acc: float, params: float) -> TrialRecord:
    ...     return TrialRecord(n, "COMPLETE", {"model/width": n}, acc, values=[acc, params])
    >>> record = StudyRecord("demo", "maximize", "val_acc", None,
    ...     [done(0, 0.90, 2e5), done(1, 0.80, 5e4), done(2, 0.70, 9e4)],
    ...     objectives=["val_acc", "params"], directions=["maximize", "minimize"])
    >>> info = get_pareto_info(record)
    >>> [p.number for p in info.front], [p.number for p in info.dominated]
    ([1, 0], [2])
    >>> info.y.title
    'params (lower is better)'
    >>> fig = plot_pareto(record)  # a plotly.graph_objects.Figure
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go

from dashboard.figures import (
    STATE_COLORS,
    _hover,
    _message,
    _objective_label,
    _style,
    _subtitle,
    _template,
    float_array,
    is_finite,
)
from dashboard.history import GL_ABOVE
from studies.objectives import Objectives
from studies.records import StudyRecord, TrialRecord

GROUPS = ("front", "dominated", "infeasible", "pruned")
GROUP_NAMES = {
    "front": "Pareto front",
    "dominated": "dominated",
    "infeasible": "infeasible (constraint violated)",
    "pruned": "pruned (stopped early)",
}


@dataclass(frozen=True)
class ParetoAxis:
    """One objective on one axis of the Pareto figure.

    Attributes:
        name: The objective's name.
        direction: ``"maximize"`` or ``"minimize"``.
        log: Whether the axis is logarithmic (a cost objective whose plotted values are
            positive and span more than two decades).
        tickvals, ticktext: Ticks of a log axis (1, 2 and 5 of each decade, or only the
            decades over more than four, written ``20k``, ``1M``); None otherwise.
    """

    name: str
    direction: str
    log: bool
    tickvals: list[float] | None = None
    ticktext: list[str] | None = None

    @property
    def title(self) -> str:
        """The axis title, saying which way is better."""
        better = "higher" if self.direction == "maximize" else "lower"
        return f"{self.name} ({better} is better)"


@dataclass(frozen=True, slots=True)
class ParetoPoint:
    """One plotted trial.

    Attributes:
        number: The trial's number.
        group: One of :data:`GROUPS`.
        x, y: Its values of the two plotted objectives.
        trial: The trial itself (for the hover text).
        epoch: For a pruned trial, the last epoch it reported (None: not known).
    """

    number: int
    group: str
    x: float
    y: float
    trial: TrialRecord
    epoch: int | None = None


@dataclass(frozen=True)
class ParetoInfo:
    """Data of :func:`plot_pareto`.

    Attributes:
        objectives, directions: Every objective of the study, in order.
        x, y: The two plotted objectives.
        front: Trials on the front, by ``x`` then ``y``.
        dominated, infeasible, pruned: The other drawn groups, by trial number.
        line: The front's points that no other front point beats in ``x`` and ``y``
            alone (all of them with two objectives), by ``x``: the staircase's corners.
        line_shape: Plotly's line shape of the staircase (``"hv"`` or ``"vh"``), so
            that it bounds the region the front dominates.
        counts: Number of trials per state.
        n_not_finite: Complete trials left out for a missing or non-finite value.
        n_unplaced: Pruned trials left out for lack of a finite value of ``x`` or ``y``.
    """

    objectives: list[str]
    directions: list[str]
    x: ParetoAxis
    y: ParetoAxis
    front: list[ParetoPoint]
    dominated: list[ParetoPoint]
    infeasible: list[ParetoPoint]
    pruned: list[ParetoPoint]
    line: list[tuple[float, float]]
    line_shape: str
    counts: dict[str, int]
    n_not_finite: int
    n_unplaced: int

    def group(self, name: str) -> list[ParetoPoint]:
        """The points of group ``name`` (one of :data:`GROUPS`)."""
        return {
            "front": self.front,
            "dominated": self.dominated,
            "infeasible": self.infeasible,
            "pruned": self.pruned,
        }[name]

    @property
    def points(self) -> list[ParetoPoint]:
        """Every drawn point, group by group."""
        return [p for name in GROUPS for p in self.group(name)]


def last_reported(trial: TrialRecord, name: str) -> tuple[int | None, float] | None:
    """``(epoch, value)`` of ``name`` at the last epoch ``trial`` reported it, else its
    statistic computed before training as ``(None, value)``; None when neither is finite.

    Example:
        >>> t = TrialRecord(0, "PRUNED", {}, metrics={"acc": [(1, 0.5), (2, 0.6)]},
        ...                 stats={"params": 1e4})
        >>> last_reported(t, "acc"), last_reported(t, "params"), last_reported(t, "flops")
        ((2, 0.6), (None, 10000.0), None)
    """
    series = dict(trial.metrics.get(name, []))  # a later report of an epoch wins
    if series:
        epoch = max(series)
        if is_finite(series[epoch]):
            return epoch, float(series[epoch])
    stat = (trial.stats or {}).get(name)
    return (None, float(stat)) if is_finite(stat) else None


def _pick(record: StudyRecord, x: str | None, y: str | None) -> tuple[int, int]:
    """Indices of the plotted objectives: ``x`` and ``y`` by name, else the first two."""
    names = list(record.objectives)
    for name in (x, y):
        if name is not None and name not in names:
            raise ValueError(
                f"{name!r} is not an objective of study {record.name!r}; pick x and y "
                f"among its objectives {names}."
            )
    if x is not None and x == y:
        raise ValueError(f"x and y are both {x!r}; pick two different objectives of {names}.")
    ix = names.index(x) if x is not None else next(i for i, n in enumerate(names) if n != y)
    iy = names.index(y) if y is not None else next(i for i, n in enumerate(names) if i != ix)
    return ix, iy


def _short(value: float) -> str:
    """``value`` with an SI suffix: ``20k``, ``1.5M``, ``0.5``.

    Example:
        >>> [_short(v) for v in (0.5, 20.0, 2e4, 1.5e6, 1e9)]
        ['0.5', '20', '20k', '1.5M', '1G']
    """
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def _axis(objectives: Objectives, index: int, values: list[float]) -> ParetoAxis:
    """The axis of objective ``index``: log for a cost over more than two decades."""
    objective = objectives[index]
    lo, hi = (min(values), max(values)) if values else (0.0, 0.0)
    if not (objective.is_cost and lo > 0 and hi > 100 * lo):
        return ParetoAxis(objective.name, objective.direction, False)
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    steps = (1, 2, 5) if len(decades) <= 5 else (1,)
    ticks = [m * 10.0**k for k in decades for m in steps]  # plotly drops those off the range
    return ParetoAxis(objective.name, objective.direction, True, ticks, [_short(t) for t in ticks])


def _place(trial: TrialRecord, ix: int, iy: int, objectives: Objectives) -> ParetoPoint | None:
    """A pruned trial at its last reported (or pre-computed) values, or None."""
    x = last_reported(trial, objectives[ix].name)
    y = last_reported(trial, objectives[iy].name)
    if x is None or y is None:
        return None
    epochs = [e for e, _ in (x, y) if e is not None]
    epoch = max(epochs) if epochs else None
    return ParetoPoint(trial.number, "pruned", x[1], y[1], trial, epoch)


def get_pareto_info(record: StudyRecord, x: str | None = None, y: str | None = None) -> ParetoInfo:
    """The trials of a study with several objectives, grouped for the Pareto figure.

    Args:
        record: The study, with two or more objectives.
        x, y: Names of the objectives to plot; by default the first two (either one
            given picks the other as the first objective it does not name).

    Raises:
        ValueError: for a study with one objective, an unknown direction, or an ``x`` or
            ``y`` that names no objective (the message lists them) or the same one twice.

    Example:
        >>> record = StudyRecord("s", "maximize", "acc", None, [],
        ...     objectives=["acc", "params", "flops"],
        ...     directions=["maximize", "minimize", "minimize"])
        >>> info = get_pareto_info(record, y="flops")
        >>> info.x.name, info.y.name
        ('acc', 'flops')
    """
    if not record.multi:
        raise ValueError(
            f"Study {record.name!r} has one objective ({record.objective!r}); a Pareto "
            "front needs two or more."
        )
    objectives = Objectives.parse(record.objectives, record.directions)
    ix, iy = _pick(record, x, y)
    on_front = {t.number for t in record.front}
    groups: dict[str, list[ParetoPoint]] = {name: [] for name in GROUPS}
    counts: dict[str, int] = {}
    not_finite = unplaced = 0
    for t in sorted(record.trials, key=lambda t: t.number):
        counts[t.state] = counts.get(t.state, 0) + 1
        if t.state == "PRUNED":
            point = _place(t, ix, iy, objectives)
            unplaced += point is None
            if point is not None:
                groups["pruned"].append(point)
        elif t.state == "COMPLETE":
            values = t.values or []
            if len(values) != len(objectives) or not all(is_finite(v) for v in values):
                not_finite += 1
                continue
            kind = "front" if t.number in on_front else "dominated"
            kind = kind if t.feasible else "infeasible"
            groups[kind].append(ParetoPoint(t.number, kind, values[ix], values[iy], t))
    front = sorted(groups["front"], key=lambda p: (p.x, p.y, p.number))
    plane = Objectives((objectives[ix], objectives[iy]))
    mask = plane.pareto_mask([[p.x, p.y] for p in front]) if front else []
    line = [(p.x, p.y) for p, on in zip(front, mask, strict=True) if on]
    drawn = [p for points in groups.values() for p in points]
    return ParetoInfo(
        objectives=list(record.objectives),
        directions=list(record.directions),
        x=_axis(objectives, ix, [p.x for p in drawn]),
        y=_axis(objectives, iy, [p.y for p in drawn]),
        front=front,
        dominated=groups["dominated"],
        infeasible=groups["infeasible"],
        pruned=groups["pruned"],
        line=line,
        line_shape="vh" if objectives[ix].maximize else "hv",
        counts=counts,
        n_not_finite=not_finite,
        n_unplaced=unplaced,
    )


# ------------------------------------------------------------------------ renderer

GROUP_COLORS = {
    "front": STATE_COLORS["COMPLETE"],
    "dominated": "#94a3b8",
    "infeasible": "#7c3aed",
    "pruned": STATE_COLORS["PRUNED"],
}
_MARKERS: dict[str, dict[str, Any]] = {
    "front": {
        "color": GROUP_COLORS["front"],
        "size": 12,
        "line": {"color": "white", "width": 1.5},
    },
    "dominated": {
        "color": GROUP_COLORS["dominated"],
        "size": 8,
        "opacity": 0.75,
        "line": {"color": "white", "width": 1},
    },
    "infeasible": {
        "color": GROUP_COLORS["infeasible"],
        "size": 11,
        "symbol": "circle-x-open",
        "line": {"width": 1.5},
    },
    "pruned": {
        "color": GROUP_COLORS["pruned"],
        "size": 9,
        "symbol": "x-thin",
        "line": {"color": GROUP_COLORS["pruned"], "width": 2},
    },
}


def _rows(point: ParetoPoint, info: ParetoInfo) -> list[tuple[str, Any]]:
    """The hover rows of ``point`` before its params: its objectives and why it is where."""
    t = point.trial
    if point.group == "pruned":
        rows: list[tuple[str, Any]] = []
        for axis, value in ((info.x, point.x), (info.y, point.y)):
            last = last_reported(t, axis.name)
            how = "last reported" if last and last[0] is not None else "before training"
            rows.append((f"{axis.name} ({how})", value))
        return rows + ([("stopped after epoch", point.epoch)] if point.epoch is not None else [])
    rows = list(zip(info.objectives, t.values or [], strict=False))
    if point.group == "infeasible":
        broken = sum(c > 0 for c in t.constraints)
        rows.append(("constraints violated", f"{broken} of {len(t.constraints)}"))
    return rows


HOVER_TEXT_MAX = 1000
"""Groups of at most this many points (the front, as a rule) get a hover text per point,
params included; larger ones a template over the trace's arrays (trial, state and the two
plotted objectives): per-point strings were 33 MB at 100,000 trials."""


def _template_rows(group: str, info: ParetoInfo) -> list[tuple[str, str]]:
    """Hover rows of a large group's template: the plotted objectives."""
    how = " (last known)" if group == "pruned" else ""
    return [(f"{info.x.name}{how}", "%{x:.6~g}"), (f"{info.y.name}{how}", "%{y:.6~g}")]


def _numbers(points: list[ParetoPoint]) -> np.ndarray:
    """Trial numbers for ``customdata``, sent as a plain JSON list (an object array): a
    click reads them from the figure as sent, where dcc.Graph indexes ``customdata``
    without decoding a typed array, so a base64 one would open no trial.

    Example:
        >>> _numbers([]).dtype
        dtype('O')
    """
    return np.array([p.number for p in points], dtype=object)


def _trace(points: list[ParetoPoint], group: str, info: ParetoInfo) -> go.Scatter | go.Scattergl:
    """The points of ``group`` as numpy arrays, each with its trial number in
    ``customdata`` (what a click opens, see :func:`_numbers`); WebGL past
    :data:`dashboard.history.GL_ABOVE`."""
    hover: dict[str, Any] = {"hovertemplate": _template(group, _template_rows(group, info))}
    if len(points) <= HOVER_TEXT_MAX:
        hover = {"text": [_hover(p.trial, _rows(p, info)) for p in points], "hoverinfo": "text"}
    kind = go.Scattergl if len(points) > GL_ABOVE else go.Scatter
    return kind(
        x=float_array(p.x for p in points),
        y=float_array(p.y for p in points),
        mode="markers",
        name=f"{GROUP_NAMES[group]} ({len(points)})",
        legendgroup=group,
        legendrank=GROUPS.index(group) + 1,  # the front first, whatever the drawing order
        marker=_MARKERS[group],
        customdata=_numbers(points),
        **hover,
    )


def plot_pareto(record: StudyRecord, x: str | None = None, y: str | None = None) -> go.Figure:
    """Two objectives of every complete and pruned trial, with the Pareto front joined.

    The front is drawn as large blue dots joined by a black staircase, dominated trials
    as small grey dots, infeasible ones as hollow violet circles with a cross, pruned ones
    as orange crosses. A study with one objective gives a figure that says so.

    Args:
        record: The study.
        x, y: Names of the objectives to plot (see :func:`get_pareto_info`).

    Raises:
        ValueError: for an ``x`` or ``y`` that names no objective of the study.
    """
    if not record.multi:
        fig = _style(go.Figure(), "Pareto front", _subtitle(record, _objective_label(record), {}))
        text = (
            f"A Pareto front needs two or more objectives; this study has one: {record.objective}."
        )
        return _message(fig, text)
    info = get_pareto_info(record, x, y)
    hidden = {
        "failed": info.counts.get("FAIL", 0),
        "running": info.counts.get("RUNNING", 0),
        "waiting": info.counts.get("WAITING", 0),
        "complete without finite values": info.n_not_finite,
        "pruned without values to place": info.n_unplaced,
    }
    what = f"{len(info.front)} trial{'s' * (len(info.front) != 1)} on the front"
    if len(info.objectives) > 2:
        what += f" of {', '.join(info.objectives)} (showing {info.x.name} and {info.y.name})"
    fig = _style(go.Figure(), "Pareto front", _subtitle(record, what, hidden))
    # The legend gets a row of its own under the subtitle, which may be long.
    fig.update_layout(
        height=520,
        margin={"t": 120},
        legend={"xanchor": "left", "x": 0, "yanchor": "bottom", "y": 1.02},
    )
    for axis, update in ((info.x, fig.update_xaxes), (info.y, fig.update_yaxes)):
        update(title_text=html.escape(axis.title))
        if axis.log:
            update(type="log", tickvals=axis.tickvals, ticktext=axis.ticktext)
    if not info.points:
        text = f"No complete or pruned trial with finite {info.x.name} and {info.y.name} yet."
        return _message(fig, text)
    for group in ("dominated", "infeasible", "pruned"):
        if info.group(group):
            fig.add_trace(_trace(info.group(group), group, info))
    if len(info.line) > 1:
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in info.line],
                y=[p[1] for p in info.line],
                mode="lines",
                line={"shape": info.line_shape, "color": "#111827", "width": 2},
                name="front line",
                legendgroup="front",
                showlegend=False,
                hoverinfo="skip",
            )
        )
    if info.front:
        fig.add_trace(_trace(info.front, "front", info))
    return fig
