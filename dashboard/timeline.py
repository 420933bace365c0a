"""The timeline: when each trial ran, and where, one horizontal bar per trial.

A bar goes from a trial's start to its end (a running trial's up to now), coloured by
its state. Each node (:attr:`studies.records.TrialRecord.node`) gets its own lanes, and
within a node the bars are packed into as few lanes as the node's greatest number of
trials at once, none overlapping another in its lane: the greedy interval partitioning
of the interval-scheduling literature (Kleinberg and Tardos, *Algorithm Design*, 2005,
section 4.1: take the intervals by start, put each into a free lane, open a new one only
when none is free). A trial without a node (plain Optuna studies, older runs) goes to
the lanes of no node, named ``slot 1``, ``slot 2``, ...

Trials without a start time, and finished (or interrupted) ones without an end time, are
counted, not drawn. The figure draws one WebGL trace per state, not one per trial, so
that it stays fast for 100,000 trials: its points are numpy arrays (sent as compact
typed arrays), times as milliseconds of the recorded wall time, and each point's
``customdata`` row is ``[trial number, duration, value(s)...]`` for the hover template.

Example:
    >>> from datetime import datetime, timedelta
    >>> from studies.records import StudyRecord, TrialRecord
    >>> t0 = datetime(2025, 1, 1)
    >>> def ran(n: int, start: int, end: int) -> TrialRecord:
    ...     return TrialRecord(n, "COMPLETE", {}, 0.5, started=t0 + timedelta(seconds=start),
    ...                        completed=t0 + timedelta(seconds=end))
    >>> info = get_timeline_info(StudyRecord("s", "maximize", "acc", None,
    ...                          [ran(0, 0, 10), ran(1, 5, 15), ran(2, 10, 20)]))
    >>> [(bar.number, bar.lane) for bar in info.bars], [lane.label for lane in info.lanes]
    ([(0, 0), (1, 1), (2, 0)], ['slot 1', 'slot 2'])
    >>> fig = plot_timeline(StudyRecord("s", "maximize", "acc", None, []))
"""

from __future__ import annotations

import heapq
import html
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import plotly.graph_objects as go

from dashboard.figures import (
    STATE_COLORS,
    STATE_ORDER,
    _message,
    _style,
    _subtitle,
    _template,
    float_array,
    is_finite,
)
from studies.records import StudyRecord, TrialRecord


@dataclass(frozen=True, slots=True)
class TimelineBar:
    """One trial's bar.

    Attributes:
        number, state: The trial's.
        start, end: Its start and end (``end`` is now for a running trial).
        running: Whether it is still running (its bar ends now).
        lane: Index into :attr:`TimelineInfo.lanes`.
        trial: The trial itself (for the hover text).
    """

    number: int
    state: str
    start: datetime
    end: datetime
    running: bool
    lane: int
    trial: TrialRecord

    @property
    def duration_s(self) -> float:
        """Seconds from start to end."""
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class TimelineLane:
    """One row of the timeline: a slot of a node.

    Attributes:
        node: The node, or None for trials that did not record one.
        slot: The slot's index within its node (0, 1, ...).
    """

    node: str | None
    slot: int

    @property
    def label(self) -> str:
        """``"host (10.0.0.1) · slot 2"``, or ``"slot 2"`` without a node."""
        slot = f"slot {self.slot + 1}"
        return slot if self.node is None else f"{self.node} · {slot}"


@dataclass(frozen=True)
class TimelineInfo:
    """Data of :func:`plot_timeline`.

    Attributes:
        bars: One per drawn trial, by number.
        lanes: Nodes by name (trials without a node last), each node's slots in order.
        now: The time the running trials' bars end at.
        counts: Number of trials per state.
        n_no_start: Trials left out for want of a start time (e.g. waiting ones).
        n_no_end: Trials left out for want of an end time that are not running.
    """

    bars: list[TimelineBar]
    lanes: list[TimelineLane]
    now: datetime
    counts: dict[str, int]
    n_no_start: int
    n_no_end: int


