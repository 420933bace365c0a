"""Tests of the timeline figure: lanes per node and slot, running trials, missing times."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import numpy as np
import plotly.graph_objects as go
import pytest

from dashboard.timeline import get_timeline_info, pack_lanes, plot_timeline
from studies.records import StudyRecord, TrialRecord

T0 = datetime(2025, 1, 1, 12, 0, 0)
NOW = T0 + timedelta(hours=1)


def ran(number: int, start: float, end: float | None, state: str = "COMPLETE", **kw):
    done = None if end is None else T0 + timedelta(seconds=end)
    kw.setdefault("params", {})
    return TrialRecord(number, state, started=T0 + timedelta(seconds=start), completed=done, **kw)


def study(trials: list[TrialRecord]) -> StudyRecord:
    return StudyRecord("tl", "maximize", "acc", None, trials)


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one time (an end before a start at the same time)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    depth = best = 0
    for _, step in events:
        depth += step
        best = max(best, depth)
    return best


def assert_no_overlap(intervals, lanes):
    for lane in set(lanes):
        mine = sorted(iv for iv, k in zip(intervals, lanes, strict=True) if k == lane)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(mine))


# --------------------------------------------------------------------- packing


def test_pack_lanes_known_example():
    intervals = [(0, 10), (2, 4), (5, 12), (4, 6), (10, 11), (11, 20), (6, 8)]
    lanes = pack_lanes(intervals)
    assert lanes == [0, 1, 2, 1, 0, 0, 1]
    assert max(lanes) + 1 == max_overlap(intervals) == 3
    assert_no_overlap(intervals, lanes)


def test_pack_lanes_touching_intervals_share_a_lane():
    assert pack_lanes([(0, 5), (5, 10), (10, 15)]) == [0, 0, 0]
    assert pack_lanes([]) == []


@pytest.mark.parametrize("seed", range(5))
def test_pack_lanes_is_minimal_and_never_overlaps(seed):
    rng = np.random.default_rng(seed)
    starts = rng.uniform(0, 100, size=300)
    intervals = [
        (float(s), float(s + d)) for s, d in zip(starts, rng.exponential(5, 300), strict=True)
    ]
    lanes = pack_lanes(intervals)
    assert_no_overlap(intervals, lanes)
    assert max(lanes) + 1 == max_overlap(intervals)


# ------------------------------------------------------------------------ info


def test_lanes_per_node_then_without_node():
    trials = [
        ran(0, 0, 10, node="b-host (10.0.0.2)"),
        ran(1, 0, 10, node="a-host (10.0.0.1)"),
        ran(2, 5, 15, node="a-host (10.0.0.1)"),
        ran(3, 10, 20, node="a-host (10.0.0.1)"),
        ran(4, 0, 30),
        ran(5, 1, 3),
    ]
    info = get_timeline_info(study(trials), now=NOW)
    assert [lane.label for lane in info.lanes] == [
        "a-host (10.0.0.1) · slot 1",
        "a-host (10.0.0.1) · slot 2",
        "b-host (10.0.0.2) · slot 1",
        "slot 1",
        "slot 2",
    ]
    assert {b.number: b.lane for b in info.bars} == {0: 2, 1: 0, 2: 1, 3: 0, 4: 3, 5: 4}
    assert [b.number for b in info.bars] == list(range(6))


def test_running_trials_end_now_and_missing_times_are_counted():
    trials = [
        ran(0, 0, 60),
        ran(1, 30, None, state="RUNNING"),
        ran(2, 40, None, state="INTERRUPTED"),  # no end, not running: not drawn
        TrialRecord(3, "WAITING", {}),  # never started
        TrialRecord(4, "FAIL", {}, completed=T0),  # no start
        ran(5, 50, 45, state="FAIL"),  # a clock that stepped back: no negative bar
    ]
    info = get_timeline_info(study(trials), now=NOW)
    bars = {b.number: b for b in info.bars}
    assert set(bars) == {0, 1, 5}
    assert bars[1].running and bars[1].end == NOW and bars[1].duration_s == 3600 - 30
    assert not bars[0].running and bars[0].duration_s == 60
    assert bars[5].duration_s == 0
    assert (info.n_no_start, info.n_no_end) == (2, 1)
    assert info.counts == {"COMPLETE": 1, "RUNNING": 1, "INTERRUPTED": 1, "WAITING": 1, "FAIL": 2}


def test_now_defaults_to_the_current_time_in_the_records_kind():
    naive = get_timeline_info(study([ran(0, 0, None, state="RUNNING")]))
    assert naive.now.tzinfo is None and naive.bars[0].end >= T0
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    aware = TrialRecord(0, "RUNNING", {}, started=start)
    info = get_timeline_info(study([aware]))
    assert info.now.tzinfo is not None and info.bars[0].end > start


# --------------------------------------------------------------------- figure


def test_plot_one_webgl_trace_per_state():
    trials = [ran(i, i, i + 5, state=("COMPLETE", "PRUNED", "FAIL")[i % 3]) for i in range(30)]
    trials.append(ran(30, 0, None, state="RUNNING"))
    fig = plot_timeline(study(trials), now=NOW)
    assert [t.name for t in fig.data] == [
        "complete (10)",
        "pruned (10)",
        "fail (10)",
        "running (1)",
    ]
    assert all(isinstance(t, go.Scattergl) for t in fig.data)
    complete = fig.data[0]
    assert len(complete.x) == 30 and np.isnan(complete.x[2]) and np.isnan(complete.y[2])  # gaps
    assert [row[0] for row in complete.customdata[::3]] == list(range(0, 30, 3))
    assert complete.customdata[0][1] == 5.0 and "%{customdata[1]:,.1f} s" in complete.hovertemplate
    assert "Trial %{customdata[0]}" in complete.hovertemplate and "complete" in fig.data[0].name
    assert "so far" in fig.data[3].hovertemplate


def test_plot_lanes_top_down_and_escaped():
    trials = [ran(0, 0, 10, node="<b>host</b>"), ran(1, 2, 12, node="<b>host</b>")]
    fig = plot_timeline(study(trials), now=NOW)
    assert list(fig.layout.yaxis.ticktext) == [
        "&lt;b&gt;host&lt;/b&gt; · slot 1",
        "&lt;b&gt;host&lt;/b&gt; · slot 2",
    ]
    assert tuple(fig.layout.yaxis.range) == (1.5, -0.5)  # the first lane on top
    assert "2 lanes" in fig.layout.title.subtitle.text


def test_plot_values_in_hover():
    trials = [ran(0, 0, 10, value=0.25), ran(1, 0, 10, state="COMPLETE", value=None)]
    trials[1].values = [0.5, 1e6]
    trace = plot_timeline(study(trials), now=NOW).data[0]
    data = trace.customdata
    assert data[0][2] == 0.25 and np.isnan(data[0][3])  # one value: the second cell empty
    assert list(data[3][2:]) == [0.5, 1e6]
    assert "value: %{customdata[2]:.6~g}, %{customdata[3]:.6~g}" in trace.hovertemplate


def test_plot_of_nothing_gives_a_message():
    fig = plot_timeline(study([TrialRecord(0, "WAITING", {})]), now=NOW)
    assert not fig.data and "No trial with a start time yet." in fig.layout.annotations[0].text
    assert "1 without a start time" in fig.layout.title.subtitle.text
