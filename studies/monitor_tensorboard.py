"""TensorBoard event files of a running study, written by the driver.

``RunSettings(tensorboard=DIR)`` (``archtune run --tensorboard DIR``) writes one
TensorBoard run per trial, ``DIR/<study>/trial-00007`` (the study's
:func:`~studies.names.file_slug`, the trial number), so ``tensorboard --logdir DIR``
compares trials, and several studies can share ``DIR``:

- every per-epoch metric the recorder stores, as a scalar of that name at step
  ``epoch`` (``val_acc``, ``train_loss``, ``peak_rss_mb``, ...);
- the trial's hyperparameters (Optuna's parameter names, e.g. ``model/depth``) as an
  HParams session, started when the trial is proposed and ended when it is told
  (status success for COMPLETE and PRUNED, failure for FAIL; an interrupted trial's
  session stays open and goes on at the next run);
- its final objective values (as Optuna recorded them) as scalars
  ``objective/<name>`` at its last epoch: the HParams view's metrics.

No HParams experiment summary is written: TensorBoard builds one from the sessions
(every hyperparameter any trial had, every scalar as a metric), so conditional spaces
and several studies in one directory show whole.

Only the driver writes: the hooks queue each event and a thread of the monitor writes
it and flushes as soon as it has caught up, so a TensorBoard watching the directory
shows each epoch as it is recorded, and Ray Tune's loop never waits for the disk. The
file format is tensorboardX's (which Ray Tune depends on already).

Example:
    >>> import tempfile
    >>> from studies.objectives import Objectives
    >>> board = TensorBoardMonitor(tempfile.mkdtemp())
    >>> board.run_started("demo", Objectives.parse("val_acc", "maximize"), [])
    >>> board.trial_started(0, {"model/depth": 2, "train/lr": 0.01})
    >>> board.epoch(0, 1, {"epoch": 1, "val_acc": 0.8})
    >>> board.trial_finished(TrialEnd(0, "COMPLETE", (0.8,)))
    >>> board.close()  # writes what is queued
    >>> sorted(os.listdir(os.path.join(board.logdir, "demo")))
    ['trial-00000']
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from studies.monitor import MonitorError, RunMonitor, TrialEnd
from studies.names import file_slug

if TYPE_CHECKING:
    from studies.objectives import Objectives

PLUGIN = "hparams"  # TensorBoard's HParams plugin, and the tags it reads
SESSION_START_TAG = "_hparams_/session_start_info"
SESSION_END_TAG = "_hparams_/session_end_info"
OBJECTIVE_PREFIX = "objective/"
_SEQ = itertools.count()  # event file names: unique in this process

logger = logging.getLogger(__name__)


def check_logdir(path: str) -> str:
    """``path`` as an absolute directory that exists and takes files (made if missing).

    Raises:
        MonitorError: when it cannot be made or written (one line that says why).

    Example:
        >>> import tempfile
        >>> check_logdir(tempfile.mkdtemp()).startswith("/")
        True
    """
    full = os.path.abspath(os.path.expanduser(path))
    try:
        os.makedirs(full, exist_ok=True)
        with tempfile.TemporaryFile(dir=full):
            pass
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise MonitorError(
            f"The TensorBoard directory {path!r} is not writable ({reason}); give "
            "--tensorboard a directory this process can write."
        ) from None
    return full


class TensorBoardMonitor(RunMonitor):
    """Writes one TensorBoard run per trial under ``logdir`` (see the module docstring).

    The hooks only queue what to write (with the time it happened); a thread of its own
    writes it, in order, and flushes whenever it has caught up, so the disk (an
    ``fsync`` per flush, milliseconds) never holds up Ray Tune's loop. A write that
    fails is logged once and the monitor writes no more. :meth:`flush` waits for what
    is queued; :meth:`close` writes it and closes every file.

    Args:
        logdir: The directory; checked (made, written to) here.

    Raises:
        MonitorError: when ``logdir`` is not writable.
    """

    def __init__(self, logdir: str) -> None:
        self.logdir = check_logdir(logdir)
        self._study_dir = self.logdir
        self._objectives: tuple[str, ...] = ()
        self._writers: dict[int, Any] = {}  # open trials' tensorboardX EventsWriter
        self._steps: dict[int, int] = {}  # their last recorded epoch
        self._dirty: set[int] = set()  # written since the last flush
        self._failed = False
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._drain, name="archtune-tensorboard")
        self._thread.daemon = True
        self._thread.start()

    def run_started(
        self, study: str, objectives: Objectives, best: Sequence[Sequence[float]]
    ) -> None:
        self._queue.put(partial(self._started, file_slug(study), tuple(objectives.names)))

    def trial_started(self, number: int, params: Mapping[str, Any]) -> None:
        summary = _session_start(params, time.time())
        self._queue.put(partial(self._write, number, summary, None, time.time()))

    def epoch(self, number: int, step: int, metrics: Mapping[str, Any]) -> None:
        values = {k: v for k, v in metrics.items() if k != "epoch" and _is_number(v)}
        self._queue.put(partial(self._write, number, _scalars(values), step, time.time()))

    def trial_finished(self, end: TrialEnd) -> None:
        self._queue.put(partial(self._finished, end, time.time()))

    def where(self) -> list[str]:
        return [f"TensorBoard: tensorboard --logdir {self.logdir}"]

    def flush(self) -> None:
        """Wait until everything queued is written and flushed."""
        self._queue.join()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def run_dir(self, number: int) -> str:
        """The TensorBoard run (a directory) of trial ``number``."""
        return os.path.join(self._study_dir, f"trial-{number:05d}")

    # On the writer thread ---------------------------------------------------------
    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if not self._failed:
                    item()
                    if self._queue.empty():  # caught up: make it visible
                        for number in self._dirty & set(self._writers):
                            self._writers[number].flush()
                        self._dirty.clear()
            except Exception as e:  # watching never stops the run
                self._failed = True
                logger.warning("archtune: writing TensorBoard files failed (%s); stopped.", e)
            finally:
                self._queue.task_done()

    def _started(self, slug: str, objectives: tuple[str, ...]) -> None:
        self._study_dir = os.path.join(self.logdir, slug)
        self._objectives = objectives

    def _finished(self, end: TrialEnd, when: float) -> None:
        step = self._steps.pop(end.number, 0)
        if end.values is not None:
            names = [OBJECTIVE_PREFIX + n for n in self._objectives]
            values = _scalars(dict(zip(names, end.values, strict=False)))
            self._write(end.number, values, step, when)
        if end.state != "INTERRUPTED":  # its session goes on at the next run
            self._write(end.number, _session_end(end.state, when), None, when)
        self._dirty.discard(end.number)
        self._writers.pop(end.number).close()  # flushed

    def _write(self, number: int, summary: Any, step: int | None, when: float) -> None:
        from tensorboardX.proto.event_pb2 import Event

        writer = self._writers.get(number)
        if writer is None:
            from tensorboardX.event_file_writer import EventsWriter

            path = self.run_dir(number)
            os.makedirs(path, exist_ok=True)
            suffix = f".{os.getpid()}.{next(_SEQ)}"
            writer = self._writers[number] = EventsWriter(os.path.join(path, "events"), suffix)
        event = Event(wall_time=when, summary=summary)
        if step is not None:
            event.step = int(step)
            self._steps[number] = max(step, self._steps.get(number, step))
        writer.write_event(event)
        self._dirty.add(number)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _scalars(values: Mapping[str, float]) -> Any:
    from tensorboardX.proto.summary_pb2 import Summary

    return Summary(value=[Summary.Value(tag=k, simple_value=float(v)) for k, v in values.items()])


_STATUS = {"COMPLETE": "STATUS_SUCCESS", "PRUNED": "STATUS_SUCCESS", "FAIL": "STATUS_FAILURE"}


def _session_start(params: Mapping[str, Any], began: float) -> Any:
    """The HParams plugin's session start: the trial's hyperparameters."""
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData, SessionStartInfo

    info = SessionStartInfo(start_time_secs=began)
    for name, value in params.items():
        _set_value(info.hparams[name], value)
    return _plugin_summary(SESSION_START_TAG, HParamsPluginData(session_start_info=info))


def _session_end(state: str, ended: float) -> Any:
    """The HParams plugin's session end: how the trial ended (see :data:`_STATUS`)."""
    from tensorboardX.proto.api_pb2 import Status
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData, SessionEndInfo

    status = Status.Value(_STATUS.get(state, "STATUS_UNKNOWN"))
    info = SessionEndInfo(status=status, end_time_secs=ended)
    return _plugin_summary(SESSION_END_TAG, HParamsPluginData(session_end_info=info))


def _plugin_summary(tag: str, data: Any) -> Any:
    from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata

    data.version = 0  # the plugin's data format
    plugin = SummaryMetadata.PluginData(plugin_name=PLUGIN, content=data.SerializeToString())
    return Summary(value=[Summary.Value(tag=tag, metadata=SummaryMetadata(plugin_data=plugin))])


def _set_value(slot: Any, value: Any) -> None:
    """A ``google.protobuf.Value`` for one hyperparameter: a number, a bool or text."""
    if isinstance(value, bool):
        slot.bool_value = value
    elif isinstance(value, (int, float)) and math.isfinite(value):
        slot.number_value = float(value)
    else:
        slot.string_value = str(value)
