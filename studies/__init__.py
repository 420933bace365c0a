"""The study lifecycle: storage, running on Ray Tune, resume, and the CLI.

Example:
    >>> from studies import Study, Experiment
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from studies.experiment import Experiment
    from studies.objectives import Objectives
    from studies.records import StudyRecord, TrialRecord, list_studies, load_study_record
    from studies.settings import RunSettings
    from studies.storage import DEFAULT_STORAGE, Storage, StorageError, open_storage
    from studies.study import Study

__all__ = [
    "DEFAULT_STORAGE",
    "Experiment",
    "Objectives",
    "RunSettings",
    "Storage",
    "StorageError",
    "Study",
    "StudyRecord",
    "TrialRecord",
    "list_studies",
    "load_study_record",
    "open_storage",
]


# Everything loads on first use: a Ray trial imports ``studies.trial`` only, and should
# not pay for the database layer (SQLAlchemy, Optuna) or the search stack.
_LAZY = {
    "DEFAULT_STORAGE": "studies.storage",
    "Experiment": "studies.experiment",
    "Objectives": "studies.objectives",
    "RunSettings": "studies.settings",
    "Storage": "studies.storage",
    "StorageError": "studies.storage",
    "Study": "studies.study",
    "StudyRecord": "studies.records",
    "TrialRecord": "studies.records",
    "list_studies": "studies.records",
    "load_study_record": "studies.records",
    "open_storage": "studies.storage",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'studies' has no attribute {name!r}")
