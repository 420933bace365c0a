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

from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from dashboard.figures import (
    STATE_COLORS,
    _check_direction,
    _hover,
    _message,
    _objective_label,
    _style,
    _subtitle,
    is_finite,
)
from studies.records import StudyRecord, TrialRecord

__all__ = ["GL_ABOVE", "HistoryInfo", "HistoryPoint", "get_history_info", "plot_history"]


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


def _x(point: HistoryPoint, by: str) -> Any:
    return point.number if by == "number" else point.trial.completed


def _points_trace(
    points: list[HistoryPoint], name: str, objective: str, by: str, **marker
) -> go.Scatter:
    label = objective if name == "complete" else f"last reported {objective}"
    kind = go.Scattergl if len(points) > GL_ABOVE else go.Scatter
    return kind(
        x=[_x(p, by) for p in points],
        y=[p.value for p in points],
        mode="markers",
        name=name,
        marker=marker,
        text=[_hover(p.trial, [(label, p.value)]) for p in points],
        hoverinfo="text",
    )


def _best_by_time(points: list[HistoryPoint], maximize: bool) -> list[tuple[Any, float]]:
    """The best value so far over the completion time of ``points``."""
    out: list[tuple[Any, float]] = []
    best: float | None = None
    timed = sorted((p for p in points if p.trial.completed is not None), key=_completed)
    for p in timed:
        if best is None or (p.value > best if maximize else p.value < best):
            best = p.value
        out.append((p.trial.completed, best))
    return out


def _completed(point: HistoryPoint) -> Any:
    return point.trial.completed


def plot_history(record: StudyRecord, by: str = "number") -> go.Figure:
    """Objective value of every finished trial by trial number (or by the wall time it
    ended), with the best so far.

    Complete trials are dots, pruned trials crosses at their last reported value; the
    step line is the best complete value so far. Failed trials are counted, not plotted.

    Args:
        record: The study.
        by: ``"number"`` (x is the trial number) or ``"time"`` (x is when it ended).

    Raises:
        ValueError: for another ``by``.
    """
    if by not in ("number", "time"):
        raise ValueError(f"by must be 'number' or 'time', got {by!r}.")
    info = get_history_info(record)
    hidden = {"failed": info.counts.get("FAIL", 0), "without a finite value": info.n_skipped}
    subtitle = _subtitle(record, _objective_label(record), hidden)
    x_title = "Trial" if by == "number" else "Ended at"
    fig = _style(go.Figure(), "Optimization history", subtitle, x_title, info.objective)
    if not info.complete and not info.pruned:
        return _message(fig, f"No finished trial with a finite {info.objective} yet.")
    steps = info.best_so_far
    if by == "time":
        steps = _best_by_time(info.complete, record.direction == "maximize")
    if steps:
        fig.add_trace(
            go.Scatter(
                x=[n for n, _ in steps],
                y=[v for _, v in steps],
                mode="lines",
                line={"shape": "hv", "color": "#111827", "width": 2},
                name="best so far",
                hoverinfo="skip",
            )
        )
    complete = {
        "color": STATE_COLORS["COMPLETE"],
        "size": 9,
        "line": {"color": "white", "width": 1},
    }
    pruned = {
        "color": STATE_COLORS["PRUNED"],
        "size": 9,
        "symbol": "x-thin",
        "line": {"color": STATE_COLORS["PRUNED"], "width": 2},
    }
    fig.add_trace(_points_trace(info.complete, "complete", info.objective, by, **complete))
    fig.add_trace(_points_trace(info.pruned, "pruned", info.objective, by, **pruned))
    return fig
