"""The optimization history: every finished trial's objective value by trial number (or
by when it ended), with the best so far.

A pure :func:`get_history_info` step, unit-tested without a browser, and the
:func:`plot_history` renderer (the split ``optuna/visualization`` uses); the static report
and the dashboard share both.

Example:
    >>> from studies.records import StudyRecord, TrialRecord
    >>> record = StudyRecord("demo", "minimize", "val_loss", None, [
    ...     TrialRecord(0, "COMPLETE", {"train/lr": 0.01}, 0.9, {1: 1.2, 2: 0.9}),
    ...     TrialRecord(1, "COMPLETE", {"train/lr": 0.1}, 1.1, {1: 1.3, 2: 1.1}),
    ... ])
    >>> [value for _, value in get_history_info(record).best_so_far]
    [0.9, 0.9]
    >>> fig = plot_history(record)  # a plotly.graph_objects.Figure
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go

from dashboard.figures import (
    STATE_COLORS,
    _check_direction,
    _message,
    _objective_label,
    _style,
    _subtitle,
    format_value,
    is_finite,
    template_text,
)
from studies.reads_outline import StudyOutline
from studies.records import StudyRecord, TrialRecord

__all__ = [
    "GL_ABOVE",
    "PARAMS_HOVER_MAX",
    "HistoryInfo",
    "HistoryPoint",
    "HistorySeries",
    "best_steps",
    "get_history_info",
    "history_series",
    "plot_history",
]


@dataclass(frozen=True)
class HistoryPoint:
    """One plotted value of the optimization history."""

    number: int
    state: str
    value: float
    trial: TrialRecord


@dataclass(frozen=True)
class HistoryInfo:
    """Data of :func:`plot_history`.

    Attributes:
        objective, direction: As in the record.
        complete: Complete trials with a finite value, by number.
        pruned: Pruned trials at their last reported intermediate value, if finite.
        best_so_far: ``(number, best value up to it)`` at each point of ``complete``.
        best: The best point of ``complete`` (the first reached on ties), or None.
        counts: Number of trials per state.
        n_skipped: Finished, not failed trials without a finite value to plot.
    """

    objective: str
    direction: str
    complete: list[HistoryPoint]
    pruned: list[HistoryPoint]
    best_so_far: list[tuple[int, float]]
    best: HistoryPoint | None
    counts: dict[str, int]
    n_skipped: int


def _objective_series(trial: TrialRecord, record: StudyRecord) -> dict[int, Any]:
    """``{epoch: value}`` of the (first) objective as reported: Optuna's intermediate
    values, or with several objectives (Optuna keeps none) archtune's metric rows."""
    if record.multi and not trial.intermediate:
        return dict(trial.metrics.get(record.objective, []))  # a later report wins
    return dict(trial.intermediate)


def _last_reported(trial: TrialRecord, record: StudyRecord) -> Any:
    """The last reported objective; without reports (a study's outline) the value Optuna
    kept for the stopped trial, which is that same last report."""
    series = _objective_series(trial, record)
    return series[max(series)] if series else trial.value


def get_history_info(record: StudyRecord) -> HistoryInfo:
    """Values of the finished trials and the best value so far, honouring direction.

    With several objectives, the first one's (``TrialRecord.value``).
    """
    maximize = _check_direction(record)
    complete, pruned, counts, skipped = [], [], {}, 0
    for t in sorted(record.trials, key=lambda t: t.number):
        counts[t.state] = counts.get(t.state, 0) + 1
        if t.state not in ("COMPLETE", "PRUNED"):
            continue
        value = t.value if t.state == "COMPLETE" else _last_reported(t, record)
        if not is_finite(value):
            skipped += 1
            continue
        point = HistoryPoint(t.number, t.state, float(value), t)
        (complete if t.state == "COMPLETE" else pruned).append(point)
    best: HistoryPoint | None = None
    best_so_far = []
    for p in complete:
        if best is None or (p.value > best.value if maximize else p.value < best.value):
            best = p
        best_so_far.append((p.number, best.value))
    return HistoryInfo(
        record.objective, record.direction, complete, pruned, best_so_far, best, counts, skipped
    )


