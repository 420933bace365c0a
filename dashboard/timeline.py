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
that it stays fast for 100,000 trials; each point's ``customdata`` starts with its
trial number.

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
    format_value,
)
from studies.records import StudyRecord, TrialRecord


@dataclass(frozen=True)
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


def _hover_data(bar: TimelineBar) -> tuple[int, str, str]:
    """``(number, duration, value)`` of a bar, for the trace's hover template."""
    t = bar.trial
    several = t.values is not None and len(t.values) > 1
    shown = ", ".join(map(format_value, t.values or [])) if several else format_value(t.value)
    return bar.number, format_duration(bar.duration_s), html.escape(shown)


def _trace(bars: list[TimelineBar], state: str, width: float) -> go.Scattergl:
    """One line segment per bar, the segments apart by gaps: a single WebGL trace for the
    state. Object arrays keep plotly's validation of 100,000 bars fast, and a hover
    template over ``customdata`` (``[number, duration, value]``) keeps the page small."""
    n = 3 * len(bars)
    x, y = np.full(n, None, dtype=object), np.full(n, None, dtype=object)
    data = np.full((n, 3), None, dtype=object)
    for i, bar in enumerate(bars):
        a, b = 3 * i, 3 * i + 2  # [a, b) holds the segment; b stays None: the gap
        x[a:b] = (bar.start, bar.end)
        y[a:b] = bar.lane
        data[a:b] = _hover_data(bar)
    label = html.escape("running" if state == "RUNNING" else state.lower())
    so_far = " so far" if state == "RUNNING" else ""
    return go.Scattergl(
        x=x,
        y=y,
        mode="lines",
        line={"color": STATE_COLORS.get(state, "#6b7280"), "width": width},
        name=f"{state.lower()} ({len(bars)})",
        customdata=data,
        hovertemplate=(
            f"<b>Trial %{{customdata[0]}}</b> · {label}<br>duration: %{{customdata[1]}}"
            f"{so_far}<br>value: %{{customdata[2]}}<extra></extra>"
        ),
        connectgaps=False,
    )


def plot_timeline(record: StudyRecord, now: datetime | None = None) -> go.Figure:
    """One horizontal bar per trial from its start to its end, coloured by state, in
    lanes per node and concurrent slot (see :func:`get_timeline_info`)."""
    info = get_timeline_info(record, now)
    hidden = {"without a start time": info.n_no_start, "without an end time": info.n_no_end}
    what = f"{len(info.lanes)} lane{'s' * (len(info.lanes) != 1)}"
    fig = _style(go.Figure(), "Timeline", _subtitle(record, what, hidden), "Time")
    if not info.bars:
        return _message(fig, "No trial with a start time yet.")
    states: dict[str, list[TimelineBar]] = {}
    for bar in info.bars:
        states.setdefault(bar.state, []).append(bar)
    order = [s for s in STATE_ORDER if s in states] + sorted(set(states) - set(STATE_ORDER))
    height = max(300, min(1400, 140 + 26 * len(info.lanes)))
    width = max(2.0, min(16.0, 0.6 * (height - 140) / len(info.lanes)))
    for state in order:
        fig.add_trace(_trace(states[state], state, width))
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