def pack_lanes(intervals: list[tuple[Any, Any]]) -> list[int]:
    """The lane of each ``(start, end)``, so that no two intervals of a lane overlap, in as
    few lanes as the most intervals that overlap at one time.

    Intervals are taken by start (then end, then position); each goes into the free lane
    of the lowest index. One that starts when another ends may share its lane.

    Example:
        >>> pack_lanes([(0, 10), (5, 15), (10, 20), (12, 13)])
        [0, 1, 0, 2]
    """
    order = sorted(range(len(intervals)), key=lambda i: (*intervals[i], i))
    busy: list[tuple[Any, int]] = []  # (end, lane) of the lanes in use
    free: list[int] = []  # lanes whose last interval has ended
    lanes = [0] * len(intervals)
    n_lanes = 0
    for i in order:
        start, end = intervals[i]
        while busy and busy[0][0] <= start:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            lane = heapq.heappop(free)
        else:
            lane, n_lanes = n_lanes, n_lanes + 1
        lanes[i] = lane
        heapq.heappush(busy, (end, lane))
    return lanes


def _now(now: datetime | None, trials: list[TrialRecord]) -> datetime:
    """``now``, else the current time in the (naive or aware) kind the record uses."""
    if now is not None:
        return now
    aware = next((t.started.tzinfo for t in trials if t.started and t.started.tzinfo), None)
    return datetime.now(aware)


def _span(trial: TrialRecord, now: datetime) -> tuple[datetime, datetime, bool] | None:
    """``(start, end, running)`` of a trial's bar, or None when it has none."""
    if trial.started is None:
        return None
    if trial.completed is not None:
        return trial.started, max(trial.completed, trial.started), False
    if trial.state == "RUNNING":
        return trial.started, max(now, trial.started), True
    return None


def get_timeline_info(record: StudyRecord, now: datetime | None = None) -> TimelineInfo:
    """Every trial's bar and lane.

    Args:
        record: The study.
        now: Where running trials' bars end (default: the current time).
    """
    now = _now(now, record.trials)
    counts: dict[str, int] = {}
    by_node: dict[str | None, list[tuple[datetime, datetime, bool, TrialRecord]]] = {}
    no_start = no_end = 0
    for t in sorted(record.trials, key=lambda t: t.number):
        counts[t.state] = counts.get(t.state, 0) + 1
        span = _span(t, now)
        if span is None:
            no_start += t.started is None
            no_end += t.started is not None
            continue
        by_node.setdefault(t.node, []).append((*span, t))
    bars: list[TimelineBar] = []
    lanes: list[TimelineLane] = []
    for node in sorted(by_node, key=lambda n: (n is None, n or "")):
        spans = by_node[node]
        slots = pack_lanes([(start, end) for start, end, _, _ in spans])
        first = len(lanes)
        lanes += [TimelineLane(node, k) for k in range(max(slots) + 1)]
        bars += [
            TimelineBar(t.number, t.state, start, end, running, first + slot, t)
            for (start, end, running, t), slot in zip(spans, slots, strict=True)
        ]
    bars.sort(key=lambda b: b.number)
    return TimelineInfo(bars, lanes, now, counts, no_start, no_end)


def format_duration(seconds: float | None) -> str:
    """``"12.3 s"``, ``"4 m 05 s"`` or ``"1 h 02 m"``; ``"—"`` when unknown.

    Example:
        >>> format_duration(12.34), format_duration(245), format_duration(3720)
        ('12.3 s', '4 m 05 s', '1 h 02 m')
    """
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} m"


_EPOCH = datetime(1970, 1, 1)
_UNITS = ((3600.0, "h", ",.2f"), (60.0, "min", ",.1f"), (1.0, "s", ",.1f"))


