"""The learning-curves figure: the trials' per-epoch points of a metric.

As the other figures (:mod:`dashboard.figures`), a pure :func:`get_curves_info` step and a
:func:`plot_learning_curves` renderer. Past :data:`CURVES_SHOWN` trials (100,000 curves
are 50 MB of page that no one can tell apart) the figure draws the best
:data:`BEST_SHOWN` complete trials and a seeded sample of the others, and its subtitle
says so.

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
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import plotly.graph_objects as go

from dashboard.figures import (
    STATE_COLORS,
    _hover,
    _message,
    _style,
    _subtitle,
    _template,
    float_array,
    is_finite,
    ranked_numbers,
    sample_trials,
)
from dashboard.history import _objective_series
from studies.records import StudyRecord, TrialRecord

CURVES_SHOWN = 2000
"""Most curves drawn; past this, the best :data:`BEST_SHOWN` and a sample of the rest."""
BEST_SHOWN = 200
"""Best complete trials (by the objective) always drawn when the curves are sampled."""
SAMPLE_SEED = 0
"""Seed of the sample of the other curves (the same trials on every redraw)."""


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
        n_skipped: Points left out because their value is not finite (of every trial).
        n_trials: Trials that reported a finite point: ``len(curves)`` unless sampled.
        n_best: When sampled, how many of ``curves`` are the best complete trials (the
            rest are the sample); 0 otherwise.
    """

    metric: str
    curves: list[Curve]
    best_number: int | None
    available: list[str]
    n_skipped: int
    n_trials: int = 0
    n_best: int = 0

    @property
    def sampled(self) -> bool:
        """Whether some trial with a finite point has no curve here."""
        return len(self.curves) < self.n_trials


def _series(trial: TrialRecord, metric: str | None, record: StudyRecord) -> Mapping[int, Any]:
    """``{epoch: value}`` of ``metric`` (None: the reported objective), not to be changed:
    a trial's own intermediate values where they are the series, else a new dict."""
    if metric is None and (trial.intermediate or not record.multi):
        return trial.intermediate  # what _objective_series copies; read only here
    if metric is None:
        return _objective_series(trial, record)
    return dict(trial.metrics.get(metric, []))  # a later report of an epoch wins


def _curve(trial: TrialRecord, metric: str | None, record: StudyRecord) -> Curve:
    """The finite points of ``trial``'s series, by epoch."""
    points = sorted(_series(trial, metric, record).items())
    finite = [(e, float(v)) for e, v in points if is_finite(v)]
    return Curve(trial.number, trial.state, [e for e, _ in finite], [v for _, v in finite], trial)


def get_curves_info(
    record: StudyRecord,
    metric: str | None = None,
    *,
    limit: int | None = CURVES_SHOWN,
    n_best: int = BEST_SHOWN,
    seed: int = SAMPLE_SEED,
) -> CurvesInfo:
    """Per-epoch points of ``metric`` (None: the reported objective) of every trial, or
    of at most ``limit`` of them: the best ``n_best`` complete trials by the objective
    and a sample of the others drawn with ``numpy.random.default_rng(seed)``.

    Raises:
        ValueError: for a ``limit`` under 1 or a negative ``n_best``.

    Example:
        >>> from studies.records import StudyRecord, TrialRecord
        >>> t = TrialRecord(0, "PRUNED", {}, None, {1: 0.4, 2: float("nan")})
        >>> get_curves_info(StudyRecord("s", "maximize", "acc", None, [t])).curves[0].epochs
        [1]
    """
    if (limit is not None and limit < 1) or n_best < 0:
        raise ValueError(f"limit must be None or >= 1 and n_best >= 0; got {limit}, {n_best}.")
    ranked = ranked_numbers(record)
    reported, skipped = [], 0  # counted on every trial; the curves built for those drawn
    for t in sorted(record.trials, key=lambda t: t.number):
        values = _series(t, metric, record).values()
        n_finite = sum(map(is_finite, values))
        skipped += len(values) - n_finite
        if n_finite:
            reported.append(t)
    n_best_kept = 0
    drawn = reported
    if limit is not None:
        drawn, n_best_kept = sample_trials(reported, ranked, limit, n_best, seed)
    curves = [_curve(t, metric, record) for t in drawn]
    available = sorted({name for t in record.trials for name in t.metrics})
    name = record.objective if metric is None else metric
    best = ranked[0] if ranked else None
    return CurvesInfo(name, curves, best, available, skipped, len(reported), n_best_kept)


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
        x=float_array(curve.epochs),
        y=float_array(curve.values),
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
    objectives, the best in the first one, and named so). Past :data:`CURVES_SHOWN`
    trials, the best and a sample (see :func:`get_curves_info`), as the subtitle says.
    """
    info = get_curves_info(record, metric)
    what = f"{info.metric} per epoch"
    if info.sampled:
        which = f"the best {info.n_best:,} and a sample" if info.n_best else "a sample"
        what += f" · showing {len(info.curves):,} of {info.n_trials:,} trials: {which}"
    subtitle = _subtitle(record, what, {"non-finite points": info.n_skipped})
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


def _joined(curves: list[Curve]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x``, ``y`` and trial number of every point of ``curves``, one curve after the
    other, with a NaN point after each (where the line breaks)."""
    x = float_array(chain.from_iterable([*c.epochs, None] for c in curves))
    y = float_array(chain.from_iterable([*c.values, None] for c in curves))
    numbers = [n for c in curves for n in [c.number] * (len(c.epochs) + 1)]
    return x, y, np.asarray(numbers, dtype=np.int32)


def _merged_traces(
    curves: list[Curve], metric: str, best_number: int | None, best_label: str
) -> list[go.Scattergl]:
    """One line trace per state (curves joined with gaps), the pruned trials' stopping
    points as crosses, and the best trial on top; hover says the trial, epoch and value
    (a template over the trial numbers in ``customdata``, not a string per point)."""
    traces = []
    for state in sorted({c.state for c in curves}, key=lambda s: s != "COMPLETE"):
        mine = [c for c in curves if c.state == state and c.number != best_number]
        if not mine:
            continue
        x, y, numbers = _joined(mine)
        color = STATE_COLORS.get(state, "#6b7280")
        traces.append(
            go.Scattergl(
                x=x,
                y=y,
                customdata=numbers,
                hovertemplate=_template(state, [("epoch", "%{x}"), (metric, "%{y:.6~g}")]),
                mode="lines",
                name=state.lower(),
                legendgroup=state,
                opacity=0.35 if state == "COMPLETE" else 0.6,
                line={"color": color, "width": 1, "dash": _CURVE_DASH.get(state, "solid")},
            )
        )
        if state == "PRUNED":
            rows = [("stopped at epoch", "%{x}"), (metric, "%{y:.6~g}")]
            traces.append(
                go.Scattergl(
                    x=float_array(c.epochs[-1] for c in mine),
                    y=float_array(c.values[-1] for c in mine),
                    customdata=np.asarray([c.number for c in mine], dtype=np.int32),
                    hovertemplate=_template(state, rows),
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
