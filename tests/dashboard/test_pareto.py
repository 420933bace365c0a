"""Tests of the Pareto-front figure and of reports of studies with several objectives."""

from __future__ import annotations

import re
from typing import Any

import plotly.graph_objects as go
import pytest
from plotly.offline import get_plotlyjs

from dashboard import (
    get_curves_info,
    get_history_info,
    get_pareto_info,
    plot_history,
    plot_learning_curves,
    plot_parallel_coordinates,
    plot_pareto,
    render_report,
)
from dashboard.pareto import GROUPS, last_reported
from studies.records import StudyRecord, TrialRecord

NAN = float("nan")
OBJECTIVES = ["val_acc", "params"]
DIRECTIONS = ["maximize", "minimize"]


def done(number: int, *values: float, **kw: Any) -> TrialRecord:
    kw.setdefault("params", {"model/width": number})
    first = values[0] if values else None
    return TrialRecord(number, "COMPLETE", value=first, values=list(values), **kw)


def pruned(number: int, **kw: Any) -> TrialRecord:
    kw.setdefault("params", {"model/width": number})
    return TrialRecord(number, "PRUNED", **kw)


def multi(
    trials: list[TrialRecord],
    objectives: list[str] = OBJECTIVES,
    directions: list[str] = DIRECTIONS,
    name: str = "mo",
) -> StudyRecord:
    return StudyRecord(
        name,
        directions[0],
        objectives[0],
        None,
        trials,
        objectives=objectives,
        directions=directions,
    )


@pytest.fixture
def record() -> StudyRecord:
    """val_acc (maximize) vs params (minimize), every group, given out of order."""
    return multi(
        [
            done(2, 0.7, 90.0),  # dominated by 1
            done(0, 0.9, 200.0),
            done(1, 0.8, 50.0),
            done(10, 0.8, 50.0),  # a tie with 1: both on the front
            done(3, 0.95, 40.0, constraints=[5.0]),  # best in both, but infeasible
            pruned(4, metrics={"val_acc": [(1, 0.3), (2, 0.5)]}, stats={"params": 120.0}),
            pruned(
                5, metrics={"val_acc": [(1, 0.4)], "params": [(1, 60.0)]}, stats={"params": 9.0}
            ),
            pruned(6, metrics={"val_acc": [(1, 0.2)]}),  # no cost: not placed
            pruned(11, metrics={"val_acc": [(1, 0.6), (2, NAN)]}, stats={"params": 70.0}),
            done(7, NAN, 10.0),
            TrialRecord(8, "FAIL", {"model/width": 8}, error="oom"),
            TrialRecord(9, "RUNNING", {"model/width": 9}, metrics={"val_acc": [(1, 0.1)]}),
        ]
    )


def numbers(points) -> list[int]:
    return [p.number for p in points]


def by_name(fig: go.Figure, prefix: str):
    (trace,) = [t for t in fig.data if t.name.startswith(prefix)]
    return trace


# ---------------------------------------------------------------------- info


def test_groups(record):
    info = get_pareto_info(record)
    assert numbers(info.front) == [1, 10, 0]  # by val_acc
    assert numbers(info.dominated) == [2]
    assert numbers(info.infeasible) == [3]
    assert numbers(info.pruned) == [4, 5]
    assert {p.group for g in GROUPS for p in info.group(g)} == set(GROUPS)
    assert numbers(info.front) == [t.number for t in sorted(record.front, key=lambda t: t.value)]
    assert info.counts == {"COMPLETE": 6, "PRUNED": 4, "FAIL": 1, "RUNNING": 1}
    assert info.n_not_finite == 1  # trial 7
    assert info.n_unplaced == 2  # 6 has no cost; 11's last val_acc is NaN


def test_pruned_placed_at_last_reported_values(record):
    info = get_pareto_info(record)
    placed = {p.number: (p.x, p.y, p.epoch) for p in info.pruned}
    assert placed[4] == (0.5, 120.0, 2)  # cost computed before training
    assert placed[5] == (0.4, 60.0, 1)  # a reported cost wins over the statistics


def test_last_reported():
    t = pruned(0, metrics={"acc": [(2, 0.6), (1, 0.5), (2, 0.7)]}, stats={"params": 3})
    assert last_reported(t, "acc") == (2, 0.7)  # the last epoch; a later report of it wins
    assert last_reported(t, "params") == (None, 3.0)
    assert last_reported(t, "flops") is None


