"""How a run places, schedules and retries its trials: one frozen, validated object.

:class:`RunSettings` is what an :class:`~studies.Experiment` holds, what
:meth:`Study.run <studies.Study.run>` takes (its keyword shortcuts build one), what the
study stores with each run (:func:`run_record`) and what ``archtune resume`` rebuilds
(:func:`load_run_record`); command-line flags override it with ``dataclasses.replace``.
Every default lives here, once, and every setting is checked once, in ``__post_init__``,
before anything is written or started.

Example:
    >>> from dataclasses import replace
    >>> settings = RunSettings(num_trials=8, scheduler="asha")
    >>> settings.scheduler_config()
    {'grace_period': 1, 'reduction_factor': 3, 'brackets': 1}
    >>> replace(settings, num_trials=4).num_trials
    4
    >>> RunSettings.from_json(settings.to_json()) == settings
    True
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from search.spec import ControllerSpec
from trainers.distributed import placement

# Each scheduler's options, with archtune's defaults (time is counted in epochs).
SCHEDULERS: dict[str, dict[str, int]] = {
    "fifo": {},
    "asha": {"grace_period": 1, "reduction_factor": 3, "brackets": 1},
    "median": {"grace_period": 1, "min_samples_required": 3},
}
# Not stored with the study: where to run and how to watch are the resumer's choice.
_NOT_STORED = ("address", "tensorboard", "metrics_port", "metrics_host")


@dataclass(frozen=True)
class RunSettings:
    """How a run places its trials; validated once, stored with the study for resume.

    Attributes:
        num_trials: Trials to train in this run (repeats answered from the record and
            proposals rejected by constraints do not count).
        max_concurrent: Trials running at the same time.
        scheduler: ``"fifo"`` (none), ``"asha"`` or ``"median"`` early stopping.
        scheduler_options: The scheduler's settings, in epochs: for ``"asha"``
            ``grace_period`` (1; no trial stops before it), ``reduction_factor`` (3; a
            third goes on at each rung) and ``brackets`` (1); for ``"median"``
            ``grace_period`` (1) and ``min_samples_required`` (3). Only options that
            differ from the defaults are kept (so equal settings compare equal);
            :meth:`scheduler_config` adds the defaults, and the study stores that.
        resources_per_trial: e.g. ``{"cpu": 1, "gpu": 0}``; ``"workers"`` trains each
            trial data-parallel on that many workers.
        address: None starts a local Ray instance (or reuses the one this process has);
            ``"auto"`` or ``"ray://host:10001"`` joins a cluster. Not stored: where to
            run is the resumer's choice.
        run_dir: Where Ray keeps trial directories and checkpoints (default:
            ``archtune_runs`` beside an SQLite file, else in the home directory).
        max_retries: Restarts of a trial whose worker died (a lost node, a killed
            process), each from the trial's last checkpoint. A trial whose own code
            raises is not retried: it ends FAIL with the error recorded.
        reuse_finished: Answer a proposal that repeats a configuration this trainer
            already completed from the record instead of training it again.
        resume_stopped: Train a proposal that repeats a configuration the scheduler
            stopped on from that trial's last checkpoint (see :meth:`Study.run`).
        tensorboard: A directory to write one TensorBoard run per trial into (every
            per-epoch metric, and the trial's hyperparameters with its final objective
            values for TensorBoard's HParams view); None writes none. Not stored.
        metrics_port: Serve the driver's metrics for Prometheus on this port (0: a
            free one, shown when the run starts); None serves none. Not stored.
        metrics_host: The address that port listens on: ``127.0.0.1`` (this machine
            only) by default. Not stored.

    See docs/monitoring.md for what the monitors show.

    The mappings are kept as read-only views; settings compare by value but are not
    hashable.

    Raises:
        ValueError: for a setting out of range, an unknown scheduler or option.
        TypeError: for scheduler options that are not a mapping.
    """

    num_trials: int = 20
    max_concurrent: int = 2
    scheduler: str = "fifo"
    scheduler_options: Mapping[str, int] = field(default_factory=dict)
    resources_per_trial: Mapping[str, float] = field(default_factory=lambda: {"cpu": 1})
    address: str | None = None
    run_dir: str | None = None
    max_retries: int = 2
    reuse_finished: bool = True
    resume_stopped: bool = False
    tensorboard: str | None = None
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        for label in ("num_trials", "max_concurrent"):
            v = getattr(self, label)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{label} must be a positive integer, got {v!r}.")
        retries = self.max_retries
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(
                f"max_retries must be an integer >= 0 (restarts of a trial whose worker "
                f"died), got {retries!r}."
            )
        for label in ("reuse_finished", "resume_stopped"):
            if not isinstance(getattr(self, label), bool):
                raise ValueError(f"{label} must be True or False, got {getattr(self, label)!r}.")
        scheduler = self.scheduler or "fifo"
        if scheduler not in SCHEDULERS:
            raise ValueError(f"Unknown scheduler {scheduler!r}; choose one of {list(SCHEDULERS)}.")
        object.__setattr__(self, "scheduler", scheduler)
        options = self.scheduler_options if self.scheduler_options is not None else {}
        scheduler_settings(scheduler, options)  # raises on a bad option
        defaults = SCHEDULERS[scheduler]
        changed = {k: v for k, v in options.items() if defaults[k] != v}
        # Read-only views: a validated setting cannot be changed behind the check.
        object.__setattr__(self, "scheduler_options", MappingProxyType(changed))
        resources = _resources(self.resources_per_trial)
        object.__setattr__(self, "resources_per_trial", MappingProxyType(resources))
        _check_address(self.address)
        if self.run_dir is not None and (not isinstance(self.run_dir, str) or not self.run_dir):
            raise ValueError(f"run_dir must be a directory path or None, got {self.run_dir!r}.")
        self._check_monitoring()

    def _check_monitoring(self) -> None:
        board = self.tensorboard
        if isinstance(board, os.PathLike):
            board = os.fspath(board)
            object.__setattr__(self, "tensorboard", board)
        if board is not None and (not isinstance(board, str) or not board):
            raise ValueError(f"tensorboard must be a directory path or None, got {board!r}.")
        port = self.metrics_port
        if port is not None and (
            isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535
        ):
            raise ValueError(
                f"metrics_port must be a port number from 0 (any free port) to 65535, or "
                f"None, got {port!r}."
            )
        host = self.metrics_host
        if not isinstance(host, str) or not host.strip():
            raise ValueError(
                f"metrics_host must be an address to listen on such as '127.0.0.1', got {host!r}."
            )

    def scheduler_config(self) -> dict[str, int]:
        """The scheduler's options: archtune's defaults updated with :attr:`scheduler_options`."""
        return scheduler_settings(self.scheduler, self.scheduler_options)

    def to_json(self) -> dict[str, Any]:
        """Every setting but :attr:`address` and the monitors' (where to run and how
        to watch it are the resumer's choice), with the scheduler's options in full."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in _NOT_STORED:
            data.pop(name)
        data["scheduler_options"] = self.scheduler_config()
        data["resources_per_trial"] = dict(self.resources_per_trial)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunSettings:
        """The settings :meth:`to_json` stored (older studies lack some: defaults apply)."""
        names = {f.name for f in dataclasses.fields(cls)} - set(_NOT_STORED)
        return cls(**{k: v for k, v in data.items() if k in names})


