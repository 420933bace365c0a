"""The overhead figure: where each trial's wall time went.

One horizontal stacked bar per trial, in trial order: propose, queue, start-up, train
and record (:mod:`studies.overhead` defines each), and the study's totals and each
phase's share of them. As the other figures (:mod:`dashboard.figures`), a pure
:func:`get_overhead_info` step and a :func:`plot_overhead` renderer.

Shares are of the trials' summed time (trial-seconds): with trials running side by side
that is more than the study's elapsed time, and it is what the trials cost. Trials
without a recorded overhead (older studies, plain Optuna studies, trials still running)
are skipped and counted.

Example:
    >>> from studies.records import StudyRecord, TrialRecord
    >>> o = {"propose_s": 0.5, "queue_s": 1.0, "startup_s": 2.0, "train_s": 6.0,
    ...      "record_s": 0.5}
    >>> record = StudyRecord("demo", "maximize", "val_acc", None, [
    ...     TrialRecord(0, "COMPLETE", {}, 0.9, overhead=o),
    ...     TrialRecord(1, "COMPLETE", {}, 0.8),
    ... ])
    >>> info = get_overhead_info(record)
    >>> info.shares["train_s"], info.n_skipped
    (0.6, 1)
    >>> fig = plot_overhead(record)  # a plotly.graph_objects.Figure
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go

from dashboard.figures import _hover, _message, _style, _subtitle, float_array
from studies.overhead import PHASES, Overhead
from studies.records import StudyRecord, TrialRecord

PHASE_LABELS = {
    "propose_s": "propose",
    "queue_s": "queue",
    "startup_s": "start-up",
    "train_s": "train",
    "record_s": "record",
}
PHASE_COLORS = {
    "propose_s": "#8b5cf6",
    "queue_s": "#f59e0b",
    "startup_s": "#ec4899",
    "train_s": "#2563eb",
    "record_s": "#10b981",
}


@dataclass(frozen=True)
class OverheadBar:
    """One trial's bar: seconds per phase (0 for a phase it did not go through)."""

    number: int
    state: str
    seconds: dict[str, float]
    trial: TrialRecord

    @property
    def total_s(self) -> float:
        """The bar's length: its phases together."""
        return sum(self.seconds.values())


@dataclass(frozen=True)
class OverheadInfo:
    """Data of :func:`plot_overhead`.

    Attributes:
        bars: One per trial with a recorded overhead, by number.
        totals: Seconds per phase over every bar (keys :data:`studies.overhead.PHASES`).
        total_s: The totals together.
        shares: Each phase's share of ``total_s`` (all 0 when it is 0).
        n_skipped: Trials without a (readable) recorded overhead.
    """

    bars: list[OverheadBar]
    totals: dict[str, float]
    total_s: float
    shares: dict[str, float]
    n_skipped: int


def _seconds(trial: TrialRecord) -> dict[str, float] | None:
    """Seconds per phase of a trial, or None when it has no readable overhead."""
    if trial.overhead is None:
        return None
    try:
        overhead = Overhead.from_json(trial.overhead)
    except ValueError:
        return None
    return {p: float(getattr(overhead, p) or 0.0) for p in PHASES}


def get_overhead_info(record: StudyRecord) -> OverheadInfo:
    """Each trial's time per phase, the study's totals and each phase's share.

    Example:
        >>> from studies.records import StudyRecord
        >>> get_overhead_info(StudyRecord("s", "maximize", "acc", None, [])).total_s
        0.0
    """
    bars, skipped = [], 0
    for t in sorted(record.trials, key=lambda t: t.number):
        seconds = _seconds(t)
        if seconds is None:
            skipped += 1
        else:
            bars.append(OverheadBar(t.number, t.state, seconds, t))
    totals = {p: sum((b.seconds[p] for b in bars), 0.0) for p in PHASES}
    total = sum(totals.values(), 0.0)
    shares = {p: totals[p] / total if total > 0 else 0.0 for p in PHASES}
    return OverheadInfo(bars, totals, total, shares, skipped)


def _shares_text(info: OverheadInfo) -> str:
    """``"train 60% · queue 10% · ..."``, largest first, then the total.

    Example:
        >>> info = OverheadInfo([], {}, 90.0, {"train_s": 0.75, "queue_s": 0.25}, 0)
        >>> _shares_text(info)
        'train 75% · queue 25% of 1.5 min'
    """
    order = sorted(info.shares, key=lambda p: -info.shares[p])
    parts = [f"{PHASE_LABELS[p]} {info.shares[p]:.0%}" for p in order if info.shares[p] > 0]
    total = info.total_s
    shown = f"{total:.1f} s" if total < 60 else f"{total / 60:.1f} min"
    if total >= 3600:
        shown = f"{total / 3600:.1f} h"
    return f"{' · '.join(parts) or 'no time'} of {shown}"


