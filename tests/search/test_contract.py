"""The contract every controller keeps, run over the whole registry.

A controller registered in ``search`` joins these tests automatically: its proposals lie
in the space (every parameter kind, conditional ones included), it is reproducible from
its seed, it survives failed, pruned and NaN trials, it gives distinct proposals to
trials asked at the same time, and it works on an SQLite study that is reloaded.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search import list_controllers, make_controller
from spaces import Categorical, Float, Int, SearchSpace
from spaces.optuna_adapter import suggest

CONTROLLERS = sorted(list_controllers())
# Controllers whose randomness is drawn per trial from (seed, trial number) and whose
# state is rebuilt from the study: a reloaded one proposes what the original would have.
REBUILDABLE = {"evolution", "rl", "nni-tpe", "nni-evolution"} & set(CONTROLLERS)
MULTI_OBJECTIVE = {"nsga2", "evolution"} & set(CONTROLLERS)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _space() -> SearchSpace:
    return SearchSpace(
        {
            "block": Categorical(["basic", "bottleneck"]),
            "width": Int(8, 64, log=True),
            "depth": Int(1, 9, step=2),
            "lr": Float(1e-4, 1e-1, log=True),
            "drop": Float(0.0, 0.5, step=0.1),
            "decay": Float(0.0, 1.0),
            "neck": Int(2, 8, when={"block": "bottleneck"}),
            "se": Categorical([True, False], when={"block": "bottleneck"}),
            "se_ratio": Float(0.1, 0.5, when={"se": True}),
        }
    )


def _objective(config: dict) -> float:
    score = -abs(math.log10(config["lr"]) + 2.5) - abs(config["depth"] - 5) / 4
    score += 0.3 * (config["block"] == "bottleneck") - config["drop"] + config["decay"] / 10
    return score + math.log2(config["width"]) / 6


def _ask(study: optuna.Study, space: SearchSpace) -> tuple[optuna.Trial, dict]:
    trial = study.ask()
    return trial, space.unflatten(suggest(trial, space))


def _run(study: optuna.Study, n: int, space: SearchSpace | None = None) -> list[dict]:
    space = space or _space()
    configs = []
    for _ in range(n):
        trial, config = _ask(study, space)
        configs.append(config)
        study.tell(trial, _objective(config))
    return configs


@pytest.mark.parametrize("name", CONTROLLERS)
def test_proposals_lie_in_the_space_and_respect_conditions(name: str) -> None:
    space = _space()
    study = optuna.create_study(direction="maximize", sampler=make_controller(name, seed=0))
    for config in _run(study, 30, space):
        assert space.check_config(config) == config
    for t in study.trials:
        assert ("neck" in t.params) == (t.params["block"] == "bottleneck")
        assert ("se_ratio" in t.params) == (t.params.get("se") is True)


@pytest.mark.parametrize("name", CONTROLLERS)
def test_same_seed_same_sequence(name: str) -> None:
    runs = []
    for _ in range(2):
        study = optuna.create_study(direction="maximize", sampler=make_controller(name, seed=7))
        runs.append(_run(study, 15))
    assert runs[0] == runs[1]


@pytest.mark.parametrize("name", CONTROLLERS)
def test_failed_pruned_and_nan_trials_do_not_break_it(name: str) -> None:
    space = _space()
    study = optuna.create_study(direction="minimize", sampler=make_controller(name, seed=1))
    for i in range(36):
        trial, config = _ask(study, space)
        if i % 5 == 1:
            study.tell(trial, state=TrialState.FAIL)
        elif i % 5 == 2:
            trial.report(-_objective(config) + 1.0, step=1)
            study.tell(trial, state=TrialState.PRUNED)
        elif i % 5 == 3:
            with pytest.warns(UserWarning, match="nan is not acceptable"):
                study.tell(trial, math.nan)  # Optuna records a NaN objective as FAIL
        else:
            study.tell(trial, -_objective(config))
    states = [t.state for t in study.trials]
    assert states.count(TrialState.FAIL) == 14 and states.count(TrialState.PRUNED) == 7
    assert study.best_trial.state == TrialState.COMPLETE


@pytest.mark.parametrize("name", CONTROLLERS)
def test_trials_asked_together_get_distinct_proposals(name: str) -> None:
    space = _space()
    study = optuna.create_study(direction="maximize", sampler=make_controller(name, seed=2))
    _run(study, 12, space)
    running = [_ask(study, space)[1] for _ in range(4)]
    assert all(running[i] != running[j] for i in range(4) for j in range(i + 1, 4))


@pytest.mark.parametrize("name", CONTROLLERS)
def test_continues_on_a_reloaded_sqlite_study(name: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    study = optuna.create_study(
        study_name="s", storage=url, direction="maximize", sampler=make_controller(name, seed=3)
    )
    _run(study, 12)
    shutil.copy(tmp_path / "a.db", tmp_path / "b.db")
    copy = optuna.load_study(
        study_name="s",
        storage=f"sqlite:///{tmp_path / 'b.db'}",
        sampler=make_controller(name, seed=3),
    )
    space = _space()
    original_next = _ask(study, space)[1]
    reloaded_next = _ask(copy, space)[1]
    assert space.check_config(reloaded_next) == reloaded_next
    if name in REBUILDABLE:
        assert reloaded_next == original_next


@pytest.mark.parametrize("name", sorted(MULTI_OBJECTIVE))
def test_multi_objective_search_returns_a_pareto_front(name: str) -> None:
    space = SearchSpace({"width": Int(8, 64, log=True), "lr": Float(1e-4, 1e-1, log=True)})
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=make_controller(name, seed=4)
    )
    for _ in range(40):
        trial, config = _ask(study, space)
        accuracy = 1 - abs(math.log10(config["lr"]) + 2.5) / 3 + math.log2(config["width"]) / 12
        study.tell(trial, [accuracy, config["width"] * 1000.0])
    front = study.best_trials
    assert len(front) >= 2
    for a in front:
        for b in front:
            dominates = b.values[0] >= a.values[0] and b.values[1] <= a.values[1]
            assert not (dominates and b.values != a.values)
