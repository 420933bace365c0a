"""The training knobs a trainer honours, as a search space.

Example:
    >>> from spaces import TrainingSpace, Float, Categorical
    >>> space = TrainingSpace(lr=Float(1e-4, 1e-1, log=True), batch_size=Categorical([32, 64]))
    >>> sorted(space.decisions())
    ['batch_size', 'lr']
"""

from __future__ import annotations

from spaces.family import Family
from spaces.params import Param

OPTIMIZERS = {"adamw", "sgd"}
PRECISIONS = {"fp32", "bf16"}


class TrainingSpace(Family):
    """Learning rate, batch size, optimizer, weight decay, momentum and precision.

    Args:
        lr: Peak learning rate (> 0), followed by cosine decay to zero.
        batch_size: Examples per step (1-65536).
        optimizer: ``"adamw"`` or ``"sgd"`` (Nesterov momentum).
        weight_decay: Decoupled weight decay (0-1).
        momentum: SGD momentum (0-1); ignored by AdamW.
        precision: ``"fp32"`` or ``"bf16"`` autocast.
    """

    kind = "training"
    defaults = {
        "lr": 3e-3,
        "batch_size": 64,
        "optimizer": "adamw",
        "weight_decay": 1e-4,
        "momentum": 0.9,
        "precision": "fp32",
    }

    def check_knob(self, name: str, param: Param) -> None:
        if name == "optimizer":
            self._require_in(name, param, OPTIMIZERS)
        elif name == "precision":
            self._require_in(name, param, PRECISIONS)
        elif name == "batch_size":
            self._require_range(name, param, 1, 65536, integer=True)
        elif name == "lr":
            self._require_range(name, param, 1e-12, 100.0)
        else:
            self._require_range(name, param, 0.0, 1.0)
