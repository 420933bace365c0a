"""Tests of the optimization history (dashboard/history.py): info, figure, outline."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import plotly.io.json
import pytest

from dashboard.history import PARAMS_HOVER_MAX, best_steps, get_history_info, plot_history
from studies.reads_outline import StudyOutline
from studies.records import TrialRecord
from tests.dashboard.test_figures import NAN, by_name, mixed, study, trial

__all__ = ["mixed"]  # a fixture, used by name


def test_history_maximize(mixed):
    info = get_history_info(mixed)
    assert [p.number for p in info.complete] == [0, 2, 4, 8]
    assert info.best_so_far == [(0, 0.5), (2, 0.7), (4, 0.7), (8, 0.9)]
    assert [(p.number, p.value) for p in info.pruned] == [(1, 0.25)]
    assert info.best is not None and info.best.number == 8
    assert info.counts == {"COMPLETE": 6, "PRUNED": 1, "FAIL": 1, "RUNNING": 1}
    assert info.n_skipped == 2  # trials 6 (NaN) and 7 (inf)


@pytest.mark.parametrize(
    ("direction", "expected", "best"),
    [("minimize", [3.0, 1.0, 1.0, 0.5, 0.5], 3), ("maximize", [3.0, 3.0, 3.0, 3.0, 4.0], 4)],
)
def test_history_best_so_far_honours_direction(direction, expected, best):
    values = [3.0, 1.0, 2.0, 0.5, 4.0]
    info = get_history_info(study([trial(i, value=v) for i, v in enumerate(values)], direction))
    assert [v for _, v in info.best_so_far] == expected
    assert info.best is not None and info.best.number == best


def test_history_ties_keep_first_best():
    info = get_history_info(study([trial(0, value=1.0), trial(1, value=1.0)]))
    assert info.best is not None and info.best.number == 0


def test_history_pruned_without_finite_last_value_is_skipped():
    trials = [trial(0, "PRUNED"), trial(1, "PRUNED", intermediate={1: 0.5, 2: NAN})]
    info = get_history_info(study(trials))
    assert info.pruned == [] and info.n_skipped == 2


def test_plot_history_places_trials(mixed):
    fig = plot_history(mixed)
    complete, pruned, best = (
        by_name(fig, "complete"),
        by_name(fig, "pruned"),
        by_name(fig, "best so far"),
    )
    assert list(complete.x) == [0, 2, 4, 8] and list(complete.y) == [0.5, 0.7, 0.6, 0.9]
    assert list(pruned.x) == [1] and list(pruned.y) == [0.25]
    assert best.line.shape == "hv"  # the step line is at the best so far at every trial
    assert [_step_at(best, x) for x in (0, 2, 4, 8)] == [0.5, 0.7, 0.7, 0.9]
    plotted = {x for t in fig.data for x in t.x}
    assert plotted.isdisjoint({3, 5, 6, 7})  # failed, running, NaN, inf
    assert fig.layout.yaxis.title.text == "val_acc"
    assert "not shown: 1 failed, 2 without a finite value" in fig.layout.title.subtitle.text


def _step_at(line: Any, x: float) -> float:
    """The value an ``hv`` step line shows at ``x``."""
    return [y for lx, y in zip(line.x, line.y, strict=True) if lx <= x][-1]


def test_plot_history_hover_names_trial_and_escapes_params():
    fig = plot_history(study([trial(3, value=0.5, params={"act": "<b>relu</b>", "lr": 0.01})]))
    points = by_name(fig, "complete")
    (text,) = points.text
    assert "<b>Trial %{x}</b>" in points.hovertemplate and "%{text}" in points.hovertemplate
    assert "lr: 0.01" in text
    assert "&lt;b&gt;relu&lt;/b&gt;" in text and "<b>relu" not in text


def test_plot_history_of_a_large_study_sends_typed_arrays_and_no_per_point_text():
    trials = [trial(i, value=float(i % 7)) for i in range(PARAMS_HOVER_MAX + 1)]
    fig = plot_history(study(trials))
    points = by_name(fig, "complete")
    assert points.text is None and "Trial %{x}" in points.hovertemplate
    sent = fig.to_plotly_json()["data"]
    (complete,) = [t for t in sent if t["name"] == "complete"]
    assert set(complete["y"]) == {"dtype", "bdata"}  # sent as a base64 typed array
    best = by_name(fig, "best so far")  # the corners of the step line only
    assert list(best.x) == [0, 1, 2, 3, 4, 5, 6, PARAMS_HOVER_MAX]
    assert list(best.y) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 6.0]


def test_plot_history_by_time_names_the_trial_from_customdata():
    t0 = datetime(2026, 1, 1)
    trials = [
        trial(i, value=v, completed=t0 + timedelta(minutes=m))
        for i, (v, m) in enumerate([(0.5, 3), (0.9, 1), (0.7, 2)])
    ]
    fig = plot_history(study(trials), by="time")
    points = by_name(fig, "complete")
    assert fig.layout.xaxis.type == "date" and "Trial %{customdata}" in points.hovertemplate
    assert list(points.customdata) == [0, 1, 2]
    sent = plotly.io.json.to_json_plotly(fig)  # what Dash sends: its clickData reads
    assert '"customdata":[0,1,2]' in sent  # customdata as sent, so a list, not base64
    best = by_name(fig, "best so far")  # by time: trial 1 ended first, and is the best
    assert list(best.y) == [0.9, 0.9]


def test_plot_history_of_an_outline_matches_the_whole_study(mixed):
    trials = sorted(mixed.trials, key=_num)
    nat = np.full(len(trials), np.datetime64("NaT"), dtype="datetime64[us]")
    outline = StudyOutline(
        mixed,
        number=np.array([t.number for t in trials]),
        state=np.array([t.state for t in trials]),
        values=np.array([[_kept(t)] for t in trials]),
        started=nat,
        completed=nat,
    )
    whole, first = plot_history(mixed), plot_history(outline)
    for name in ("complete", "best so far"):
        assert list(by_name(first, name).x) == list(by_name(whole, name).x)
        assert list(by_name(first, name).y) == list(by_name(whole, name).y)
    assert first.layout.title.subtitle.text == whole.layout.title.subtitle.text


def _num(t: TrialRecord) -> int:
    return t.number


def _kept(t: TrialRecord) -> float:
    """The value Optuna keeps: a pruned trial's is its last report."""
    if t.state == "PRUNED" and t.intermediate:
        return t.intermediate[max(t.intermediate)]
    return NAN if t.value is None else t.value


def test_best_steps_keeps_the_corners_of_the_step_line():
    x, y = best_steps(np.array([0, 1, 2, 3]), np.array([3.0, 4.0, 2.0, 2.0]), maximize=False)
    assert x.tolist() == [0, 2, 3] and y.tolist() == [3.0, 2.0, 2.0]
    x, y = best_steps(np.array([], dtype=int), np.array([]), maximize=True)
    assert len(x) == len(y) == 0


def test_a_percent_placeholder_in_an_objectives_name_stays_text():
    record = study([trial(0, value=0.5)])
    record = type(record)("s", "maximize", "loss %{x}", None, record.trials)
    template = by_name(plot_history(record), "complete").hovertemplate
    assert "loss &#37;{x}" in template and "loss %{x}" not in template