GL_ABOVE = 1000
"""Traces of more points than this are drawn with WebGL (``Scattergl``): SVG slows down
past a few thousand points, and studies reach 100,000 trials."""

PARAMS_HOVER_MAX = 2000
"""Up to this many points, hovering a point lists its trial's params too; past it the
hover names the trial and its value (one string per point would be most of the figure:
13.7 MB at 100,000 trials), and clicking the point opens the trial."""


@dataclass(frozen=True, eq=False)
class HistorySeries:
    """The plotted points of :func:`plot_history`, as arrays, in trial-number order.

    Attributes:
        objective, direction: As in the study.
        number: The plotted trials' numbers (complete or pruned, with a finite value).
        value: Their values (a pruned trial's last reported one).
        completed: When they ended (``datetime64[us]``, naive local time; NaT unknown).
        pruned: Which of them were pruned.
        counts: Number of trials per state.
        n_skipped: Finished, not failed trials without a finite value to plot.
        params: Each point's params as escaped hover lines, when known and the study is
            small enough (:data:`PARAMS_HOVER_MAX`); else None.
    """

    objective: str
    direction: str
    number: np.ndarray
    value: np.ndarray
    completed: np.ndarray
    pruned: np.ndarray
    counts: dict[str, int]
    n_skipped: int
    params: list[str] | None = None


def history_series(source: StudyRecord | StudyOutline) -> HistorySeries:
    """The points of the history of a whole study or of its outline (the columns
    :meth:`StudyReader.outline <studies.reads.StudyReader.outline>` reads, which draw the
    same figure without params in the hover, and with a pruned trial at the value Optuna
    kept for it)."""
    if isinstance(source, StudyOutline):
        return _outline_series(source)
    info = get_history_info(source)
    points = sorted(info.complete + info.pruned, key=lambda p: p.number)
    params = None
    if len(points) <= PARAMS_HOVER_MAX:
        params = [_params_hover(p.trial) for p in points]
    return HistorySeries(
        info.objective,
        info.direction,
        np.array([p.number for p in points], dtype=np.int64),
        np.array([p.value for p in points], dtype=np.float64),
        np.array([p.trial.completed for p in points], dtype="datetime64[us]"),
        np.array([p.state == "PRUNED" for p in points], dtype=bool),
        info.counts,
        info.n_skipped,
        params,
    )


def _outline_series(outline: StudyOutline) -> HistorySeries:
    _check_direction(outline.study)
    states, n = np.unique(outline.state, return_counts=True)
    counts = {str(s): int(c) for s, c in zip(states, n, strict=True)}
    finished = (outline.state == "COMPLETE") | (outline.state == "PRUNED")
    value = outline.values[:, 0]
    shown = finished & np.isfinite(value)
    return HistorySeries(
        outline.objective,
        outline.direction,
        outline.number[shown],
        value[shown].astype(np.float64),
        outline.completed[shown],
        outline.state[shown] == "PRUNED",
        counts,
        int(np.count_nonzero(finished & ~shown)),
    )


def _params_hover(trial: TrialRecord) -> str:
    items = sorted(trial.params.items())
    lines = [f"{html.escape(str(k))}: {html.escape(format_value(v))}" for k, v in items]
    return "".join("<br>" + line for line in lines)


def best_steps(x: np.ndarray, value: np.ndarray, maximize: bool) -> tuple[np.ndarray, np.ndarray]:
    """The best value so far over ``x`` (sorted), as the corners of a step line: the
    points where it changes, and the last ``x``, which draw the same ``hv`` line as one
    point per trial.

    Example:
        >>> x, y = best_steps(np.array([0, 1, 2, 3]), np.array([0.5, 0.4, 0.7, 0.6]), True)
        >>> x.tolist(), y.tolist()
        ([0, 2, 3], [0.5, 0.7, 0.7])
    """
    if not len(x):
        return x, value
    best = (np.maximum if maximize else np.minimum).accumulate(value)
    corner = np.flatnonzero(np.r_[True, best[1:] != best[:-1]])
    if corner[-1] != len(x) - 1:
        corner = np.r_[corner, len(x) - 1]
    return x[corner], best[corner]


