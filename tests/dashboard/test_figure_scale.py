"""The later figures at scale: sampled learning curves, the merged timeline, grouped
overhead bars, template hovers, numpy (base64 typed array) point data, and user strings
escaped in every hover (no browser, no database)."""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.io.json import to_json_plotly

from dashboard import overhead, pareto, timeline
from dashboard.curves import get_curves_info, plot_learning_curves
from dashboard.figures import compact_array, float_array, plot_parallel_coordinates
from dashboard.history import plot_history
from studies.records import StudyRecord, TrialRecord

XSS = "<img src=x onerror=alert(1)>"
T0 = datetime(2025, 1, 1)
STATES = ("COMPLETE", "COMPLETE", "PRUNED", "COMPLETE", "FAIL")


def made(n: int, name: str = "s", direction: str = "maximize", **study: Any) -> StudyRecord:
    """``n`` trials of every state, each with a curve, times, a node and an overhead."""
    trials = []
    for i in range(n):
        state = STATES[i % len(STATES)]
        value = (i * 7919 % 1000) / 1000 if state == "COMPLETE" else None
        epochs = 3 if state == "COMPLETE" else 1 + i % 2
        trials.append(
            TrialRecord(
                i,
                state,
                {"lr": 10 ** -(1 + i % 4), "act": ("relu", XSS)[i % 2]},
                value,
                {e: (value or 0.5) * e / epochs for e in range(1, epochs + 1)},
                metrics={XSS: [(1, 0.5), (2, 0.25)]},
                started=T0 + timedelta(seconds=10 * i),
                completed=T0 + timedelta(seconds=10 * i + 25),
                node=XSS if i % 3 else "host",
                overhead={"propose_s": 1.0, "train_s": float(i % 4)},
                values=[value, float(i)] if value is not None else None,
                error=XSS if state == "FAIL" else None,
            )
        )
    return StudyRecord(name, direction, "acc", None, trials, **study)


