"""What runs inside one trial: data, model, training loop, per-epoch reports.

Example:
    >>> from trainers import ImageClassifier
    >>> trainer = ImageClassifier(dataset="digits", epochs=3)
    >>> trainer.to_json()["trainer"]
    'image_classifier'
"""

from __future__ import annotations

import importlib
from typing import Any

from trainers.base import LocalSession, Trainer, TrialSession, trainer_from_json

# Imported on first use (they pull in torch).
_LAZY = {
    "ImageClassifier": "trainers.image_classifier",
    "TensorData": "trainers.data",
    "load_dataset": "trainers.data",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trainers' has no attribute {name!r}")


__all__ = [
    "ImageClassifier",
    "LocalSession",
    "TensorData",
    "Trainer",
    "TrialSession",
    "load_dataset",
    "trainer_from_json",
]