BARS_SHOWN = 200
"""Most bars drawn: past this many trials, each bar is the mean of as many consecutive
trials as it takes (one bar per trial was 146 MB at 100,000 trials, each under a pixel)."""


def _per_trial(info: OverheadInfo, phase: str) -> dict[str, Any]:
    """One bar per trial for ``phase``: hover text naming the trial (params included)."""
    name = PHASE_LABELS[phase]
    rows = [[(f"{name} s", b.seconds[phase]), ("total s", b.total_s)] for b in info.bars]
    return {
        "x": float_array(b.seconds[phase] for b in info.bars),
        "y": [f"#{b.number}" for b in info.bars],
        "text": [_hover(b.trial, r) for b, r in zip(info.bars, rows, strict=True)],
        "hoverinfo": "text",
    }


def _grouped(info: OverheadInfo, size: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Mean seconds per phase (rows: groups, columns: :data:`PHASES`) of each ``size``
    consecutive bars, their labels (``"#0-#499"``) and ``[first, last, count, mean total]``
    rows for the hover template."""
    seconds = np.array([[b.seconds[p] for p in PHASES] for b in info.bars])
    numbers = np.array([b.number for b in info.bars])
    starts = np.arange(0, len(info.bars), size)
    counts = np.diff(np.r_[starts, len(info.bars)])
    means = np.add.reduceat(seconds, starts, axis=0) / counts[:, None]
    last = numbers[np.r_[starts[1:], len(info.bars)] - 1]
    labels = [f"#{a}-#{b}" for a, b in zip(numbers[starts], last, strict=True)]
    rows = np.column_stack([numbers[starts], last, counts, means.sum(axis=1)])
    return means, labels, rows


def _phase_bars(info: OverheadInfo, size: int) -> list[dict[str, Any]]:
    """Per phase, the bar trace's data: one bar per trial (``size`` 1), else the mean
    of each ``size`` consecutive trials with a hover template over ``customdata``."""
    if size == 1:
        return [_per_trial(info, phase) for phase in PHASES]
    means, labels, rows = _grouped(info, size)
    return [
        {
            "x": means[:, k],
            "y": labels,
            "customdata": rows,
            "hovertemplate": (
                "<b>Trials %{customdata[0]} to %{customdata[1]}</b> (%{customdata[2]:,})"
                f"<br>{PHASE_LABELS[phase]}: %{{x:.3~g}} s on average"
                "<br>all phases: %{customdata[3]:.3~g} s on average<extra></extra>"
            ),
        }
        for k, phase in enumerate(PHASES)
    ]


def plot_overhead(record: StudyRecord) -> go.Figure:
    """A horizontal stacked bar per trial (trial 0 on top): propose, queue, start-up,
    train, record. The subtitle gives each phase's share of the trials' summed time and
    how many trials recorded no overhead. Past :data:`BARS_SHOWN` trials, a bar is the
    mean of consecutive trials, as the subtitle says."""
    info = get_overhead_info(record)
    what = f"where the time went: {_shares_text(info)}" if info.bars else "where the time went"
    size = -(-len(info.bars) // BARS_SHOWN)  # trials per bar, rounded up
    if size > 1:
        what += f" · each bar the mean of {size:,} consecutive trials"
    subtitle = _subtitle(record, what, {"trials without overhead": info.n_skipped})
    fig = _style(go.Figure(), "Trial overhead", subtitle, "Seconds", "Trial")
    if not info.bars:
        return _message(fig, "No trial recorded where its time went yet.")
    for phase, bars in zip(PHASES, _phase_bars(info, size), strict=True):
        fig.add_trace(
            go.Bar(
                orientation="h",
                name=f"{PHASE_LABELS[phase]} ({info.shares[phase]:.0%} of all)",
                marker={"color": PHASE_COLORS[phase]},
                textposition="none",
                **bars,
            )
        )
    height = min(max(460, 22 * min(len(info.bars), BARS_SHOWN) + 180), 2400)
    fig.update_layout(barmode="stack", height=height)
    fig.update_yaxes(autorange="reversed", type="category")
    return fig
