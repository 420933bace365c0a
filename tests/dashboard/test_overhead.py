"""The overhead figure's data step and renderer (no browser, no database)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import pytest

from dashboard.overhead import PHASE_LABELS, get_overhead_info, plot_overhead
from studies.overhead import PHASES
from studies.records import StudyRecord, TrialRecord


def _o(propose: float, queue: float, startup: float, train: float, record: float) -> dict:
    return dict(zip(PHASES, (propose, queue, startup, train, record), strict=True))


def trial(number: int, overhead: Any = None, state: str = "COMPLETE") -> TrialRecord:
    return TrialRecord(number=number, state=state, params={"x": number}, overhead=overhead)


@pytest.fixture
def record() -> StudyRecord:
    """Trials out of order: trained ones, a repeat, a plain Optuna trial, a bad record."""
    trials = [
        trial(3, _o(0.5, 2.0, 1.0, 6.0, 0.5), "PRUNED"),
        trial(0, _o(0.5, 1.0, 2.0, 6.0, 0.5)),
        trial(1, {"propose_s": 1.0}),  # a repeat: its proposal only
        trial(2),  # no overhead recorded (an older study)
        trial(4, {"train_s": -3.0}),  # not readable: skipped, not plotted
        trial(5, state="RUNNING"),
    ]
    return StudyRecord("s", "maximize", "val_acc", None, trials)


def test_bars_are_in_trial_order_and_trials_without_overhead_are_counted(record) -> None:
    info = get_overhead_info(record)
    assert [b.number for b in info.bars] == [0, 1, 3]
    assert info.n_skipped == 3
    assert info.bars[1].seconds == {**dict.fromkeys(PHASES, 0.0), "propose_s": 1.0}
    assert info.bars[2].state == "PRUNED" and info.bars[2].total_s == 10.0


def test_totals_and_shares(record) -> None:
    info = get_overhead_info(record)
    assert info.totals == _o(2.0, 3.0, 3.0, 12.0, 1.0)
    assert info.total_s == 21.0
    assert info.shares["train_s"] == pytest.approx(12 / 21)
    assert sum(info.shares.values()) == pytest.approx(1.0)


def test_the_figure_stacks_one_bar_per_trial_and_says_the_shares(record) -> None:
    fig = plot_overhead(record)
    assert isinstance(fig, go.Figure) and fig.layout.barmode == "stack"
    assert [t.name.split(" (")[0] for t in fig.data] == [PHASE_LABELS[p] for p in PHASES]
    train = fig.data[PHASES.index("train_s")]
    assert train.orientation == "h" and list(train.y) == ["#0", "#1", "#3"]
    assert list(train.x) == [6.0, 0.0, 6.0] and train.name == "train (57% of all)"
    subtitle = fig.layout.title.subtitle.text
    assert "train 57%" in subtitle and "21.0 s" in subtitle
    assert "3 trials without overhead" in subtitle
    assert "Trial 3" in train.text[2]  # hover names the trial


@pytest.mark.parametrize(
    "trials", [[], [trial(0), trial(1, state="FAIL")]], ids=["empty", "plain optuna"]
)
def test_nothing_to_show_is_a_message_not_an_error(trials) -> None:
    record = StudyRecord("s", "minimize", "loss", None, trials)
    info = get_overhead_info(record)
    assert info.bars == [] and info.total_s == 0.0 and info.n_skipped == len(trials)
    assert set(info.shares.values()) == {0.0}
    fig = plot_overhead(record)
    assert not fig.data
    assert "No trial recorded" in fig.layout.annotations[0].text
