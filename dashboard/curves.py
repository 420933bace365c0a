"""The learning-curves figure: every trial's per-epoch points of a metric.

As the other figures (:mod:`dashboard.figures`), a pure :func:`get_curves_info` step and a
:func:`plot_learning_curves` renderer.

Example:
    >>> from studies.records import StudyRecord, TrialRecord
    >>> record = StudyRecord("demo", "minimize", "val_loss", None, [
    ...     TrialRecord(0, "COMPLETE", {"train/lr": 0.01}, 0.9, {1: 1.2, 2: 0.9}),
    ... ])
    >>> get_curves_info(record).curves[0].values
    [1.2, 0.9]
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from dashboard.figures import (
    STATE_COLORS,
    _hover,
    _message,
    _style,
    _subtitle,
    is_finite,
)
from dashboard.history import _objective_series, get_history_info
from studies.records import StudyRecord, TrialRecord


@dataclass(frozen=True)
class Curve:
    """The finite points of one trial's metric, by epoch."""

    number: int
    state: str
    epochs: list[int]
    values: list[float]
    trial: TrialRecord


@dataclass(frozen=True)
class CurvesInfo:
    """Data of :func:`plot_learning_curves`.

    Attributes:
        metric: Name of the plotted metric (the objective's when none was asked for).
        curves: One curve per trial that reported a finite point, by number.
        best_number: Number of the best complete trial, or None.
        available: Every metric name some trial reported, sorted.
        n_skipped: Points left out because their value is not finite.
    """

    metric: str
    curves: list[Curve]
    best_number: int | None
    available: list[str]
    n_skipped: int


def _series(trial: TrialRecord, metric: str | None, record: StudyRecord) -> dict[int, Any]:
    if metric is None:
        return _objective_series(trial, record)
    return dict(trial.metrics.get(metric, []))  # a later report of an epoch wins


def get_curves_info(record: StudyRecord, metric: str | None = None) -> CurvesInfo:
    """Per-epoch points of ``metric`` (None: the reported objective) for every trial.

    Example:
        >>> from studies.records import StudyRecord, TrialRecord
        >>> t = TrialRecord(0, "PRUNED", {}, None, {1: 0.4, 2: float("nan")})
        >>> get_curves_info(StudyRecord("s", "maximize", "acc", None, [t])).curves[0].epochs
        [1]
    """
    best = get_history_info(record).best
    curves, skipped = [], 0
    for t in sorted(record.trials, key=lambda t: t.number):
        points = sorted(_series(t, metric, record).items())
        finite = [(e, float(v)) for e, v in points if is_finite(v)]
        skipped += len(points) - len(finite)
        if finite:
            epochs, values = [e for e, _ in finite], [v for _, v in finite]
            curves.append(Curve(t.number, t.state, epochs, values, t))
    available = sorted({name for t in record.trials for name in t.metrics})
    name = record.objective if metric is None else metric
    return CurvesInfo(name, curves, best.number if best else None, available, skipped)


_CURVE_DASH = {"PRUNED": "dash", "FAIL": "dot"}


def _curve_trace(
    curve: Curve, metric: str, shown: set[str], best: bool, best_label: str = "best"
) -> go.Scatter:
    state = curve.state
    rows = [[("epoch", e), (metric, v)] for e, v in zip(curve.epochs, curve.values, strict=True)]
    color = STATE_COLORS.get(state, "#6b7280")
    end = {
        "size": [0] * (len(curve.epochs) - 1) + [9],
        "symbol": "x-thin",
        "line": {"width": 2, "color": color},
    }
    trace = go.Scatter(
        x=curve.epochs,
        y=curve.values,
        mode="lines+markers" if state == "PRUNED" or len(curve.epochs) == 1 else "lines",
        name=f"{best_label} (trial {curve.number})" if best else state.lower(),
        legendgroup="best" if best else state,
        showlegend=best or state not in shown,
        line={
            "color": "#111827" if best else color,
            "width": 3 if best else 1.5,
            "dash": _CURVE_DASH.get(state, "solid"),
        },
        marker=end if state == "PRUNED" else {"size": 6, "color": color},
        opacity=1.0 if best else 0.45 if state == "COMPLETE" else 0.85,
        text=[_hover(curve.trial, r) for r in rows],
        hoverinfo="text",
    )
    shown.add("best" if best else state)
    return trace


