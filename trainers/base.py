"""The trainer contract: what runs inside one trial.

A :class:`Trainer` receives a sampled configuration and the space it came from, trains,
and calls ``session.report`` once per epoch. The session hides where the trial runs: on
Ray Tune (``studies`` passes a session that forwards to ``ray.tune.report``) or in this
process (:meth:`Trainer.fit`, for debugging and tests). Trainers never touch the study
database: only the driver records.

Call order: ``check_space(space)`` once in the driver before any trial starts, then
``prepare()`` once in the driver when Ray is up (work shared by every trial, such as a
teacher's logits put in Ray's object store); then, in each trial,
``run(config, space, session)``. ``run`` may call ``session.restore()``
first, and resumes from the returned checkpoint when it is not ``None``. A trainer must
be picklable (it is shipped to Ray workers) and rebuildable from :meth:`Trainer.spec`.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from spaces import SearchSpace

# The trial user attribute where the driver records the directory of a trial's last
# checkpoint (a teacher for distillation can be named by study and trial number).
ATTR_CHECKPOINT = "archtune:checkpoint"

_TRAINERS: dict[str, type[Trainer]] = {}
_TRAINER_MODULES = {"image_classifier": "trainers.image_classifier"}


class TrialSession(Protocol):
    """Where a trainer sends its per-epoch metrics and gets its last checkpoint."""

    def report(
        self, metrics: Mapping[str, float], checkpoint: dict[str, Any] | None = None
    ) -> None:
        """Record one epoch's metrics, and a checkpoint dict to resume from."""

    def restore(self) -> dict[str, Any] | None:
        """The last checkpoint reported by this trial before a restart, if any."""

    @property
    def workers(self) -> int:
        """Data-parallel workers the trial runs on (1: the trial's own process)."""


class LocalSession:
    """A session that keeps everything in memory: used by :meth:`Trainer.fit`."""

    workers = 1  # data-parallel workers of the trial

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self.checkpoint: dict[str, Any] | None = None

    def report(
        self, metrics: Mapping[str, float], checkpoint: dict[str, Any] | None = None
    ) -> None:
        self.history.append(dict(metrics))
        if checkpoint is not None:
            self.checkpoint = checkpoint

    def restore(self) -> dict[str, Any] | None:
        return self.checkpoint


class Trainer(abc.ABC):
    """Base class of trial trainers; see the module docstring for the contract.

    Subclasses set ``name`` (registry key used by :func:`trainer_from_spec`),
    ``max_epochs`` (the budget a scheduler such as ASHA may cut short),
    ``metrics`` (names of what every epoch's report holds) and, if the last epoch's
    report adds more (the final network's cost, a test score), ``final_metrics``. A
    study's objectives must be among :meth:`reported_metrics`.
    """

    name: ClassVar[str]
    metrics: ClassVar[tuple[str, ...]]
    final_metrics: ClassVar[tuple[str, ...]] = ()
    max_epochs: int

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name is None:
            return
        if name in _TRAINERS:
            raise ValueError(f"Trainer {name!r} is already registered by {_TRAINERS[name]}.")
        _TRAINERS[name] = cls

    @abc.abstractmethod
    def check_space(self, space: SearchSpace) -> None:
        """Raise ``ValueError`` if this trainer cannot train configurations of ``space``."""

    @abc.abstractmethod
    def run(
        self, config: Mapping[str, Any], space: SearchSpace, session: TrialSession
    ) -> dict[str, float]:
        """Train one configuration, reporting every epoch; return the final metrics."""

    @abc.abstractmethod
    def spec(self) -> dict[str, Any]:
        """JSON-able constructor arguments; ``type(self)(**spec())`` rebuilds the trainer."""

    def reported_metrics(self) -> tuple[str, ...]:
        """Every metric a finished trial has reported by its last epoch: the per-epoch
        :attr:`metrics`, then the :attr:`final_metrics` (this trainer's, as configured)."""
        return (*self.metrics, *(m for m in self.final_metrics if m not in self.metrics))

    def prepare(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Driver-side work shared by every trial, run once Ray is up (default: none).

        What it computes must travel with the pickled trainer, not in :meth:`spec`.
        """

    def epochs_for(self, config: Mapping[str, Any]) -> int:
        """Epochs a full run of ``config`` trains; fewer at its end means a scheduler cut it."""
        return self.max_epochs

    def model_stats(
        self, config: Mapping[str, Any], space: SearchSpace, metrics: set[str]
    ) -> dict[str, float]:
        """Statistics of the network ``config`` builds (``params``, ``flops``, ...).

        Needed when the space has constraints; computed in the driver, without training.
        """
        raise NotImplementedError(
            f"{type(self).__name__} cannot compute model statistics, so it cannot check "
            "the space's constraints; remove them or use a trainer that can."
        )

    def fit(self, config: Mapping[str, Any], space: SearchSpace) -> dict[str, float]:
        """Train one configuration in this process, without Ray; return the final metrics."""
        self.check_space(space)
        self.prepare()
        return self.run(config, space, LocalSession())

    def to_json(self) -> dict[str, Any]:
        """``{"trainer": name, "kwargs": spec()}``, what a study stores to resume."""
        return {"trainer": self.name, "kwargs": self.spec()}


def trainer_from_json(data: Mapping[str, Any]) -> Trainer:
    """Rebuild a trainer from :meth:`Trainer.to_json` output.

    Raises:
        ValueError: for an unknown trainer name (the message lists the known ones).
    """
    name = data.get("trainer")
    if name not in _TRAINERS and name in _TRAINER_MODULES:
        importlib.import_module(_TRAINER_MODULES[name])  # registers the trainer
    if name not in _TRAINERS:
        raise ValueError(f"Unknown trainer {name!r}; known trainers: {sorted(_TRAINERS)}.")
    return _TRAINERS[name](**data.get("kwargs", {}))