@pytest.mark.parametrize(
    ("directions", "front", "dominated", "shape"),
    [
        (["minimize", "minimize"], [0, 1], [2, 3], "hv"),
        (["maximize", "maximize"], [3], [0, 1, 2], "vh"),
        (["maximize", "minimize"], [1, 3], [0, 2], "vh"),
        (["minimize", "maximize"], [0, 3], [1, 2], "hv"),
    ],
)
def test_directions(directions, front, dominated, shape):
    points = [(1.0, 2.0), (2.0, 1.0), (2.0, 2.0), (3.0, 3.0)]
    trials = [done(i, x, y) for i, (x, y) in enumerate(points)]
    info = get_pareto_info(multi(trials, ["a", "b"], directions))
    assert sorted(numbers(info.front)) == front
    assert numbers(info.dominated) == dominated
    assert info.line_shape == shape


def test_ties_are_all_on_the_front():
    trials = [done(0, 0.5, 10.0), done(1, 0.5, 10.0), done(2, 0.5, 11.0)]
    info = get_pareto_info(multi(trials))
    assert numbers(info.front) == [0, 1] and numbers(info.dominated) == [2]
    assert info.line == [(0.5, 10.0), (0.5, 10.0)]


def test_nan_and_inf_are_counted_not_drawn():
    trials = [done(0, NAN, 1.0), done(1, 0.5, float("inf")), done(2, 0.5, 1.0), done(3, 0.5)]
    info = get_pareto_info(multi(trials))
    assert numbers(info.points) == [2]
    assert info.n_not_finite == 3


def three() -> StudyRecord:
    trials = [
        done(0, 0.9, 100.0, 9.0),
        done(1, 0.8, 50.0, 1.0),
        done(2, 0.8, 60.0, 0.5),  # on the front by latency only
        done(3, 0.7, 70.0, 3.0),
    ]
    names = ["val_acc", "params", "latency_ms"]
    return multi(trials, names, ["maximize", "minimize", "minimize"])


def test_default_axes_are_the_first_two(record):
    info = get_pareto_info(record)
    assert (info.x.name, info.y.name) == ("val_acc", "params")
    assert info.x.title == "val_acc (higher is better)"
    assert info.y.title == "params (lower is better)"


@pytest.mark.parametrize(
    ("x", "y", "expected"),
    [
        (None, "latency_ms", ("val_acc", "latency_ms")),
        ("latency_ms", None, ("latency_ms", "val_acc")),
        ("params", "latency_ms", ("params", "latency_ms")),
        (None, "val_acc", ("params", "val_acc")),
    ],
)
def test_pick_axes(x, y, expected):
    info = get_pareto_info(three(), x=x, y=y)
    assert (info.x.name, info.y.name) == expected


def test_front_over_all_objectives_line_over_the_plotted_two():
    info = get_pareto_info(three())
    assert sorted(numbers(info.front)) == [0, 1, 2]  # 2 is on the front by latency
    assert numbers(info.dominated) == [3]
    assert info.line == [(0.8, 50.0), (0.9, 100.0)]  # 2 is beaten by 1 in these two


@pytest.mark.parametrize(("x", "y"), [("loss", None), (None, "flops"), ("params", "params")])
def test_bad_axis_names_raise(x, y):
    with pytest.raises(ValueError, match=r"val_acc', 'params', 'latency_ms'"):
        get_pareto_info(three(), x=x, y=y)


def test_single_objective_info_raises():
    with pytest.raises(ValueError, match="one objective"):
        get_pareto_info(StudyRecord("s", "maximize", "acc", None, []))


def test_unknown_direction_raises():
    with pytest.raises(ValueError, match="direction"):
        get_pareto_info(multi([], directions=["maximize", "lower"]))


@pytest.mark.parametrize(
    ("objectives", "ys", "log"),
    [
        (OBJECTIVES, [1e4, 3e4, 3e6], True),  # a cost over more than two decades
        (OBJECTIVES, [1e4, 9e5], False),  # under two decades
        (["val_acc", "loss"], [1e-4, 1e1], False),  # not a cost
        (OBJECTIVES, [0.0, 1e6], False),  # not positive
    ],
)
def test_log_axis_rule(objectives, ys, log):
    trials = [done(i, 0.5 + i / 10, y) for i, y in enumerate(ys)]
    info = get_pareto_info(multi(trials, objectives))
    assert info.y.log is log and info.x.log is False
    assert (info.y.tickvals is not None) is log


