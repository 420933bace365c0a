"""What the dashboard server keeps between requests: each open study, kept up to date by
polls, and figures too heavy for a request (importance), computed in the background.

A study page's first figure comes from :meth:`StudyReader.outline
<studies.reads.StudyReader.outline>` (numbers, states, values, times: fast at 100,000
trials). Everything else needs the whole study: a :class:`LiveStudies` loads it once in a
background thread, then brings it up to date with :meth:`StudyReader.poll
<studies.reads.StudyReader.poll>` (trials newer than the last seen, plus those still
running), at most once per ``min_interval_s`` whatever the number of open pages. Each
change bumps the study's ``version``, so a page redraws only when something changed.

Example:
    >>> import os, tempfile, optuna
    >>> from studies.readonly import open_readonly
    >>> from studies.reads import StudyReader
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "l.db")
    >>> study = optuna.create_study(study_name="s", storage=url)
    >>> study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    >>> live = LiveStudies(StudyReader(open_readonly(url)), min_interval_s=0)
    >>> live.wait("s").version, len(live.get("s").record.trials)
    (1, 2)
    >>> study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    >>> len(live.get("s").record.trials), live.get("s").version
    (3, 2)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any

from studies.reads import Cursor, StudyReader
from studies.records import StudyRecord

__all__ = ["Cached", "LiveStudies", "Snapshot", "in_background"]


@dataclass(frozen=True)
class Snapshot:
    """A study as last read.

    Attributes:
        record: The whole study (None while it first loads).
        version: Bumped each time the record changes (0: not loaded yet).
        live: Whether a live driver runs it.
        error: Why the last read failed, if it did (the record stays the last good one).
    """

    record: StudyRecord | None
    version: int
    live: bool = False
    error: str | None = None


class _Entry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.snapshot = Snapshot(None, 0)
        self.cursor: Cursor | None = None
        self.trials: dict[int, Any] = {}
        self.polled = 0.0
        self.loading: Future | None = None


class LiveStudies:
    """Open studies, kept up to date by polls; shared by every request of a server.

    Args:
        reader: Where to read.
        min_interval_s: Polls of one study closer together than this are skipped.
        max_studies: How many studies are kept (the least recently asked are dropped).
    """

    def __init__(
        self, reader: StudyReader, min_interval_s: float = 1.0, max_studies: int = 8
    ) -> None:
        self.reader = reader
        self.min_interval_s = min_interval_s
        self.max_studies = max_studies
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Snapshot:
        """Study ``name`` as now known; starts loading it (in the background) if needed,
        and polls it if the last poll is older than ``min_interval_s``. Never waits for a
        load or a poll that another request runs."""
        entry = self._entry(name)
        if entry.snapshot.version == 0:
            with self._lock:
                if entry.loading is None or entry.loading.done():  # (again, after an error)
                    entry.loading = in_background(self._refresh, name, entry, True)
            return entry.snapshot
        if time.monotonic() - entry.polled >= self.min_interval_s:
            self._refresh(name, entry)
        return entry.snapshot

    def peek(self, name: str) -> Snapshot:
        """Study ``name`` as last read, without polling or loading it."""
        return self._entry(name).snapshot

    def wait(self, name: str, timeout: float | None = None) -> Snapshot:
        """Study ``name``, loaded (blocks until it is)."""
        self.get(name)
        loading = self._entry(name).loading
        if loading is not None:
            loading.result(timeout)
        return self._entry(name).snapshot

    def close(self) -> None:
        """Drop the studies held (a load in progress finishes in its daemon thread)."""
        with self._lock:
            self._entries.clear()

    def _entry(self, name: str) -> _Entry:
        with self._lock:
            entry = self._entries.pop(name, None) or _Entry()
            self._entries[name] = entry  # most recently asked last
            while len(self._entries) > self.max_studies:
                self._entries.pop(next(iter(self._entries)))
            return entry

    def _refresh(self, name: str, entry: _Entry, wait: bool = False) -> None:
        """Poll study ``name`` and fold what changed into its record (skipped if another
        request polls it now, unless ``wait``)."""
        if not entry.lock.acquire(blocking=wait):
            return
        try:
            entry.polled = time.monotonic()
            try:
                found = self.reader.poll(name, entry.cursor)
                head = entry.snapshot.record
                if head is None or found.reset:  # first read, or the study was made again
                    head = self.reader.study(name)
            except Exception as e:  # the last good record stays; the page says why
                entry.snapshot = replace(entry.snapshot, error=str(e))
                return
            if found.reset:
                entry.trials = {}
            for trial in found.trials:
                entry.trials[trial.number] = trial
            entry.cursor = found.cursor
            changed = found.reset or bool(found.trials) or found.live != entry.snapshot.live
            if changed or entry.snapshot.version == 0:
                trials = [entry.trials[n] for n in sorted(entry.trials)]
                record = replace(head, trials=trials)
                entry.snapshot = Snapshot(record, entry.snapshot.version + 1, found.live)
            elif entry.snapshot.error:
                entry.snapshot = replace(entry.snapshot, error=None)
        finally:
            entry.lock.release()


def in_background(fn: Callable[..., Any], *args: Any) -> Future:
    """``fn(*args)`` in a daemon thread: the server's exit (Ctrl-C) never waits for a
    load or an importance computation, as it would for a ``ThreadPoolExecutor``'s."""
    future: Future = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn(*args))
        except BaseException as e:  # the future holds it
            future.set_exception(e)

    threading.Thread(target=run, name="archtune-dashboard", daemon=True).start()
    return future


class Cached:
    """Values computed in the background and kept under a key (e.g. a study's importance,
    by its number of finished trials): off the request path, once per key. A newer key of
    the same name replaces the older one.

    Example:
        >>> cache = Cached()
        >>> cache.get("x", 1, lambda: 42) is None  # not ready: computing
        True
        >>> cache.wait("x", 1)
        42
    """

    def __init__(self, max_items: int = 16) -> None:
        self._max = max_items
        self._done: dict[tuple[str, Any], Any] = {}
        self._running: dict[tuple[str, Any], Future] = {}
        self._lock = threading.Lock()

    def get(self, name: str, key: Any, compute: Callable[[], Any]) -> Any:
        """The value for ``(name, key)``, or None while ``compute()`` runs (started here if
        it is not running). An exception it raised is returned as the value."""
        with self._lock:
            if (name, key) in self._done:
                return self._done[(name, key)]
            if (name, key) not in self._running:
                self._running[(name, key)] = in_background(self._run, name, key, compute)
        return None

    def wait(self, name: str, key: Any, timeout: float | None = None) -> Any:
        """The value for ``(name, key)`` once computed (it must have been asked for)."""
        with self._lock:
            future = self._running.get((name, key))
        if future is not None:
            future.result(timeout)
        return self._done[(name, key)]

    def close(self) -> None:
        """Drop the values held (a computation in progress ends in its daemon thread)."""
        with self._lock:
            self._done.clear()

    def _run(self, name: str, key: Any, compute: Callable[[], Any]) -> None:
        try:
            value = compute()
        except Exception as e:  # shown in place of the figure
            value = e
        with self._lock:
            self._done[(name, key)] = value
            self._running.pop((name, key), None)
            for old in [k for k in self._done if k[0] == name and k != (name, key)]:
                self._done.pop(old)
            while len(self._done) > self._max:
                self._done.pop(next(iter(self._done)))