def strings(value: Any) -> Iterator[str]:
    """Every string in a figure's JSON-able dict."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from strings(v)
    elif isinstance(value, np.ndarray) and value.dtype == object:
        yield from strings(value.tolist())


def encoded(fig: go.Figure) -> dict[str, Any]:
    """The figure as Dash sends it, parsed back."""
    return json.loads(to_json_plotly(fig.to_plotly_json()))


# ---------------------------------------------------------------- learning curves


def test_curves_sampled_past_the_limit_keep_the_best_and_say_so():
    record = made(300)
    info = get_curves_info(record, limit=50, n_best=10)
    done = sorted(
        (t for t in record.trials if t.state == "COMPLETE"), key=lambda t: (-t.value, t.number)
    )
    shown = {c.number for c in info.curves}
    assert len(info.curves) == 50 and info.n_trials == 300 and info.sampled
    assert {t.number for t in done[:10]} <= shown and info.n_best == 10
    assert info.best_number == done[0].number
    assert [c.number for c in info.curves] == sorted(shown)  # by number, as unsampled
    assert {c.state for c in info.curves} >= {"COMPLETE", "PRUNED", "FAIL"}  # a sample of all


def test_curves_sample_is_deterministic_and_seeded():
    record = made(300)
    first = [c.number for c in get_curves_info(record, limit=40, n_best=5).curves]
    assert first == [c.number for c in get_curves_info(record, limit=40, n_best=5).curves]
    other = [c.number for c in get_curves_info(record, limit=40, n_best=5, seed=1).curves]
    assert other != first


def test_curves_sample_changes_little_as_the_study_grows():
    small = {c.number for c in get_curves_info(made(300), limit=40, n_best=0).curves}
    grown = {c.number for c in get_curves_info(made(310), limit=40, n_best=0).curves}
    assert len(small & grown) >= 30  # a trial's key is its number's: new ones displace few


def test_curves_below_the_limit_or_without_one_are_all_drawn():
    record = made(60)
    assert not get_curves_info(record, limit=60).sampled
    info = get_curves_info(record, limit=None)
    assert len(info.curves) == info.n_trials == 60 and info.n_best == 0


@pytest.mark.parametrize(("limit", "n_best"), [(0, 5), (10, -1)])
def test_curves_bad_limit_raises(limit, n_best):
    with pytest.raises(ValueError, match="limit"):
        get_curves_info(made(5), limit=limit, n_best=n_best)


def test_curves_minimize_keeps_the_lowest():
    record = made(300, direction="minimize")
    info = get_curves_info(record, limit=20, n_best=5)
    lowest = sorted((t.value, t.number) for t in record.trials if t.state == "COMPLETE")[:5]
    assert {n for _, n in lowest} <= {c.number for c in info.curves}
    assert info.best_number == lowest[0][1]


def test_plot_curves_subtitle_says_what_is_shown():
    fig = plot_learning_curves(made(2500))
    subtitle = fig.layout.title.subtitle.text
    assert "showing 2,000 of 2,500 trials: the best 200 and a sample" in subtitle
    assert fig.data[-1].name.startswith("best (trial ")


def test_merged_curves_hover_is_a_template_over_trial_numbers():
    fig = plot_learning_curves(made(300), metric=XSS)
    complete = next(t for t in fig.data if t.name == "complete")
    assert complete.text is None and complete.customdata.dtype == np.int32
    assert "<b>Trial %{customdata}</b> · complete" in complete.hovertemplate
    assert f"{html.escape(XSS)}: %{{y:.6~g}}" in complete.hovertemplate
    gaps = np.isnan(complete.y)
    assert gaps.sum() == len(set(complete.customdata.tolist()))  # one gap per trial


# ------------------------------------------------------------------------ timeline


def test_timeline_merged_past_the_limit(monkeypatch):
    monkeypatch.setattr(timeline, "BARS_DRAWN", 20)
    monkeypatch.setattr(timeline, "TIME_BINS", 10)
    record = made(100)
    fig = timeline.plot_timeline(record, now=T0)
    assert "100 trials merged per state into 10 time bins" in fig.layout.title.subtitle.text
    counted = {t.name: t.customdata[::3, 0].sum() for t in fig.data}
    assert counted == {"complete (60)": 60, "pruned (20)": 20, "fail (20)": 20}
    assert all("trial(s)</b> started here" in t.hovertemplate for t in fig.data)
    lanes = len(fig.layout.yaxis.tickvals)
    assert max(len(t.x) for t in fig.data) <= 3 * 10 * lanes < 3 * 60  # 3 points a segment


def test_timeline_below_the_limit_draws_a_bar_per_trial():
    fig = timeline.plot_timeline(made(30), now=T0)
    assert "merged" not in fig.layout.title.subtitle.text
    assert sum(len(t.x) for t in fig.data) == 3 * 30
    assert fig.data[0].x.dtype == np.float64  # ms of the wall time, for the date axis
    assert fig.data[0].x[0] == (T0 - datetime(1970, 1, 1)).total_seconds() * 1000


# ------------------------------------------------------------------ Pareto, overhead


def test_pareto_large_groups_hover_by_template(monkeypatch):
    monkeypatch.setattr(pareto, "HOVER_TEXT_MAX", 10)
    record = made(60, objectives=[XSS, "params"], directions=["maximize", "minimize"])
    fig = pareto.plot_pareto(record)
    dominated = next(t for t in fig.data if t.name.startswith("dominated"))
    assert dominated.text is None and dominated.customdata.dtype == object
    assert f"{html.escape(XSS)}: %{{x:.6~g}}" in dominated.hovertemplate
    front = next(t for t in fig.data if t.name.startswith("Pareto front"))
    assert len(front.customdata) <= 10 and "act: " in front.text[0]  # small: params too


def test_overhead_grouped_past_the_limit(monkeypatch):
    monkeypatch.setattr(overhead, "BARS_SHOWN", 4)
    fig = overhead.plot_overhead(made(10))
    assert "each bar the mean of 3 consecutive trials" in fig.layout.title.subtitle.text
    train = next(t for t in fig.data if t.name.startswith("train"))
    assert list(train.y) == ["#0-#2", "#3-#5", "#6-#8", "#9-#9"]
    assert list(train.x) == [1.0, 4 / 3, 5 / 3, 1.0]  # means of i % 4
    assert train.customdata[0].tolist() == [0, 2, 3, 2.0]  # first, last, count, mean total


# ------------------------------------------------------------------ all of them


FIGURES = [
    plot_learning_curves,
    plot_parallel_coordinates,
    lambda r: timeline.plot_timeline(r, now=T0),
    overhead.plot_overhead,
    pareto.plot_pareto,
    plot_history,
]
NAMES = ["curves", "parallel", "timeline", "overhead", "pareto", "history"]


@pytest.mark.parametrize("n", [30, 300])
@pytest.mark.parametrize("plot", FIGURES, ids=NAMES)
def test_user_strings_are_escaped_in_every_figure(plot, n, monkeypatch):
    monkeypatch.setattr(timeline, "BARS_DRAWN", 100)
    monkeypatch.setattr(overhead, "BARS_SHOWN", 100)
    monkeypatch.setattr(pareto, "HOVER_TEXT_MAX", 100)
    record = made(n, XSS, objectives=["acc", XSS], directions=["maximize", "minimize"])
    fig = plot(record)
    assert fig.data
    raw = [s for s in strings(fig.to_plotly_json()) if "<img" in s]
    ticks = [XSS] if plot is plot_parallel_coordinates else []  # plotly draws these as text
    assert raw == ticks
    assert html.escape(XSS) in fig.layout.title.subtitle.text


@pytest.mark.parametrize("plot", FIGURES, ids=NAMES)
def test_point_data_is_sent_as_typed_arrays(plot, monkeypatch):
    monkeypatch.setattr(timeline, "BARS_DRAWN", 100)
    monkeypatch.setattr(overhead, "BARS_SHOWN", 100)
    record = made(300, objectives=["acc", "params"], directions=["maximize", "minimize"])
    data = encoded(plot(record))["data"]
    big = next(t for t in data if t.get("name") in (None, "complete") or "(" in t["name"])
    arrays = big["dimensions"][0]["values"] if "dimensions" in big else big["x"]
    assert set(arrays) == {"dtype", "bdata"}


def test_array_helpers():
    assert float_array([1, None]).dtype == np.float64 and np.isnan(float_array([None])[0])
    assert compact_array([0.0, 3.0]).dtype == np.int16
    assert compact_array([0.0, 1e6]).dtype == np.float32  # past int16
    assert compact_array([0.5, np.nan]).dtype == np.float32


def test_pareto_trial_numbers_are_sent_as_a_plain_list():
    """dcc.Graph's clickData reads ``customdata`` from the figure as sent, undecoded: a
    typed array there would make a click on a point open no trial."""
    record = made(30, objectives=["acc", "params"], directions=["maximize", "minimize"])
    for trace in encoded(pareto.plot_pareto(record))["data"]:
        if "customdata" in trace:
            assert isinstance(trace["customdata"], list)
            assert all(isinstance(n, int) for n in trace["customdata"])
