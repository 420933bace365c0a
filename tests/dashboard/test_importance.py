"""Tests of the parameter-importance figure (Optuna's evaluators over a study record)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
import plotly.graph_objects as go
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from dashboard import importance as importance_module
from dashboard.importance import (
    EVALUATORS,
    get_importance_info,
    plot_importance,
)
from studies.records import StudyRecord, TrialRecord

OPTUNA_5 = int(optuna.__version__.split(".")[0]) >= 5


def study(trials: list[TrialRecord], direction: str = "minimize", **kw: Any) -> StudyRecord:
    return StudyRecord("imp", direction, "loss", kw.pop("space", None), trials, **kw)


def synthetic(n: int = 40, seed: int = 0, sign: float = 1.0, **kw: Any) -> StudyRecord:
    """``loss = 10 x + 0.01 z`` (plus a little noise): x matters, z hardly."""
    rng = np.random.default_rng(seed)
    trials = []
    for i in range(n):
        x, z = float(rng.uniform()), float(rng.uniform())
        loss = sign * (10 * x + 0.01 * z + 0.001 * float(rng.normal()))
        trials.append(TrialRecord(i, "COMPLETE", {"x": x, "z": z}, loss))
    return study(trials, **kw)


def shares(info) -> list[dict[str, float]]:
    return [o.importances for o in info.objectives]


@pytest.mark.parametrize("evaluator", ["fanova", "ped_anova", "mean_decrease_impurity"])
def test_each_evaluator_finds_the_important_param(evaluator):
    info = get_importance_info(synthetic(), evaluator)
    assert info.evaluator == evaluator and info.reason is None and info.n_trials == 40
    (found,) = shares(info)
    assert info.params[0] == "x" and list(found) == info.params
    assert found["x"] > found["z"]
    assert math.isclose(sum(found.values()), 1.0)


@pytest.mark.parametrize("evaluator", ["fanova", "mean_decrease_impurity", "ped_anova"])
def test_result_is_deterministic(evaluator):
    record = synthetic(30)
    assert get_importance_info(record, evaluator) == get_importance_info(record, evaluator)


def test_ped_anova_honours_direction():
    """PED-ANOVA ranks the top trials: maximising -loss must equal minimising loss."""
    low = get_importance_info(synthetic(), "ped_anova")
    high = get_importance_info(synthetic(sign=-1.0, direction="maximize"), "ped_anova")
    assert shares(low) == shares(high)


def test_unknown_evaluator_raises_with_the_list():
    with pytest.raises(ValueError, match=r"pick one of.*fanova"):
        get_importance_info(synthetic(), "shap")


def test_auto_picks_fanova_for_few_trials_and_ped_anova_beyond(monkeypatch):
    assert get_importance_info(synthetic(10), "auto").evaluator == "fanova"
    monkeypatch.setattr(importance_module, "FANOVA_MAX_TRIALS", 5)
    assert get_importance_info(synthetic(10), "auto").evaluator == "ped_anova"
    assert "auto" in EVALUATORS


@pytest.mark.parametrize(
    "trials",
    [
        [],
        [TrialRecord(0, "COMPLETE", {"x": 1.0}, 0.5)],
        [
            TrialRecord(0, "COMPLETE", {"x": 1.0}, 0.5),
            TrialRecord(1, "FAIL", {"x": 2.0}, error="oom"),
            TrialRecord(2, "PRUNED", {"x": 3.0}, 0.1),
            TrialRecord(3, "COMPLETE", {"x": 4.0}, float("nan")),
            TrialRecord(4, "COMPLETE", {"x": 5.0}, 0.2, constraints=[1.0]),  # infeasible
            TrialRecord(5, "COMPLETE", {"x": 1.0}, 0.5, repeat_of=0),
            TrialRecord(6, "RUNNING", {"x": 6.0}),
        ],
    ],
)
def test_fewer_than_two_usable_trials_give_a_reason(trials):
    info = get_importance_info(study(trials))
    assert info.n_trials == len([t for t in trials if t.number == 0])
    assert info.reason is not None and "2 or more" in info.reason
    assert info.params == [] and all(not o.importances for o in info.objectives)
    fig = plot_importance(study(trials))
    assert not fig.data and "2 or more" in fig.layout.annotations[0].text


def test_constant_objective_gives_a_reason():
    trials = [TrialRecord(i, "COMPLETE", {"x": float(i)}, 0.5) for i in range(5)]
    info = get_importance_info(study(trials))
    (only,) = info.objectives
    assert only.importances == {} and "0.5 in every usable trial" in (only.reason or "")
    fig = plot_importance(study(trials))
    assert not fig.data and "nothing to explain" in fig.layout.annotations[0].text


def test_no_varying_param_gives_a_reason():
    trials = [TrialRecord(i, "COMPLETE", {"x": 1}, float(i)) for i in range(5)]
    info = get_importance_info(study(trials))
    assert "No parameter takes two different values" in (info.reason or "")


def test_several_objectives_get_one_importance_each():
    rng = np.random.default_rng(1)
    trials = []
    for i in range(40):
        x, z = float(rng.uniform()), float(rng.uniform())
        trials.append(TrialRecord(i, "COMPLETE", {"x": x, "z": z}, x, values=[x, 1e6 * z]))
    record = study(trials, objectives=["acc", "params"], directions=["maximize", "minimize"])
    info = get_importance_info(record, "mean_decrease_impurity")
    acc, params = info.objectives
    assert (acc.objective, acc.direction) == ("acc", "maximize")
    assert max(acc.importances, key=acc.importances.get) == "x"
    assert max(params.importances, key=params.importances.get) == "z"
    fig = plot_importance(record, info=info)
    assert [t.name for t in fig.data] == ["params", "acc"]  # drawn bottom-up: acc on top
    assert [t.legendrank for t in fig.data] == [1001, 1000] and fig.layout.barmode == "group"


def test_one_constant_objective_of_several_is_noted():
    trials = [TrialRecord(i, "COMPLETE", {"x": i}, float(i), values=[i, 7.0]) for i in range(6)]
    record = study(trials, objectives=["acc", "cost"], directions=["maximize", "minimize"])
    info = get_importance_info(record, "mean_decrease_impurity")
    assert info.objectives[0].importances == {"x": 1.0}
    assert "cost is 7" in (info.objectives[1].reason or "")
    fig = plot_importance(record, info=info)
    assert (
        len(fig.data) == 1 and "1 objective without importances" in fig.layout.title.subtitle.text
    )


def conditional() -> StudyRecord:
    """``block`` decides whether ``expand`` is set (half the trials)."""
    rng = np.random.default_rng(2)
    trials = []
    for i in range(40):
        params: dict[str, Any] = {"block": "basic" if i % 2 else "bottleneck"}
        params["lr"] = float(rng.uniform())
        if params["block"] == "bottleneck":
            params["expand"] = int(rng.integers(2, 6))
        loss = params["lr"] + params.get("expand", 0)
        trials.append(TrialRecord(i, "COMPLETE", params, loss))
    return study(trials)


@pytest.mark.parametrize("evaluator", ["fanova", "mean_decrease_impurity"])
def test_conditional_params_are_listed_not_assessed(evaluator):
    info = get_importance_info(conditional(), evaluator)
    assert info.not_assessed == ["expand"] and set(info.params) == {"block", "lr"}
    fig = plot_importance(conditional(), info=info)
    assert "1 conditional param not assessed" in fig.layout.title.subtitle.text


def test_ped_anova_assesses_conditional_params_on_optuna_5():
    info = get_importance_info(conditional(), "ped_anova")
    if OPTUNA_5:  # Conditional PED-ANOVA
        assert info.not_assessed == [] and "expand" in info.params
    else:
        assert info.not_assessed == ["expand"]


def test_only_conditional_params_give_a_reason():
    trials = [TrialRecord(i, "COMPLETE", {f"p{i % 2}": float(i)}, float(i)) for i in range(6)]
    info = get_importance_info(study(trials), "fanova")
    assert info.objectives[0].importances == {}
    assert "No parameter is set in every usable trial" in (info.objectives[0].reason or "")
    assert not plot_importance(study(trials), info=info).data


SPACE = {
    "type": "space",
    "kind": "space",
    "entries": {
        "train": {
            "type": "space",
            "kind": "training",
            "entries": {
                "lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True, "step": None},
                "bs": {"type": "categorical", "choices": [32, 64, 128]},
                "epochs": {"type": "fixed", "value": 3},
            },
        },
        "depth": {"type": "int", "low": 1, "high": 8, "log": False, "step": None},
        "width": {"type": "int", "low": 1, "high": 4, "log": False, "step": None},
    },
}


def test_distributions_come_from_the_space_where_it_holds_the_values():
    trials = [
        TrialRecord(0, "COMPLETE", {"train/lr": 0.001, "train/bs": 32, "depth": 2, "width": 9}, 1),
        TrialRecord(1, "COMPLETE", {"train/lr": 0.01, "train/bs": 64, "depth": 3, "width": 2}, 2),
    ]
    dists = importance_module._distributions(study(trials, space=SPACE), trials)
    assert dists["train/lr"][0] == FloatDistribution(1e-4, 0.1, log=True)
    assert dists["train/bs"][0] == CategoricalDistribution([32, 64, 128])
    assert dists["depth"][0] == IntDistribution(1, 8)
    assert dists["width"][0] == IntDistribution(2, 9)  # 9 lies outside the space: inferred


def test_distributions_inferred_from_values():
    values: dict[str, list[Any]] = {
        "i": [1, 5, 3],
        "f": [0.5, 1, 2.5],
        "lr": [1e-5, 1e-3, 1e-1],
        "c": ["b", None, True],
        "bad": [float("nan"), 1.0, 2.0],
    }
    trials = [
        TrialRecord(n, "COMPLETE", {k: v[n] for k, v in values.items()}, float(n))
        for n in range(3)
    ]
    dists = {k: d for k, (d, _) in importance_module._distributions(study(trials), trials).items()}
    assert dists["i"] == IntDistribution(1, 5)
    assert dists["f"] == FloatDistribution(0.5, 2.5)
    assert dists["lr"] == FloatDistribution(1e-5, 1e-1, log=True)
    assert isinstance(dists["c"], CategoricalDistribution) and len(dists["c"].choices) == 3
    assert dists["bad"] == CategoricalDistribution([1.0, 2.0, "nan"])
    info = get_importance_info(study(trials), "mean_decrease_impurity")
    assert info.reason is None and set(info.params) == set(values)


def test_plot_bars_most_important_on_top_and_escaped():
    record = synthetic()
    record.trials[0].params["<b>odd</b>"] = 1.0  # conditional: not assessed by fANOVA
    for t in record.trials:
        t.params["<i>k</i>"] = t.params["x"]
    fig = plot_importance(record, "mean_decrease_impurity")
    (bars,) = fig.data
    assert isinstance(bars, go.Bar) and bars.orientation == "h"
    order = list(fig.layout.yaxis.categoryarray)
    top = order[-1]  # plotly draws the last category on top
    assert bars.x[list(bars.y).index(top)] == max(bars.x)
    assert "&lt;i&gt;k&lt;/i&gt;" in bars.y and not any("<i>" in y for y in bars.y)
    assert all("<i>k" not in h for h in bars.hovertext)
    assert "mean decrease in impurity over 40 usable trials" in fig.layout.title.subtitle.text


def test_plot_reuses_a_given_info(monkeypatch):
    info = get_importance_info(synthetic(), "mean_decrease_impurity")
    monkeypatch.setattr(importance_module, "get_importance_info", None)  # must not be called
    assert len(plot_importance(synthetic(), info=info).data) == 1
