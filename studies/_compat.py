"""Ray Tune's run settings and trial session calls, from wherever the installed Ray keeps them.

Ray 2.41 added ``RunConfig``, ``CheckpointConfig``, ``FailureConfig``, ``report``,
``get_checkpoint`` and ``Checkpoint`` to ``ray.tune``, and later Rays want a ``Tuner``
and its function trainables to use those; older ones (down to the floor in pyproject) have
them in ``ray.train`` only. A user who joins a running cluster cannot pick its Ray
version, so the runner (driver side) and ``studies.trial`` (worker side) take them from
here. ``make test-floor`` runs a core suite against the lowest admitted Ray.

Example:
    >>> from studies._compat import RunConfig
    >>> RunConfig(name="demo", verbose=0).name
    'demo'
"""

from __future__ import annotations

try:
    from ray.tune import (
        Checkpoint,
        CheckpointConfig,
        FailureConfig,
        RunConfig,
        get_checkpoint,
        report,
    )
except ImportError:  # Ray before 2.41
    from ray.train import (
        Checkpoint,
        CheckpointConfig,
        FailureConfig,
        RunConfig,
        get_checkpoint,
        report,
    )

__all__ = [
    "Checkpoint",
    "CheckpointConfig",
    "FailureConfig",
    "RunConfig",
    "get_checkpoint",
    "report",
]