def _unit(seconds: np.ndarray) -> tuple[float, str, str]:
    """``(seconds per unit, unit, d3 format)`` that shows most of ``seconds`` well:
    hours past two hours at the median, minutes past two minutes, else seconds.

    Example:
        >>> _unit(np.array([30.0, 45.0])), _unit(np.array([600.0]))[1]
        ((1.0, 's', ',.1f'), 'min')
    """
    median = float(np.median(seconds)) if seconds.size else 0.0
    return next(u for u in _UNITS if median >= 2 * u[0] or u[0] == 1.0)


def _wall_ms(times: list[datetime]) -> np.ndarray:
    """Milliseconds since 1970 of each time's wall clock (its offset dropped): what a
    plotly date axis shows as that same date and time."""
    wall = (t if t.tzinfo is None else t.replace(tzinfo=None) for t in times)
    return float_array((t - _EPOCH).total_seconds() for t in wall) * 1000.0


def _value_columns(bars: list[TimelineBar]) -> np.ndarray:
    """One row per bar of its objective values (NaN where missing): the first objective
    only, unless some bar has several (then as many columns as the most any has)."""
    trials = [b.trial for b in bars]
    width = max((len(t.values) for t in trials if t.values), default=1)
    if width == 1:  # one objective: no list per bar (at 100,000 bars the garbage
        # collector walking the study's records made those the slowest step)
        return float_array(t.value if is_finite(t.value) else None for t in trials)[:, None]
    out = np.full((len(bars), width), np.nan)
    for i, t in enumerate(trials):
        row = t.values if t.values and len(t.values) > 1 else [t.value]
        out[i, : len(row)] = [v if is_finite(v) else np.nan for v in row]
    return out


def _segments(
    x0: np.ndarray, x1: np.ndarray, lanes: np.ndarray, rows: np.ndarray
) -> dict[str, np.ndarray]:
    """``x``, ``y`` and ``customdata`` of segments from ``x0`` to ``x1`` at ``lanes``, a
    NaN point after each (where the line breaks), each point with its segment's row of
    ``rows`` (float32: trial numbers and counts stay exact up to 16 million)."""
    x = np.full((len(x0), 3), np.nan)
    x[:, 0], x[:, 1] = x0, x1
    y = np.full((len(x0), 3), np.nan, dtype=np.float32)
    y[:, :2] = lanes[:, None]
    data = np.repeat(rows.astype(np.float32), 3, axis=0)  # the gap's row is never hovered
    return {"x": x.ravel(), "y": y.ravel(), "customdata": data}


def _line(state: str, n: int, width: float, hovertemplate: str, **arrays: Any) -> go.Scattergl:
    """The single WebGL trace of ``state``'s ``n`` trials, drawn as line segments."""
    return go.Scattergl(
        mode="lines",
        line={"color": STATE_COLORS.get(state, "#6b7280"), "width": width},
        name=f"{state.lower()} ({n})",
        hovertemplate=hovertemplate,
        connectgaps=False,
        **arrays,
    )


def _trace(bars: list[TimelineBar], state: str, width: float) -> go.Scattergl:
    """One segment per bar; the hover template reads each point's ``customdata`` row
    ``[number, duration in the trace's unit, value(s)...]``."""
    seconds = np.array([b.duration_s for b in bars])
    per, unit, fmt = _unit(seconds)
    values = _value_columns(bars)
    rows = np.column_stack([[b.number for b in bars], seconds / per, values])
    lanes = np.array([b.lane for b in bars])
    x0, x1 = _wall_ms([b.start for b in bars]), _wall_ms([b.end for b in bars])
    so_far = " so far" if state == "RUNNING" else ""
    cells = [f"%{{customdata[{2 + k}]:.6~g}}" for k in range(values.shape[1])]
    shown = [] if np.isnan(values).all() else [("value", ", ".join(cells))]
    hover = [("duration", f"%{{customdata[1]:{fmt}}} {unit}{so_far}"), *shown]
    template = _template(state, hover, number="%{customdata[0]}")
    return _line(state, len(bars), width, template, **_segments(x0, x1, lanes, rows))