def _epoch_ms(times: np.ndarray) -> np.ndarray:
    """Times as milliseconds since 1970 (floats, NaN for NaT): what a date axis takes,
    and sent as a typed array, unlike date strings."""
    ms = times.astype("datetime64[ms]").astype(np.int64).astype(np.float64)
    ms[np.isnat(times)] = np.nan
    return ms


def _points_trace(series: HistorySeries, name: str, by: str) -> go.Scatter:
    pruned = name == "pruned"
    mask = series.pruned if pruned else ~series.pruned
    label = template_text(f"last reported {series.objective}" if pruned else series.objective)
    kind = go.Scattergl if np.count_nonzero(mask) > GL_ABOVE else go.Scatter
    number = series.number[mask].astype(np.int32)
    x = number if by == "number" else _epoch_ms(series.completed[mask])
    trial = "%{x}" if by == "number" else "%{customdata}"
    extra = "%{text}" if series.params is not None else ""
    return kind(
        x=x,
        y=series.value[mask],
        # A list, not a typed array: Dash's clickData reads customdata undecoded.
        customdata=None if by == "number" else number.tolist(),
        text=None if series.params is None else [series.params[i] for i in np.flatnonzero(mask)],
        mode="markers",
        name=name,
        marker=_MARKERS[name],
        hovertemplate=f"<b>Trial {trial}</b> · {name}<br>{label}: %{{y:.6g}}{extra}"
        "<extra></extra>",
    )


_MARKERS = {
    "complete": {
        "color": STATE_COLORS["COMPLETE"],
        "size": 9,
        "line": {"color": "white", "width": 1},
    },
    "pruned": {
        "color": STATE_COLORS["PRUNED"],
        "size": 9,
        "symbol": "x-thin",
        "line": {"color": STATE_COLORS["PRUNED"], "width": 2},
    },
}


def plot_history(source: StudyRecord | StudyOutline, by: str = "number") -> go.Figure:
    """Objective value of every finished trial by trial number (or by the wall time it
    ended), with the best so far.

    Complete trials are dots, pruned trials crosses at their last reported value; the
    step line is the best complete value so far. Failed trials are counted, not plotted.
    Hovering a point names its trial (and its params, in studies of up to
    :data:`PARAMS_HOVER_MAX` points); the arrays travel as typed arrays, so 100,000
    trials are a 2 MB figure.

    Args:
        source: The study, or its outline (what a study page draws first).
        by: ``"number"`` (x is the trial number) or ``"time"`` (x is when it ended).

    Raises:
        ValueError: for another ``by``.
    """
    if by not in ("number", "time"):
        raise ValueError(f"by must be 'number' or 'time', got {by!r}.")
    series = history_series(source)
    study = source.study if isinstance(source, StudyOutline) else source
    hidden = {"failed": series.counts.get("FAIL", 0), "without a finite value": series.n_skipped}
    subtitle = _subtitle(study, _objective_label(study), hidden)
    x_title = "Trial" if by == "number" else "Ended at"
    fig = _style(go.Figure(), "Optimization history", subtitle, x_title, series.objective)
    if not len(series.number):
        return _message(fig, f"No finished trial with a finite {series.objective} yet.")
    complete = ~series.pruned
    x = series.number[complete]
    order = np.arange(len(x))
    if by == "time":
        fig.update_xaxes(type="date")
        when = series.completed[complete]
        known = np.flatnonzero(~np.isnat(when))
        order = known[np.argsort(when[known], kind="stable")]
        x = _epoch_ms(when)
    steps_x, steps_y = best_steps(x[order], series.value[complete][order], _maximize(series))
    if len(steps_x):
        fig.add_trace(
            go.Scatter(
                x=steps_x,
                y=steps_y,
                mode="lines",
                line={"shape": "hv", "color": "#111827", "width": 2},
                name="best so far",
                hoverinfo="skip",
            )
        )
    fig.add_trace(_points_trace(series, "complete", by))
    fig.add_trace(_points_trace(series, "pruned", by))
    return fig


def _maximize(series: HistorySeries) -> bool:
    return series.direction == "maximize"
