"""An ordered background writer: database writes off Ray Tune's event loop.

Ray Tune calls searchers and callbacks from one driver loop, and a function trainable
waits in ``tune.report`` until the driver has handled its result, so every millisecond
spent writing there sits on some trial's critical path. The recorder hands its
per-epoch and end-of-trial writes to this single thread instead, which applies them in
the order they were submitted. It is still the driver that writes; workers never do.

A submitted write that fails because the database is busy (a lock held past SQLite's
busy timeout, a PostgreSQL deadlock or serialization failure: errors after which the
transaction was rolled back) is tried again, up to :data:`RETRIES` times with a doubling
pause, each retry logged; submitted calls must therefore be safe to run again (one
transaction each, or idempotent ones in a row). Any other failure, or a database that
stays busy, stops the writer: the next ``submit``, ``call``, ``flush`` or ``close`` raises
:class:`WriterError` and the run stops, with what was written before intact. A ``call``
(a proposal: several writes that are not safe to repeat) is not tried again.

Every Optuna write of a run goes through one writer: ``submit`` for those nobody waits
for, ``call`` for those whose result is needed now (a proposal: it runs after every
write submitted before it, so the controller sees every earlier result).

``on_write(op, seconds)``, when given, is told how long each submitted write that
succeeded took (calls, such as the controller's proposal, are not writes)
(its retries included; ``op`` is the function's name without a leading underscore), on
the writer thread; what it raises is ignored (the run's monitors, :mod:`studies.monitor`).

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

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import sqlalchemy as sa

T = TypeVar("T")

logger = logging.getLogger(__name__)

RETRIES = 6  # tries after the first, for a busy database: 0.5 + 1 + ... + 10 s of pauses
BACKOFF_S = 0.5
MAX_PAUSE_S = 10.0
_BUSY = (  # errors after which the failed transaction was rolled back
    "database is locked",
    "database is busy",
    "could not obtain lock",
    "deadlock detected",
    "could not serialize",
)


def transient(error: BaseException) -> bool:
    """Whether ``error`` is a busy or dropped database, which may pass if tried again.

    Example:
        >>> import sqlite3
        >>> transient(sa.exc.OperationalError("INSERT", {}, sqlite3.OperationalError(
        ...     "database is locked")))
        True
        >>> transient(ValueError("bad value"))
        False
    """
    database = database_error(error)
    if database is None:
        return False
    text = str(getattr(database, "orig", None) or database).lower()
    return any(word in text for word in _BUSY)


def database_error(error: BaseException | None) -> BaseException | None:
    """The SQLAlchemy error behind ``error`` (Optuna wraps it in its
    ``StorageInternalError``; Ray in its ``TuneError``), or None when there is none."""
    seen = 0
    while error is not None and seen < 16:
        if isinstance(error, sa.exc.SQLAlchemyError):
            return error
        error, seen = error.__cause__ or error.__context__, seen + 1
    return None


class WriterError(RuntimeError):
    """A background write failed; raised by the next ``submit``, ``flush`` or ``close``."""


class OrderedWriter:
    """Runs submitted calls one at a time, in order, on a daemon thread.

    Thread-safety: ``submit``, ``flush`` and ``close`` are for one producer thread.
    """

    def __init__(
        self,
        name: str = "archtune-writer",
        retries: int = RETRIES,
        backoff_s: float = BACKOFF_S,
        on_write: Callable[[str, float], None] | None = None,
    ) -> None:
        self.retries, self.backoff_s = retries, backoff_s
        self.on_write = on_write
        self.retried = 0  # writes tried again because the database was busy
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)`` after everything submitted before."""
        self._raise_if_failed()
        if not self._thread.is_alive():
            raise WriterError("The writer is closed.")
        self._queue.put((fn, args, None))

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` after everything submitted before, and return its result.

        An exception ``fn`` raises is raised here (and does not stop the writer).
        """
        self._raise_if_failed()
        if not self._thread.is_alive():
            raise WriterError("The writer is closed.")
        future: Future[T] = Future()
        self._queue.put((fn, args, future))
        result = future.result()
        return result

    @property
    def failed(self) -> bool:
        """Whether a write failed (later ones are not applied)."""
        return self._error is not None

    @property
    def error(self) -> BaseException | None:
        """The first write's failure, if one failed."""
        return self._error

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
                fn, args, future = item
                began = time.perf_counter()
                if future is not None:  # a call (e.g. the controller's proposal): not timed
                    _run_into(future, fn, args, self._error)
                elif self._error is None:  # after a failure, later writes could be wrong
                    self._attempt(fn, args)
                    self._timed(fn, time.perf_counter() - began)
            except BaseException as e:  # the caller sees it as WriterError; one line here
                logger.error("archtune: a database write failed: %s", _first_line(e))
                self._error = e
            finally:
                self._queue.task_done()

    def _timed(self, fn: Callable[..., Any], seconds: float) -> None:
        if self.on_write is None or self._error is not None:
            return
        with contextlib.suppress(Exception):  # watching never stops the writes
            self.on_write(getattr(fn, "__name__", "write").lstrip("_"), seconds)

    def _attempt(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        """``fn(*args)``, tried again while the database is busy (see the module doc)."""
        for attempt in range(self.retries + 1):
            try:
                return fn(*args)
            except Exception as e:
                if attempt == self.retries or not transient(e):
                    raise
                pause = min(MAX_PAUSE_S, self.backoff_s * 2**attempt)
                reason = _first_line(e)
                self.retried += 1
                logger.warning(
                    "archtune: the study database is busy (%s); trying again in %.1f s (%d of %d)",
                    reason,
                    pause,
                    attempt + 1,
                    self.retries,
                )
                time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover


def _first_line(error: BaseException) -> str:
    database = database_error(error) or error
    text = str(getattr(database, "orig", None) or database).strip()
    return text.splitlines()[0] if text else type(error).__name__


_Item = tuple[Callable[..., Any], tuple[Any, ...], "Future[Any] | None"]


def _run_into(
    future: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], error: BaseException | None
) -> None:
    if error is not None:
        future.set_exception(WriterError(f"A database write failed: {error!r}"))
        return
    try:
        future.set_result(fn(*args))
    except BaseException as e:  # the caller gets it
        future.set_exception(e)
