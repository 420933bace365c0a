"""Trainers for the integration tests; importable by Ray workers (tests/ is on their path)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
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


class FadingTrainer(ToyTrainer):
    """ToyTrainer whose score is ``x`` until the last epoch and ``1 - x`` at it."""

    name = "test_fading"

    def run(self, config: Mapping[str, Any], space: SearchSpace, session: TrialSession):
        x = float(config["x"])
        for epoch in range(1, self.max_epochs + 1):
            time.sleep(self.seconds)
            session.report({"epoch": epoch, "score": x if epoch < self.max_epochs else 1 - x})
        return {"epoch": self.max_epochs, "score": 1 - x}


class DyingTrainer(ToyTrainer):
    """ToyTrainer whose worker process dies after epoch ``die_after``, once per marker dir.

    Each epoch's checkpoint records the epochs trained so far; a restarted trial resumes
    from it, and reports ``resumed_from`` (0 on a fresh start).
    """

    name = "test_dying"

    def __init__(self, marker_dir: str, die_after: int = 1, epochs: int = 3) -> None:
        super().__init__(epochs=epochs, seconds=0.0)
        self.marker_dir, self.die_after = marker_dir, die_after

    def run(self, config: Mapping[str, Any], space: SearchSpace, session: TrialSession):
        state = session.restore()
        start = state["epoch"] if state else 0
        marker = os.path.join(self.marker_dir, f"died-{config['x']}")
        for epoch in range(start + 1, self.max_epochs + 1):
            metrics = {"epoch": epoch, "score": float(config["x"]), "resumed_from": start}
            session.report(metrics, {"epoch": epoch})
            if epoch == self.die_after and not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(1)  # the worker process dies, as on a lost node
        return metrics

    def spec(self) -> dict[str, Any]:
        return {
            "marker_dir": self.marker_dir,
            "die_after": self.die_after,
            "epochs": self.max_epochs,
        }


class RaisingTrainer(ToyTrainer):
    """ToyTrainer that logs each start of a trial to ``marker_dir/starts``, then raises."""

    name = "test_raising"

    def __init__(self, marker_dir: str) -> None:
        super().__init__(epochs=2, seconds=0.0)
        self.marker_dir = marker_dir

    def run(self, config: Mapping[str, Any], space: SearchSpace, session: TrialSession):
        with open(os.path.join(self.marker_dir, "starts"), "a") as f:
            f.write("start\n")
        session.report({"epoch": 1, "score": 0.0}, {"epoch": 1})
        raise FloatingPointError("Training loss became nan in epoch 2")

    def spec(self) -> dict[str, Any]:
        return {"marker_dir": self.marker_dir}


class CountingTrainer(ToyTrainer):
    """ToyTrainer that appends each configuration it trains to ``<log_dir>/trained``."""

    name = "test_counting"

    def __init__(self, log_dir: str, epochs: int = 2) -> None:
        super().__init__(epochs=epochs, seconds=0.0)
        self.log_dir = log_dir

    def run(self, config: Mapping[str, Any], space: SearchSpace, session: TrialSession):
        with open(os.path.join(self.log_dir, "trained"), "a", encoding="utf-8") as f:
            f.write(f"{config['x']}\n")
        return super().run(config, space, session)

    def spec(self) -> dict[str, Any]:
        return {"log_dir": self.log_dir, "epochs": self.max_epochs}


class CostTrainer(ToyTrainer):
    """A two-objective toy: ``score`` rises with ``x`` each epoch, and the network's
    ``params`` (``1000 * width`` for kind "wide", 500 for kind "slim") is known before
    training (:meth:`model_stats`) and reported at the last epoch, as ImageClassifier's
    final network figures are. Trials with ``x < 0.3`` score 0.05 from epoch 2 on, so a
    scheduler stops them."""

    name = "test_cost"
    final_metrics = ("params",)

    def run(self, config: Mapping[str, Any], space: SearchSpace, session: TrialSession):
        x = float(config["x"])
        params = self._params(config)
        metrics: dict[str, float] = {}
        for epoch in range(1, self.max_epochs + 1):
            time.sleep(self.seconds)
            metrics = {"epoch": epoch, "score": x if x >= 0.3 or epoch == 1 else 0.05}
            if epoch == self.max_epochs:
                metrics["params"] = params
            session.report(metrics)
        return metrics

    def model_stats(
        self, config: Mapping[str, Any], space: SearchSpace, metrics: set[str]
    ) -> dict[str, float]:
        return {"params": self._params(config), "flops": 2 * self._params(config)}

    @staticmethod
    def _params(config: Mapping[str, Any]) -> float:
        return 1000.0 * config["width"] if config["kind"] == "wide" else 500.0


class CheckpointingTrainer(ToyTrainer):
    """ToyTrainer that checkpoints every epoch, goes on from a checkpoint, and logs each
    start (``start x FROM``) and each epoch (``epoch x N``) to ``<log_dir>/log``, so a test
    can tell how often a configuration was trained and from where. While the file
    ``<log_dir>/hold`` exists, no trial trains past its first epoch (a test then knows
    trials are running, with a checkpoint, when it stops the driver)."""

    name = "test_checkpointing"

    def __init__(self, log_dir: str, epochs: int = 4, seconds: float = 0.5) -> None:
        super().__init__(epochs=epochs, seconds=seconds)
        self.log_dir = log_dir
        self.hold = os.path.join(log_dir, "hold")

    def run(self, config: Mapping[str, Any], space: SearchSpace, session: TrialSession):
        state = session.restore()
        start = state["epoch"] if state else 0
        x = float(config["x"])
        self._log(f"start {x} {start}")
        metrics: dict[str, float] = {}
        for epoch in range(start + 1, self.max_epochs + 1):
            while epoch > 1 and os.path.exists(self.hold):
                time.sleep(0.05)
            time.sleep(self.seconds)
            metrics = {"epoch": epoch, "score": x}
            session.report(metrics, {"epoch": epoch})
            self._log(f"epoch {x} {epoch}")
        return metrics

    def _log(self, line: str) -> None:
        with open(os.path.join(self.log_dir, "log"), "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def spec(self) -> dict[str, Any]:
        return {"log_dir": self.log_dir, "epochs": self.max_epochs, "seconds": self.seconds}


class TableDroppingTrainer(ToyTrainer):
    """ToyTrainer whose first trial drops ``archtune_metrics`` from the study's SQLite file
    after its first epoch: the driver's next write fails, as on a broken database."""

    name = "test_table_dropping"

    def __init__(self, db_path: str) -> None:
        super().__init__(epochs=3, seconds=0.3)
        self.db_path = db_path

    def run(self, config: Mapping[str, Any], space: SearchSpace, session: TrialSession):
        import sqlite3

        for epoch in range(1, self.max_epochs + 1):
            time.sleep(self.seconds)
            session.report({"epoch": epoch, "score": float(config["x"])})
            if epoch == 1:
                with sqlite3.connect(self.db_path, timeout=30) as db:
                    db.execute("DROP TABLE IF EXISTS archtune_metrics")
        return {"epoch": self.max_epochs, "score": float(config["x"])}

    def spec(self) -> dict[str, Any]:
        return {"db_path": self.db_path}


_ONE_TRIAL_STUDY = """\
from spaces import Float, SearchSpace
from studies import Experiment
from tests.studies.toy import ToyTrainer

experiment = Experiment(
    name={name!r},
    space=SearchSpace({{"x": Float(0.0, 1.0)}}),
    objective="score",
    trainer=ToyTrainer(epochs=1, seconds=0.0),
    num_trials=1,
    storage={storage!r},
)
"""


def one_trial_study_file(directory: Path, name: str) -> tuple[Path, Path]:
    """A study file of one quick ToyTrainer trial named ``name`` in ``directory``; its
    path and the SQLite file it records into (``NAME.db`` there)."""
    db = directory / f"{name}.db"
    path = directory / "study.py"
    path.write_text(_ONE_TRIAL_STUDY.format(name=name, storage=f"sqlite:///{db}"))
    return path, db
