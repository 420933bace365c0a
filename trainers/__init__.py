"""What runs inside one trial: data, model, training loop, per-epoch reports.

Example:
    >>> from trainers import ImageClassifier
    >>> trainer = ImageClassifier(dataset="digits", epochs=3)
    >>> trainer.to_json()["trainer"]
    'image_classifier'
"""

from trainers.base import LocalSession, Trainer, TrialSession, trainer_from_json
from trainers.data import TensorData, load_dataset
from trainers.image_classifier import ImageClassifier

__all__ = [
    "ImageClassifier",
    "LocalSession",
    "TensorData",
    "Trainer",
    "TrialSession",
    "load_dataset",
    "trainer_from_json",
]
