"""The study ``archtune demo`` runs: a ResNet space on the bundled digits data.

Example:
    >>> demo_experiment(epochs=2, num_trials=8).trainer.max_epochs
    2
"""

from __future__ import annotations

from search import make_controller
from spaces import Categorical, Float, Int, ResNetSpace, SearchSpace, TrainingSpace
from studies.experiment import Experiment
from studies.storage import DEFAULT_STORAGE
from trainers import ImageClassifier

DEMO_NAME = "demo-digits-resnet"


def demo_space() -> SearchSpace:
    """Depth, width and stages of a small ResNet, with learning rate, batch size, optimizer."""
    return SearchSpace(
        {
            "model": ResNetSpace(
                stages=Int(1, 3), depth=Int(1, 2), width=Categorical([8, 16, 32])
            ),
            "train": TrainingSpace(
                lr=Float(3e-4, 3e-1, log=True),
                batch_size=Categorical([32, 64, 128]),
                optimizer=Categorical(["adamw", "sgd"]),
            ),
        }
    )


def demo_experiment(
    epochs: int = 4, num_trials: int = 12, storage: str = DEFAULT_STORAGE
) -> Experiment:
    """The demo: TPE (5 random starts) with ASHA early stopping, 2 trials at a time."""
    return Experiment(
        name=DEMO_NAME,
        space=demo_space(),
        objective="val_acc",
        trainer=ImageClassifier(dataset="digits", epochs=epochs),
        controller=make_controller("tpe", seed=0, n_startup_trials=5),
        num_trials=num_trials,
        max_concurrent=2,
        scheduler="asha",
        resources_per_trial={"cpu": 1},
        storage=storage,
    )