def test_log_axis_ticks():
    info = get_pareto_info(multi([done(0, 0.5, 1.5e4), done(1, 0.9, 3e6)]))
    assert info.y.tickvals is not None and info.y.ticktext is not None
    assert info.y.tickvals[:4] == [1e4, 2e4, 5e4, 1e5]
    assert info.y.ticktext[:4] == ["10k", "20k", "50k", "100k"]
    assert "1M" in info.y.ticktext


def test_log_axis_counts_pruned_points():
    trials = [done(0, 0.5, 2e4), done(1, 0.9, 9e4), pruned(2, stats={"params": 5e6})]
    trials[2].metrics["val_acc"] = [(1, 0.3)]
    assert get_pareto_info(multi(trials)).y.log


# ------------------------------------------------------------------ renderer


def test_plot_traces(record):
    fig = plot_pareto(record)
    names = [t.name for t in fig.data if t.showlegend is not False]
    assert names == [
        "dominated (1)",
        "infeasible (constraint violated) (1)",
        "pruned (stopped early) (2)",
        "Pareto front (3)",
    ]
    front = by_name(fig, "Pareto front")
    assert fig.data[-1] is front  # drawn on top
    assert list(front.customdata) == [1, 10, 0]
    assert list(front.x) == [0.8, 0.8, 0.9] and list(front.y) == [50.0, 50.0, 200.0]
    assert front.legendrank < by_name(fig, "dominated").legendrank
    assert list(by_name(fig, "pruned").customdata) == [4, 5]
    assert list(by_name(fig, "infeasible").customdata) == [3]
    line = by_name(fig, "front line")
    assert line.line.shape == "vh" and line.legendgroup == front.legendgroup
    plotted = {n for t in fig.data if t.customdata is not None for n in t.customdata}
    assert plotted == {0, 1, 2, 3, 4, 5, 10}
    symbols = {t.marker.symbol for t in fig.data if t.mode == "markers"}
    assert len(symbols) == 3  # front and dominated dots differ in colour and size
    colours = {t.marker.color for t in fig.data if t.mode == "markers"}
    assert len(colours) == 4


def test_plot_titles_and_subtitle(record):
    fig = plot_pareto(record)
    assert fig.layout.xaxis.title.text == "val_acc (higher is better)"
    assert fig.layout.yaxis.title.text == "params (lower is better)"
    subtitle = fig.layout.title.subtitle.text
    assert "3 trials on the front" in subtitle
    assert (
        "not shown: 1 failed, 1 running, 1 complete without finite values, "
        "2 pruned without values to place" in subtitle
    )


def test_plot_hover(record):
    fig = plot_pareto(record)
    texts = {
        n: t for tr in fig.data if tr.text for n, t in zip(tr.customdata, tr.text, strict=True)
    }
    assert texts[0].startswith("<b>Trial 0</b> · complete")
    assert "val_acc: 0.9" in texts[0] and "params: 200" in texts[0]
    assert "model/width: 0" in texts[0]
    assert "constraints violated: 1 of 1" in texts[3]
    assert "val_acc (last reported): 0.5" in texts[4]
    assert "params (before training): 120" in texts[4]
    assert "stopped after epoch: 2" in texts[4]
    assert "params (last reported): 60" in texts[5]


def test_plot_log_axis_and_three_objectives():
    fig = plot_pareto(multi([done(0, 0.5, 1e4), done(1, 0.9, 3e6)]))
    assert fig.layout.yaxis.type == "log" and fig.layout.xaxis.type != "log"
    assert "1M" in fig.layout.yaxis.ticktext
    fig = plot_pareto(three(), x="params", y="latency_ms")
    assert fig.layout.xaxis.title.text == "params (lower is better)"
    assert "of val_acc, params, latency_ms (showing params and latency_ms)" in (
        fig.layout.title.subtitle.text
    )


