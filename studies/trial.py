"""What runs on the Ray workers: the function trainable and its session.

Kept apart from the driver-side adapters (:mod:`studies.tune_adapter`) and light to
import: a trial actor loads this module, the trainer and the space, and nothing of the
database layer. Torch is imported only by trainers that use it (and for checkpoints).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

from ray import tune

from spaces.space import SearchSpace
from trainers.base import Trainer

CHECKPOINT_FILE = "checkpoint.pt"


class TuneSession:
    """A :class:`~trainers.TrialSession` inside a Ray Tune function trainable."""

    def report(
        self, metrics: Mapping[str, float], checkpoint: dict[str, Any] | None = None
    ) -> None:
        payload = {**metrics, "archtune_keys": list(metrics)}
        if checkpoint is None:
            tune.report(payload)
            return
        import torch

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, CHECKPOINT_FILE)
            torch.save(checkpoint, path + ".tmp")
            os.replace(path + ".tmp", path)
            tune.report(payload, checkpoint=tune.Checkpoint.from_directory(tmp))

    def restore(self) -> dict[str, Any] | None:
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        import torch

        with checkpoint.as_directory() as d:
            return torch.load(os.path.join(d, CHECKPOINT_FILE), weights_only=False)


def make_trainable(trainer: Trainer, space: SearchSpace, threads: int) -> Callable[[dict], None]:
    """The Ray Tune function trainable that runs ``trainer`` on each configuration.

    Args:
        trainer: The archtune trainer, shipped to the workers.
        space: The search space (the trainer builds the model from it).
        threads: Intra-op threads for PyTorch in each trial (its CPU share).
    """

    def archtune_trial(config: dict) -> None:
        torch = sys.modules.get("torch")  # loaded by a torch trainer when it was unpickled
        if torch is not None:
            torch.set_num_threads(max(1, threads))
        trainer.run(config, space, TuneSession())

    return archtune_trial