def scheduler_settings(name: str, options: Any) -> dict[str, int]:
    """Scheduler ``name``'s options: archtune's defaults updated with ``options``.

    Every option counts epochs or trials and must be a positive integer
    (``reduction_factor`` at least 2).

    Raises:
        TypeError: if ``options`` is not a mapping.
        ValueError: for an option the scheduler does not take, or a bad value.

    Example:
        >>> scheduler_settings("asha", {"grace_period": 3})
        {'grace_period': 3, 'reduction_factor': 3, 'brackets': 1}
    """
    known = SCHEDULERS[name]
    if options is None:
        return dict(known)
    if not isinstance(options, Mapping):
        raise TypeError(
            f"scheduler_options must be a dict such as {known}, got {type(options).__name__}."
        )
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(
            f"Scheduler {name!r} takes no option(s) {unknown}; it takes {sorted(known) or 'none'}."
        )
    for key, v in options.items():
        least = 2 if key == "reduction_factor" else 1
        if isinstance(v, bool) or not isinstance(v, int) or v < least:
            raise ValueError(
                f"scheduler_options[{key!r}] must be an integer >= {least}, got {v!r}."
            )
    return {**known, **dict(options)}


def run_record(
    settings: RunSettings, controller: ControllerSpec, finished_before: int
) -> dict[str, Any]:
    """What a study stores of a run: its settings, its controller and the trials trained
    before it (``archtune resume`` runs to ``finished_before + num_trials``)."""
    return {
        **settings.to_json(),
        "controller": controller.to_json(),
        "finished_before": finished_before,
    }


def load_run_record(data: Mapping[str, Any]) -> tuple[RunSettings, ControllerSpec, int]:
    """The settings, controller and trial count :func:`run_record` stored."""
    settings = RunSettings.from_json(data)
    controller = ControllerSpec.from_json(data.get("controller", "tpe"))
    return settings, controller, int(data.get("finished_before", 0))


def _resources(resources: Any) -> dict[str, float]:
    if not isinstance(resources, Mapping):
        raise ValueError(
            f"resources_per_trial must be a dict such as {{'cpu': 1, 'gpu': 0}}, "
            f"got {resources!r}."
        )
    out = dict(resources)
    for key, v in out.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise ValueError(f"resources_per_trial[{key!r}] must be a number >= 0, got {v!r}.")
    if out.get("cpu", 0) + out.get("gpu", 0) <= 0:
        raise ValueError("resources_per_trial needs a positive 'cpu' or 'gpu' count.")
    placement(out)  # checks the data-parallel workers ('workers', 'gpu')
    return out


def _check_address(address: Any) -> None:
    if address is None:
        return
    if not isinstance(address, str) or not (
        address == "auto" or address.startswith(("ray://", "localhost:")) or ":" in address
    ):
        raise ValueError(
            f"address {address!r} is not a Ray address; use None (local), 'auto' "
            "or 'ray://HOST:10001'."
        )
