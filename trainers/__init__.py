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
    "LoaderData": "trainers.data",
    "TeacherSource": "trainers.distill",
    "TensorData": "trainers.data",
    "load_data": "trainers.data",
    "load_dataset": "trainers.data",
    "load_model": "trainers.export",
    "export_model": "trainers.export",
    "model_from_checkpoint": "trainers.checkpoint",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trainers' has no attribute {name!r}")


__all__ = [
    "ImageClassifier",
    "LoaderData",
    "LocalSession",
    "TeacherSource",
    "TensorData",
    "Trainer",
    "TrialSession",
    "export_model",
    "load_data",
    "load_dataset",
    "load_model",
    "model_from_checkpoint",
    "trainer_from_json",
]