BARS_DRAWN = 20_000
"""Past this many bars, each lane's trials of a state are merged per time bin: one bar
per trial was 14 MB and 3.4 s at 100,000 trials, and thinner than a pixel."""
TIME_BINS = 2_000
"""Time bins of the merged timeline, over the span of the study (about a pixel each)."""


def _binned_trace(
    bars: list[TimelineBar], state: str, width: float, t0: float, bin_ms: float
) -> go.Scattergl:
    """One segment per lane and time bin that ``state``'s trials started in, from the
    first start to the last end of those trials; hover gives their count and numbers
    (``customdata`` row ``[count, lowest number, highest number]``)."""
    start, end = _wall_ms([b.start for b in bars]), _wall_ms([b.end for b in bars])
    lanes = np.array([b.lane for b in bars], dtype=np.int64)
    numbers = np.array([b.number for b in bars], dtype=np.int64)
    where = np.clip((start - t0) // bin_ms, 0, TIME_BINS - 1).astype(np.int64)
    key = lanes * TIME_BINS + where
    order = np.argsort(key, kind="stable")
    key, start, end, lanes, numbers = (a[order] for a in (key, start, end, lanes, numbers))
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    rows = np.column_stack(
        [
            np.diff(np.r_[first, key.size]),
            np.minimum.reduceat(numbers, first),
            np.maximum.reduceat(numbers, first),
        ]
    )
    x0, x1 = np.minimum.reduceat(start, first), np.maximum.reduceat(end, first)
    label = html.escape("running" if state == "RUNNING" else state.lower())
    template = (
        f"<b>%{{customdata[0]:,}} {label} trial(s)</b> started here<br>"
        "numbers %{customdata[1]} to %{customdata[2]}<extra></extra>"
    )
    return _line(state, len(bars), width, template, **_segments(x0, x1, lanes[first], rows))


def plot_timeline(record: StudyRecord, now: datetime | None = None) -> go.Figure:
    """One horizontal bar per trial from its start to its end, coloured by state, in
    lanes per node and concurrent slot (see :func:`get_timeline_info`). Past
    :data:`BARS_DRAWN` trials, each lane's trials of a state are merged per time bin
    (:data:`TIME_BINS` over the study), as the subtitle says."""
    info = get_timeline_info(record, now)
    hidden = {"without a start time": info.n_no_start, "without an end time": info.n_no_end}
    what = f"{len(info.lanes)} lane{'s' * (len(info.lanes) != 1)}"
    binned = len(info.bars) > BARS_DRAWN
    if binned:
        what += f" · {len(info.bars):,} trials merged per state into {TIME_BINS:,} time bins"
    fig = _style(go.Figure(), "Timeline", _subtitle(record, what, hidden), "Time")
    if not info.bars:
        return _message(fig, "No trial with a start time yet.")
    states: dict[str, list[TimelineBar]] = {}
    for bar in info.bars:
        states.setdefault(bar.state, []).append(bar)
    order = [s for s in STATE_ORDER if s in states] + sorted(set(states) - set(STATE_ORDER))
    height = max(300, min(1400, 140 + 26 * len(info.lanes)))
    width = max(2.0, min(16.0, 0.6 * (height - 140) / len(info.lanes)))
    t0 = float(_wall_ms([b.start for b in info.bars]).min()) if binned else 0.0
    span = float(_wall_ms([b.end for b in info.bars]).max()) - t0 if binned else 0.0
    for state in order:
        bars = states[state]
        if binned:
            fig.add_trace(_binned_trace(bars, state, width, t0, max(span / TIME_BINS, 1.0)))
        else:
            fig.add_trace(_trace(bars, state, width))
    fig.update_layout(height=height, hovermode="closest")
    fig.update_xaxes(type="date")
    fig.update_yaxes(
        tickvals=list(range(len(info.lanes))),
        ticktext=[html.escape(lane.label) for lane in info.lanes],
        range=[len(info.lanes) - 0.5, -0.5],  # the first lane on top
        automargin=True,
        showgrid=False,
    )
    return fig
