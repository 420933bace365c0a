"""Pins the private Optuna attributes behind ``search.optuna_access`` to the installed
Optuna: each accessor must agree with Optuna's public storage API."""

from __future__ import annotations

import optuna
import pytest

from search.optuna_access import study_id, study_storage, trial_id


@pytest.fixture(params=["memory", "sqlite"])
def study(request, db_url: str) -> optuna.Study:
    storage = optuna.storages.InMemoryStorage() if request.param == "memory" else db_url
    optuna.create_study(study_name="other", storage=storage).ask()  # ids differ from numbers
    return optuna.create_study(study_name="pinned", storage=storage)


def test_study_storage_is_the_storage_the_study_reads(study: optuna.Study) -> None:
    storage = study_storage(study)
    assert isinstance(storage, optuna.storages.BaseStorage)
    trial = study.ask()
    assert storage.get_trial(trial_id(trial)).number == trial.number


def test_study_id_is_the_storage_row_of_the_study(study: optuna.Study) -> None:
    storage = study_storage(study)
    assert storage.get_study_id_from_name(study.study_name) == study_id(study)


def test_trial_id_of_live_and_frozen_trials_is_the_storage_row(study: optuna.Study) -> None:
    storage = study_storage(study)
    for _ in range(3):
        live = study.ask()
        expected = storage.get_trial_id_from_study_id_trial_number(study_id(study), live.number)
        assert trial_id(live) == expected
        study.tell(live, 1.0)
    for frozen in study.get_trials(deepcopy=False):
        assert trial_id(frozen) == storage.get_trial_id_from_study_id_trial_number(
            study_id(study), frozen.number
        )
    # Trial ids are unique in the database; numbers restart in each study ("other" has one).
    first = study.trials[0]
    assert first.number == 0 and trial_id(first) != 0


def test_constraints_recorded_on_a_trial_reach_optuna_and_its_samplers(
    study: optuna.Study,
) -> None:
    from search.optuna_access import constraints_of, set_constraints

    for x in (0.2, 0.9):
        trial = study.ask()
        set_constraints(trial, {"params<=max": x - 0.5})
        study.tell(trial, 1.0 - x)
    feasible, infeasible = study.trials
    assert list(constraints_of(feasible).values()) == [pytest.approx(-0.3)]
    assert list(constraints_of(infeasible).values()) == [pytest.approx(0.4)]
    # Optuna's best trials are feasible first, although the infeasible one scores better.
    assert [t.number for t in study.best_trials] == [feasible.number]


def test_a_live_trial_continues_a_running_one_from_another_handle(study: optuna.Study) -> None:
    from search.optuna_access import live_trial

    first = study.ask()
    x = first.suggest_float("x", 0.0, 1.0)
    first.report(0.1, 1)
    again = live_trial(
        optuna.load_study(study_name="pinned", storage=study_storage(study)), trial_id(first)
    )
    assert again.number == first.number
    assert again.suggest_float("x", 0.0, 1.0) == x, "set parameters come back as they are"
    again.report(0.2, 2)
    study.tell(again, 0.3)
    (done,) = [t for t in study.trials if t.number == first.number]
    assert done.state.name == "COMPLETE" and done.intermediate_values == {1: 0.1, 2: 0.2}
