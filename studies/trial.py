"""What runs on the Ray workers: the function trainable and its session.

Kept apart from the driver-side adapters (:mod:`studies.tune_adapter`) and light to
import: a trial actor loads this module, the trainer and the space, and nothing of the
database layer. Torch is imported only by trainers that use it (and for checkpoints).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from ray.exceptions import RayActorError

from spaces.space import SearchSpace
from studies._compat import Checkpoint, get_checkpoint, report
from studies.overhead import SENT_KEY, TIMING_KEYS, stamps
from trainers.base import Trainer
from trainers.distributed import WorkerDied

# Keys of the last report of a trial whose trainer raised: the driver records it FAIL.
ERROR_KEY = "archtune_error"
TRACEBACK_KEY = "archtune_traceback"
# Config keys (removed before the trainer sees the config) of a trial that goes on from a
# stopped one (``Study.run(resume_stopped=True)``): the stopped trial's checkpoint
# directory, and its last report, which the trial sends again before training so that the
# scheduler judges it again at no cost (a function trainable waits at each report until
# Ray lets it go on, and a stop ends it there).
RESUME_KEY = "archtune_resume_from"
RESUME_REPORT_KEY = "archtune_resume_report"
# The Ray node id a report came from: hostname and IP, which Ray adds, do not tell apart
# several Ray nodes on one host (containers, ``ray.cluster_utils.Cluster``).
NODE_KEY = "archtune_node"
# Each report also carries the worker's wall-clock times (studies.overhead.TIMING_KEYS:
# when the trainable started, when training started, when it was sent), from which the
# driver records where the trial's time went.


# What Ray Tune adds to every result (time_total_s, pid, ...), not the trainer's metrics.
_RAY_KEYS = frozenset(
    {
        "done",
        "training_iteration",
        "trial_id",
        "date",
        "timestamp",
        "time_this_iter_s",
        "time_total_s",
        "pid",
        "hostname",
        "node_ip",
        "time_since_restore",
        "iterations_since_restore",
        "checkpoint_dir_name",
        "should_checkpoint",
        "config",
        "experiment_tag",
        "archtune_keys",
        NODE_KEY,
        *TIMING_KEYS,
    }
)


def reported_keys(result: Mapping[str, Any]) -> set[str]:
    """The keys of a Ray result that the trainer reported: those :class:`TuneSession`
    listed in ``archtune_keys``, else every key Ray did not add.

    Example:
        >>> sorted(reported_keys({"val_acc": 0.9, "pid": 7, "time_total_s": 1.0}))
        ['val_acc']
    """
    keys = result.get("archtune_keys")
    if isinstance(keys, (list, tuple)):
        return set(keys)
    return {k for k in result if k not in _RAY_KEYS}


class TuneSession:
    """A :class:`~trainers.TrialSession` inside a Ray Tune function trainable.

    Args:
        workers: Data-parallel workers the trial runs on (``trainers.distributed``).
        resume_from: Checkpoint directory of a stopped trial to go on from, when Ray has
            no checkpoint of this trial's own (a restart after a lost worker has one).
        started: Wall-clock time (``time.time()``) the trainable started; default now.

    Attributes:
        ready: When training started: the trainer's first :meth:`restore` returned
            (None before; a trainer that never calls it starts training at ``started``).
    """

    def __init__(
        self, workers: int = 1, resume_from: str | None = None, started: float | None = None
    ) -> None:
        self.workers = workers
        self.resume_from = resume_from
        self.started = time.time() if started is None else started
        self.ready: float | None = None

    def report(
        self, metrics: Mapping[str, float], checkpoint: dict[str, Any] | None = None
    ) -> None:
        ready = self.started if self.ready is None else self.ready
        payload = {**metrics, "archtune_keys": list(metrics), NODE_KEY: _node_id()}
        payload.update(stamps(self.started, ready))
        if checkpoint is None:
            report(payload)
            return
        from trainers.checkpoint import CHECKPOINT_FILE, save_checkpoint  # imports torch

        with tempfile.TemporaryDirectory() as tmp:
            save_checkpoint(checkpoint, os.path.join(tmp, CHECKPOINT_FILE))
            payload[SENT_KEY] = time.time()  # saving the checkpoint was part of the epoch
            report(payload, checkpoint=Checkpoint.from_directory(tmp))

    def restore(self) -> dict[str, Any] | None:
        try:
            checkpoint = get_checkpoint()
            if checkpoint is None:
                return None if self.resume_from is None else _load(self.resume_from)
            with checkpoint.as_directory() as d:
                return _load(d)
        finally:
            if self.ready is None:  # the first call: start-up ends, training starts
                self.ready = time.time()


def _node_id() -> str | None:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


def _load(directory: str) -> dict[str, Any]:
    """The checkpoint dict in a Ray checkpoint directory, loaded with ``weights_only=True``
    (a resumed trial never unpickles code; see :func:`trainers.checkpoint.safe_load`). The
    trainer checks what it holds (any trainer's dict of tensors and plain values)."""
    from trainers.checkpoint import CHECKPOINT_FILE, safe_load  # imports torch

    return safe_load(os.path.join(directory, CHECKPOINT_FILE))


def make_trainable(
    trainer: Trainer, space: SearchSpace, threads: int, workers: int = 1
) -> Callable[[dict], None]:
    """The Ray Tune function trainable that runs ``trainer`` on each configuration.

    Args:
        trainer: The archtune trainer, shipped to the workers.
        space: The search space (the trainer builds the model from it).
        threads: Intra-op threads for PyTorch in each trial (its CPU share).
        workers: Data-parallel workers of each trial (1: the trial's own process).
    """

    def archtune_trial(config: dict) -> None:
        started = time.time()
        torch = sys.modules.get("torch")  # loaded by a torch trainer when it was unpickled
        if torch is not None:
            torch.set_num_threads(max(1, threads))
        config = dict(config)
        session = TuneSession(workers, resume_from=config.pop(RESUME_KEY, None), started=started)
        again = config.pop(RESUME_REPORT_KEY, None)
        try:
            if again:  # before training: no ready time
                report({**again, "archtune_keys": list(again), **stamps(started)})
            trainer.run(config, space, session)
        except (RayActorError, WorkerDied):
            raise  # a data-parallel worker of the trial died: Ray retries the trial
        except Exception as e:
            # An error raised by the trial's own code (NaN loss, out of memory, a bad
            # configuration) would happen again on a retry: report it and end the trial,
            # so Ray's retries (FailureConfig) are spent only on workers that died.
            report(
                {
                    ERROR_KEY: f"{type(e).__name__}: {e}"[:500],
                    TRACEBACK_KEY: traceback.format_exc(),
                    "archtune_keys": [],
                    **stamps(started, session.ready),
                }
            )

    return archtune_trial
