"""The training knobs a trainer honours, as a search space.

Every knob has a default that means "off" or "the usual", so a space names only what it
searches. A trainer states which knobs it honours (``Trainer.check_space``) and refuses
a space that searches or changes one it would ignore.

Example:
    >>> from spaces import TrainingSpace, Float, Categorical
    >>> space = TrainingSpace(lr=Float(1e-4, 1e-1, log=True), batch_size=Categorical([32, 64]))
    >>> sorted(space.decisions())
    ['batch_size', 'lr']
"""

from __future__ import annotations

from typing import Any

from spaces.family import Family
from spaces.params import Param

OPTIMIZERS = {"adamw", "sgd"}
PRECISIONS = {"fp32", "bf16", "fp16"}
SCHEDULES = {"cosine", "linear", "constant"}


class TrainingSpace(Family):
    """Optimisation, precision, compression and augmentation knobs of a trial.

    Args:
        lr: Peak learning rate (> 0).
        batch_size: Examples per step (1-65536).
        optimizer: ``"adamw"`` or ``"sgd"`` (Nesterov momentum).
        weight_decay: Decoupled weight decay (0-1).
        momentum: SGD momentum (0-1); ignored by AdamW.
        schedule: Learning-rate schedule over the trial: ``"cosine"`` (to zero),
            ``"linear"`` (to zero) or ``"constant"``.
        epochs: Epochs of this trial; ``None`` means the trainer's full budget. A searched
            value must not exceed that budget (schedulers cut trials against it).
        precision: ``"fp32"``, ``"bf16"`` autocast, or ``"fp16"`` autocast with loss scaling.
        prune_ratio: Share of channels removed by structural pruning (0 = none, < 1).
        distill_alpha: Weight of the distillation loss (0 = no teacher; Hinton et al. 2015).
        distill_temperature: Softmax temperature of distillation (> 0).
        augment: Strength of random-translation augmentation, 0 (none) to 1.
    """

    kind = "training"
    defaults = {
        "lr": 3e-3,
        "batch_size": 64,
        "optimizer": "adamw",
        "weight_decay": 1e-4,
        "momentum": 0.9,
        "schedule": "cosine",
        "epochs": None,
        "precision": "fp32",
        "prune_ratio": 0.0,
        "distill_alpha": 0.0,
        "distill_temperature": 4.0,
        "augment": 0.0,
    }
    # knob -> (low, high, integer) for the numeric ones
    _RANGES: dict[str, tuple[float, float, bool]] = {
        "lr": (1e-12, 100.0, False),
        "batch_size": (1, 65536, True),
        "weight_decay": (0.0, 1.0, False),
        "momentum": (0.0, 1.0, False),
        "epochs": (1, 100_000, True),
        "prune_ratio": (0.0, 0.99, False),
        "distill_alpha": (0.0, 1.0, False),
        "distill_temperature": (1e-3, 100.0, False),
        "augment": (0.0, 1.0, False),
    }
    _CHOICES: dict[str, set[Any]] = {
        "optimizer": OPTIMIZERS,
        "precision": PRECISIONS,
        "schedule": SCHEDULES,
    }

    def check_knob(self, name: str, param: Param) -> None:
        if name in self._CHOICES:
            self._require_in(name, param, self._CHOICES[name])
        elif name == "epochs" and self.knob_values(name) == [None]:
            return
        else:
            low, high, integer = self._RANGES[name]
            self._require_range(name, param, low, high, integer=integer)

    def searched_or_changed(self) -> list[str]:
        """Knobs that are searched, or fixed to something other than their default."""
        out = []
        for name, default in self.defaults.items():
            values = self.knob_values(name)
            if values is None or values != [default]:
                out.append(name)
        return out
