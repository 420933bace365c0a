"""The study lifecycle: storage, running on Ray Tune, resume, and the CLI.

Example:
    >>> from studies import Study, Experiment
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from studies.records import StudyRecord, TrialRecord, list_studies, load_study_record
from studies.storage import DEFAULT_STORAGE, Storage, StorageError, open_storage

if TYPE_CHECKING:
    from studies.experiment import Experiment
    from studies.study import Study

__all__ = [
    "DEFAULT_STORAGE",
    "Experiment",
    "Storage",
    "StorageError",
    "Study",
    "StudyRecord",
    "TrialRecord",
    "list_studies",
    "load_study_record",
    "open_storage",
]


def __getattr__(name: str) -> Any:
    # Study pulls in the search and trainer stacks (torch); the dashboard, which reads
    # records only, should not pay for that import.
    if name == "Study":
        from studies.study import Study

        return Study
    if name == "Experiment":
        from studies.experiment import Experiment

        return Experiment
    raise AttributeError(f"module 'studies' has no attribute {name!r}")
