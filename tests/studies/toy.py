"""Trainers for the integration tests; importable by Ray workers (tests/ is on their path)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from spaces import SearchSpace
from trainers import ImageClassifier, Trainer, TrialSession


class FlakyClassifier(ImageClassifier):
    """ImageClassifier whose trials with ``model/width == 8`` raise after their first epoch."""

    name = "test_flaky_classifier"

    def run(self, config: Mapping[str, Any], space: SearchSpace, session: TrialSession):
        if config["model"]["width"] == 8:
            session.report({"epoch": 1, "val_acc": 0.1})
            raise RuntimeError("width 8 is cursed")
        return super().run(config, space, session)


class ToyTrainer(Trainer):
    """Reports ``score = x`` for ``epochs`` epochs (a few ms each): a cheap, known objective."""

    name = "test_toy"
    metrics = ("epoch", "score")

    def __init__(self, epochs: int = 3, seconds: float = 0.01) -> None:
        self.max_epochs = epochs
        self.seconds = seconds

    def check_space(self, space: SearchSpace) -> None:
        if "x" not in space:
            raise ValueError("ToyTrainer needs a parameter 'x'.")

    def run(self, config: Mapping[str, Any], space: SearchSpace, session: TrialSession):
        for epoch in range(1, self.max_epochs + 1):
            time.sleep(self.seconds)
            session.report({"epoch": epoch, "score": float(config["x"])})
        return {"epoch": self.max_epochs, "score": float(config["x"])}

    def spec(self) -> dict[str, Any]:
        return {"epochs": self.max_epochs, "seconds": self.seconds}
