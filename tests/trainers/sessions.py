"""Trial sessions for the trainer tests."""

from __future__ import annotations

from trainers import LocalSession


class Stop(Exception):
    """Raised by :class:`StopAfter`, as if the trial's worker died."""


class StopAfter:
    """A session that records into ``inner`` and stops the run after ``n`` reports."""

    workers = 1

    def __init__(self, inner: LocalSession, n: int) -> None:
        self.inner, self.n = inner, n

    def report(self, metrics, checkpoint=None) -> None:
        self.inner.report(metrics, checkpoint)
        if len(self.inner.history) >= self.n:
            raise Stop

    def restore(self):
        return None