def test_plot_escapes_names():
    record = multi([done(0, 0.5, 1.0)], ["<b>acc", "params"], name="<i>s")
    fig = plot_pareto(record)
    assert fig.layout.xaxis.title.text.startswith("&lt;b&gt;acc")
    assert fig.layout.title.subtitle.text.startswith("&lt;i&gt;s")


def test_single_objective_gives_a_message():
    record = StudyRecord("s", "maximize", "val_acc", None, [done(0, 0.5)])
    fig = plot_pareto(record)
    assert isinstance(fig, go.Figure) and len(fig.data) == 0
    assert "two or more objectives" in fig.layout.annotations[0].text


@pytest.mark.parametrize(
    "trials",
    [[], [TrialRecord(0, "FAIL", {})], [done(0, NAN, 1.0)], [pruned(1)]],
    ids=["empty", "failed", "nan", "pruned-without-values"],
)
def test_nothing_to_plot(trials):
    fig = plot_pareto(multi(trials))
    assert len(fig.data) == 0
    assert fig.layout.annotations[0].text.startswith("No complete or pruned trial")


# ------------------------------------------- the other figures with several objectives


def test_history_parallel_and_curves_use_the_first_objective(record):
    info = get_history_info(record)
    assert [p.number for p in info.pruned] == [4, 5, 6]  # from the metric rows
    assert [p.value for p in info.pruned] == [0.5, 0.4, 0.2]
    for plot in (plot_history, plot_parallel_coordinates):
        subtitle = plot(record).layout.title.subtitle.text
        assert "val_acc (maximize), the first of 2 objectives" in subtitle
    curves = get_curves_info(record)
    assert {c.number for c in curves.curves} == {4, 5, 6, 9, 11}
    record.trials[4].metrics["val_acc"] = [(1, 0.5), (2, 0.95)]  # trial 3, the best val_acc
    fig = plot_learning_curves(record)
    assert fig.data[-1].name == "best val_acc (trial 3)"


# -------------------------------------------------------------------- report


def test_report_of_several_objectives(record):
    page = render_report(record)
    assert page.count(get_plotlyjs()) == 1 and page.count("Plotly.newPlot") == 6
    shown = ("pareto", "history", "parallel", "importance", "curves", "timeline")
    order = [page.index(f'id="figure-{k}"') for k in shown]
    assert order == sorted(order)
    assert "val_acc (maximize) · params (minimize) · 12 trials" in page
    summary = page.split("<h2>Summary</h2>", 1)[1].split("</section>", 1)[0]
    assert "Pareto front" in summary and "3 trials" in summary and "Best value" not in summary


def test_report_front_table(record):
    page = render_report(record)
    section = page.split("<h2 ", 1)[1].split("</section>", 1)[0]
    assert "Pareto front · 3 trials" in section
    assert page.index('id="figure-pareto"') < page.index("Pareto front · 3 trials")
    head = re.findall(r"<th>(.*?)</th>", section)
    assert head == ["#", "val_acc", "params", "Config"]
    rows = re.findall(r"<tr><td class='num'>(\d+)</td>(.*?)</tr>", section)
    assert [n for n, _ in rows] == ["0", "1", "10"]  # best val_acc first
    assert "200" in rows[0][1] and "model/width=0" in rows[0][1]


def test_report_trials_table_of_several_objectives(record):
    page = render_report(record)
    table = page.split("<h2>Trials</h2>", 1)[1]
    head = re.findall(r"<th>(.*?)</th>", table)
    assert head == ["#", "State", "val_acc", "params", "Duration", "Config", "Error"]
    found = re.findall(r"<tr([^>]*)><td class='num'>(\d+)</td>", table)
    assert [n for _, n in found] == [str(n) for n in range(12)]
    assert {n for attrs, n in found if attrs} == {"0", "1", "10"}  # the front stands out
    row4 = table.split("<td class='num'>4</td>", 1)[1].split("</tr>", 1)[0]
    assert "0.5 @ epoch 2" in row4 and "120 before training" in row4
    row3 = table.split("<td class='num'>3</td>", 1)[1].split("</tr>", 1)[0]
    assert "infeasible" in row3


def test_report_of_several_objectives_without_a_front():
    page = render_report(multi([TrialRecord(0, "FAIL", {})]))
    assert "No complete, feasible trial with finite values yet." in page
    assert "Pareto front · 0 trials" in page
