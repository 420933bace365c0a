"""An ordered background writer: database writes off Ray Tune's event loop.

Ray Tune calls searchers and callbacks from one driver loop, and a function trainable
waits in ``tune.report`` until the driver has handled its result, so every millisecond
spent writing there sits on some trial's critical path. The recorder hands its
per-epoch and end-of-trial writes to this single thread instead, which applies them in
the order they were submitted. It is still the driver that writes; workers never do.

Example:
    >>> out = []
    >>> writer = OrderedWriter()
    >>> writer.submit(out.append, 1)
    >>> writer.submit(out.append, 2)
    >>> writer.close()
    >>> out
    [1, 2]
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


class WriterError(RuntimeError):
    """A background write failed; raised by the next ``submit``, ``flush`` or ``close``."""


class OrderedWriter:
    """Runs submitted calls one at a time, in order, on a daemon thread.

    Thread-safety: ``submit``, ``flush`` and ``close`` are for one producer thread.
    """

    def __init__(self, name: str = "archtune-writer") -> None:
        self._queue: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)`` after everything submitted before."""
        self._raise_if_failed()
        if not self._thread.is_alive():
            raise WriterError("The writer is closed.")
        self._queue.put((fn, args))

    def flush(self) -> None:
        """Wait until every submitted call has run."""
        self._queue.join()
        self._raise_if_failed()

    def close(self) -> None:
        """Run what is queued, stop the thread, and raise the first failure, if any."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise WriterError(f"A database write failed: {self._error!r}") from self._error

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                fn, args = item
                if self._error is None:  # after a failure, later writes could be wrong
                    fn(*args)
            except BaseException as e:
                logger.exception("archtune: a database write failed")
                self._error = e
            finally:
                self._queue.task_done()