def plot_learning_curves(record: StudyRecord, metric: str | None = None) -> go.Figure:
    """One line per trial of ``metric`` (None: the objective) by epoch.

    Lines are coloured and dashed by state; a pruned trial's line ends in a cross where
    it was stopped, and the best complete trial is drawn on top in black (with several
    objectives, the best in the first one, and named so).
    """
    info = get_curves_info(record, metric)
    subtitle = _subtitle(record, f"{info.metric} per epoch", {"non-finite points": info.n_skipped})
    fig = _style(go.Figure(), "Learning curves", subtitle, "Epoch", info.metric)
    if not info.curves:
        if metric is None:
            return _message(fig, f"No trial reported a finite {info.metric} yet.")
        names = ", ".join(info.available) or "none"
        return _message(fig, f"No trial reported a finite {metric!r}; metrics: {names}.")
    shown: set[str] = set()
    # Complete trials below the others, the best one on top of all.
    order = sorted(
        info.curves, key=lambda c: (c.number == info.best_number, c.state != "COMPLETE")
    )
    best_label = f"best {html.escape(record.objective)}" if record.multi else "best"
    if len(order) > MERGE_ABOVE:
        for trace in _merged_traces(order, info.metric, info.best_number, best_label):
            fig.add_trace(trace)
        return fig
    for curve in order:
        best = curve.number == info.best_number
        fig.add_trace(_curve_trace(curve, info.metric, shown, best, best_label))
    return fig


MERGE_ABOVE = 200
"""Past this many curves, the trials of one state share one WebGL trace (lines broken
between trials): a trace per trial took 44 s and 28 MB at 10,000 trials."""


def _merged_traces(
    curves: list[Curve], metric: str, best_number: int | None, best_label: str
) -> list[go.Scattergl]:
    """One line trace per state (curves joined with gaps), the pruned trials' stopping
    points as crosses, and the best trial on top; hover says the trial and epoch."""
    traces = []
    for state in sorted({c.state for c in curves}, key=lambda s: s != "COMPLETE"):
        mine = [c for c in curves if c.state == state and c.number != best_number]
        if not mine:
            continue
        x: list[Any] = []
        y: list[Any] = []
        text: list[Any] = []
        for c in mine:
            x += [*c.epochs, None]
            y += [*c.values, None]
            text += [
                f"trial {c.number} · epoch {e}: {v:.4g}"
                for e, v in zip(c.epochs, c.values, strict=True)
            ]
            text.append(None)
        color = STATE_COLORS.get(state, "#6b7280")
        traces.append(
            go.Scattergl(
                x=x,
                y=y,
                text=text,
                hoverinfo="text",
                mode="lines",
                name=state.lower(),
                legendgroup=state,
                opacity=0.35 if state == "COMPLETE" else 0.6,
                line={"color": color, "width": 1, "dash": _CURVE_DASH.get(state, "solid")},
            )
        )
        if state == "PRUNED":
            traces.append(
                go.Scattergl(
                    x=[c.epochs[-1] for c in mine],
                    y=[c.values[-1] for c in mine],
                    text=[f"trial {c.number} stopped at epoch {c.epochs[-1]}" for c in mine],
                    hoverinfo="text",
                    mode="markers",
                    legendgroup=state,
                    showlegend=False,
                    marker={"symbol": "x", "size": 7, "color": color},
                )
            )
    best = [c for c in curves if c.number == best_number]
    if best:
        traces.append(_curve_trace(best[0], metric, set(), True, best_label))
    return traces
