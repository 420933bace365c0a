"""Tests of the figure data functions and renderers (no browser, no database)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest

from dashboard import (
    get_curves_info,
    get_history_info,
    get_parallel_info,
    plot_history,
    plot_learning_curves,
    plot_parallel_coordinates,
)
from dashboard.figures import MISSING_LABEL, format_value
from studies.records import StudyRecord, TrialRecord

NAN, INF = float("nan"), float("inf")
PLOTS = [plot_history, plot_parallel_coordinates, plot_learning_curves]


def trial(number: int, state: str = "COMPLETE", value: float | None = None, **kw: Any):
    kw.setdefault("params", {"x": number})
    return TrialRecord(number=number, state=state, value=value, **kw)


def study(trials: list[TrialRecord], direction: str = "maximize") -> StudyRecord:
    return StudyRecord("s", direction, "val_acc", None, trials)


@pytest.fixture
def mixed() -> StudyRecord:
    """A maximize study with every state, NaN and inf, given out of order."""
    trials = [
        trial(8, value=0.9, intermediate={1: 0.6, 2: 0.8, 3: 0.9}),
        trial(0, value=0.5, intermediate={1: 0.3, 2: 0.4, 3: 0.5}),
        trial(1, "PRUNED", intermediate={1: 0.2, 2: 0.25}),
        trial(2, value=0.7, intermediate={1: 0.4, 2: 0.6, 3: 0.7}),
        trial(3, "FAIL", intermediate={1: 0.1}, error="boom"),
        trial(4, value=0.6, intermediate={1: 0.5, 2: 0.55, 3: 0.6}),
        trial(5, "RUNNING", intermediate={1: 0.45}),
        trial(6, value=NAN, intermediate={1: NAN, 2: 0.3, 3: INF}),
        trial(7, value=INF),
    ]
    return study(trials)


def by_name(fig: go.Figure, name: str):
    (trace,) = [t for t in fig.data if t.name == name]
    return trace


def test_invalid_direction_raises():
    with pytest.raises(ValueError, match="maximize"):
        get_history_info(study([trial(0, value=1.0)], direction="max"))


# ----------------------------------------------------------- nothing to plot at all


@pytest.mark.parametrize(
    "trials",
    [
        [],
        [trial(0, "FAIL", error="oom"), trial(1, "FAIL")],
        [trial(0, value=NAN), trial(1, value=-INF)],
    ],
    ids=["empty", "only-failed", "only-non-finite"],
)
@pytest.mark.parametrize("plot", PLOTS)
def test_nothing_to_plot_gives_explanatory_figure(plot, trials):
    fig = plot(study(trials))
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == 0
    assert any("No " in a.text for a in fig.layout.annotations)


# ---------------------------------------------------------- parallel coordinates


def axis(info, label):
    (found,) = [a for a in info.axes if a.label == label]
    return found


def test_parallel_keeps_complete_finite_trials_objective_last(mixed):
    info = get_parallel_info(mixed)
    assert info.numbers == [0, 2, 4, 8]
    assert info.n_skipped == 2
    assert info.axes[-1].label == "val_acc"
    assert info.axes[-1].values == [0.5, 0.7, 0.6, 0.9]


def test_parallel_categorical_encoding():
    params = [
        {"opt": "sgd", "bn": True, "act": None, "k": 10},
        {"opt": "adam", "bn": False, "act": "relu", "k": "auto"},
        {"opt": "sgd", "bn": True, "act": "gelu", "k": 2},
    ]
    info = get_parallel_info(study([trial(i, value=i, params=p) for i, p in enumerate(params)]))
    opt, bn, act, k = (axis(info, n) for n in ("opt", "bn", "act", "k"))
    assert opt.kind == "categorical" and opt.ticktext == ["adam", "sgd"]
    assert opt.values == [1.0, 0.0, 1.0] and opt.tickvals == [0.0, 1.0]
    assert bn.kind == "categorical" and bn.ticktext == ["False", "True"]
    assert bn.values == [1.0, 0.0, 1.0]
    assert act.ticktext == ["None", "gelu", "relu"] and act.values == [0.0, 2.0, 1.0]
    assert k.ticktext == ["2", "10", "auto"] and k.values == [1.0, 2.0, 0.0]  # numbers first


def test_parallel_log_axis_over_more_than_two_decades():
    lrs = [1e-4, 3e-3, 5e-2]
    info = get_parallel_info(
        study([trial(i, value=i, params={"lr": v}) for i, v in enumerate(lrs)])
    )
    lr = axis(info, "lr")
    assert lr.kind == "log"
    assert lr.values == pytest.approx([math.log10(v) for v in lrs])
    assert lr.tickvals == [-4.0, -3.0, -2.0, -1.0]
    assert lr.ticktext == ["1e-4", "0.001", "0.01", "0.1"]
    assert lr.range == (-4.0, -1.0)


@pytest.mark.parametrize("values", [[0.01, 0.5], [-1e-4, 1e-1], [0.0, 10.0]])
def test_parallel_linear_axis_when_not_log_scale(values):
    trials = [trial(i, value=i, params={"lr": v}) for i, v in enumerate(values)]
    lr = axis(get_parallel_info(study(trials)), "lr")
    assert lr.kind == "linear" and lr.values == values and lr.tickvals is None


def test_parallel_missing_params_get_their_own_tick():
    trials = [
        trial(0, value=0.1, params={"depth": 2, "act": "relu"}),
        trial(1, value=0.2, params={"depth": 8, "width": 64}),
        trial(2, value=0.3, params={"depth": 4, "width": 128, "act": "gelu"}),
    ]
    info = get_parallel_info(study(trials))
    assert [a.label for a in info.axes] == ["act", "depth", "width", "val_acc"]
    width = axis(info, "width")
    assert width.ticktext == [MISSING_LABEL, "64", "128"]
    assert width.values[0] == width.tickvals[0] == width.range[0] < 64
    assert width.values[1:] == [64.0, 128.0]
    act = axis(info, "act")
    assert act.ticktext == ["gelu", "relu", MISSING_LABEL] and act.values == [1.0, 2.0, 0.0]


def test_parallel_non_finite_param_values_become_categories():
    trials = [trial(0, value=1.0, params={"p": NAN}), trial(1, value=2.0, params={"p": 1.5})]
    p = axis(get_parallel_info(study(trials)), "p")
    assert p.kind == "categorical" and p.ticktext == ["1.5", "nan"]


def test_plot_parallel_coordinates_dimensions_and_colour():
    trials = [
        trial(0, value=0.3, params={"opt": "<script>", "lr": 1e-4}),
        trial(1, value=0.1, params={"opt": "sgd", "lr": 1e-1}),
    ]
    fig = plot_parallel_coordinates(study(trials, direction="minimize"))
    (pc,) = fig.data
    assert [d.label for d in pc.dimensions] == ["lr", "opt", "val_acc"]
    assert pc.dimensions[1].ticktext == ("<script>", "sgd")  # plotly draws ticks as plain text
    assert list(pc.dimensions[0].ticktext) == ["1e-4", "0.001", "0.01", "0.1"]
    assert list(pc.line.color) == [0.3, 0.1] and pc.line.reversescale is True


# ---------------------------------------------------------------- learning curves


def test_curves_objective(mixed):
    info = get_curves_info(mixed)
    curves = {c.number: c for c in info.curves}
    assert set(curves) == {0, 1, 2, 3, 4, 5, 6, 8}  # 7 never reported
    assert curves[1].state == "PRUNED" and len(curves[1].epochs) < len(curves[0].epochs)
    assert curves[3].state == "FAIL" and curves[3].epochs == [1]
    assert curves[6].epochs == [2] and curves[6].values == [0.3]  # NaN and inf left out
    assert info.n_skipped == 2
    assert info.metric == "val_acc" and info.best_number == 8


def test_curves_other_metric():
    metrics = {"val_loss": [(2, 0.9), (1, 1.2), (2, 0.8), (3, NAN)], "lr": [(1, 0.1)]}
    t = trial(0, value=0.5, intermediate={1: 0.4}, metrics=metrics)
    info = get_curves_info(study([t, trial(1, value=0.6)]), metric="val_loss")
    (curve,) = info.curves
    assert curve.epochs == [1, 2] and curve.values == [1.2, 0.8]  # sorted; a re-report wins
    assert info.metric == "val_loss" and info.available == ["lr", "val_loss"]


def test_plot_curves_unknown_metric_lists_available(mixed):
    mixed.trials[0].metrics["val_loss"] = [(1, 1.0)]
    fig = plot_learning_curves(mixed, metric="train_acc")
    assert len(fig.data) == 0
    assert "val_loss" in fig.layout.annotations[0].text


def test_plot_curves_styles(mixed):
    fig = plot_learning_curves(mixed)
    traces = {t.text[0].split("</b>")[0]: t for t in fig.data}
    pruned = traces["<b>Trial 1"]
    assert pruned.line.dash == "dash" and list(pruned.marker.size) == [0, 9]
    assert traces["<b>Trial 0"].line.dash == "solid"
    assert fig.data[-1].name == "best (trial 8)"  # drawn on top
    legend = [t.name for t in fig.data if t.showlegend]
    assert sorted(legend) == ["best (trial 8)", "complete", "fail", "pruned", "running"]
    assert fig.layout.xaxis.title.text == "Epoch" and fig.layout.yaxis.title.text == "val_acc"
    assert all(math.isfinite(y) for t in fig.data for y in t.y)


def test_format_value():
    assert format_value(None) == "—"
    assert format_value(True) == "True"
    assert format_value(3) == "3"
    assert format_value(0.1 + 0.2) == "0.3"
    assert format_value(NAN) == "nan"


def test_numeric_choices_declared_categorical_by_the_space_get_a_category_axis():
    space = {
        "type": "space",
        "kind": "space",
        "entries": {
            "train": {
                "type": "space",
                "kind": "training",
                "entries": {"batch_size": {"type": "categorical", "choices": [32, 64, 128]}},
            },
            "x": {"type": "float", "low": 0.0, "high": 9.0, "log": False, "step": None},
        },
    }
    trials = [
        trial(0, value=0.5, params={"train/batch_size": 128, "x": 1.0}),
        trial(1, value=0.6, params={"train/batch_size": 32, "x": 2.0}),
    ]
    info = get_parallel_info(StudyRecord("s", "maximize", "val_acc", space, trials))
    axes = {a.label: a for a in info.axes}
    assert axes["train/batch_size"].kind == "categorical"
    assert list(axes["train/batch_size"].ticktext) == ["32", "128"]
    assert axes["x"].kind == "linear"


def test_many_learning_curves_share_a_trace_per_state() -> None:
    trials = [
        TrialRecord(
            i,
            "PRUNED" if i % 3 == 0 else "COMPLETE",
            {"x": i},
            0.5 + i / 1000,
            {1: 0.1, 2: 0.3 + i / 1000} if i % 3 else {1: 0.2},
        )
        for i in range(300)
    ]
    record = StudyRecord("many", "maximize", "acc", None, trials)
    fig = plot_learning_curves(record)
    lines = {t.name: t for t in fig.data if t.mode == "lines"}
    assert len(fig.data) <= 5 and set(lines) >= {"complete", "pruned"}
    complete = lines["complete"]
    drawn = [y for y in complete.y if not math.isnan(y)]
    assert len(drawn) == 2 * (200 - 1)  # every complete trial but the best, two epochs
    assert int(np.isnan(complete.y).sum()) == 199  # one gap after each trial
    assert fig.data[-1].name == "best (trial 299)"
    stops = [t for t in fig.data if t.mode == "markers"]
    assert len(stops) == 1 and len(stops[0].x) == 100


def test_parallel_coordinates_past_the_limit_draw_the_best_and_a_seeded_sample():
    trials = [trial(i, value=float(i)) for i in range(60)]  # maximize: 59 is the best
    info = get_parallel_info(study(trials), limit=20, n_best=5)
    assert len(info.numbers) == 20 and info.n_trials == 60 and info.n_best == 5
    assert {55, 56, 57, 58, 59} <= set(info.numbers)
    assert info.numbers == get_parallel_info(study(trials), limit=20, n_best=5).numbers
    assert len(info.axes[-1].values) == 20  # every axis holds the sampled trials only
    everything = get_parallel_info(study(trials), limit=None)
    assert everything.numbers == list(range(60)) and everything.n_best == 0


def test_sampled_parallel_coordinates_say_so(monkeypatch):
    from dashboard import figures

    monkeypatch.setattr(figures, "LINES_SHOWN", 10)
    monkeypatch.setattr(figures, "LINES_BEST", 3)
    fig = plot_parallel_coordinates(study([trial(i, value=float(i)) for i in range(30)]))
    assert "showing 10 of 30 trials: the best 3 and a sample" in fig.layout.title.subtitle.text
