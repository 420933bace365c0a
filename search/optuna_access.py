"""The few private Optuna attributes archtune relies on, in one place.

Optuna's public API has no way to reach a study's storage, a study's row id or a
trial's row id, yet a sampler that keeps caches per storage (``evolution``, the NNI
adapter) or writes system attributes while a trial is being told, and a reader that
joins archtune's tables on Optuna's trial ids, need them. Optuna's own samplers read
``study._storage`` and ``trial._trial_id`` the same way. Every such access goes through
this module, and ``tests/search/test_optuna_access.py`` pins each one against the
installed Optuna, so a release that renames them (pyproject admits Optuna 4 and 5) fails
one test with a clear message instead of breaking a study half-way.

Example:
    >>> import optuna
    >>> study = optuna.create_study()
    >>> trial = study.ask()
    >>> trial_id(trial) == trial_id(study.trials[0])
    True
    >>> isinstance(study_storage(study), optuna.storages.BaseStorage)
    True
"""

from __future__ import annotations

import optuna

__all__ = [
    "constraints_of",
    "live_trial",
    "set_constraints",
    "study_id",
    "study_storage",
    "trial_id",
]


def trial_id(trial: optuna.trial.FrozenTrial | optuna.Trial) -> int:
    """The storage's row id of ``trial`` (unique in the database, unlike ``number``)."""
    return int(trial._trial_id)


def study_storage(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage ``study`` reads and writes (the one ``load_study`` was given)."""
    return study._storage


def study_id(study: optuna.Study) -> int:
    """The storage's row id of ``study``."""
    return int(study._study_id)


def set_constraints(trial: optuna.Trial, values: dict[str, float]) -> None:
    """Record constraint values on a running ``trial`` (feasible when all are <= 0).

    Optuna 5's samplers (TPE, NSGA-II, GP) and ``Study.best_trials`` read them from the
    trial; Optuna 5 writes them with ``Trial.set_constraint``, Optuna 4 kept them in the
    system attribute ``"constraints"`` (a list), which Optuna 5 still reads.
    """
    if hasattr(trial, "set_constraint"):
        for key, value in values.items():
            trial.set_constraint(key, value)
    else:  # Optuna 4
        storage = trial.storage
        storage.set_trial_system_attr(trial_id(trial), "constraints", list(values.values()))


def constraints_of(trial: optuna.trial.FrozenTrial) -> dict[str, float]:
    """The constraint values recorded on ``trial`` by name (empty when it has none)."""
    if hasattr(trial, "constraints"):
        return dict(trial.constraints)
    return {str(i): v for i, v in enumerate(trial.system_attrs.get("constraints") or [])}


def live_trial(study: optuna.Study, trial_id: int) -> optuna.Trial:
    """A live :class:`optuna.Trial` for an existing RUNNING trial of ``study`` (by its row
    id), to report to and tell it from another process than the one that asked it; its
    parameters already set are returned as they are by ``suggest_*``."""
    return optuna.trial.Trial(study, trial_id)
