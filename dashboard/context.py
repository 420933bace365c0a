"""What every page of one dashboard server shares: the reader, the live studies, the
background cache, and how to format what it shows."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from importlib import import_module
from typing import Any

from dashboard.figures import format_value
from dashboard.live import Cached, LiveStudies
from studies.reads import StudyReader

__all__ = ["PLOT_CONFIG", "Context", "duration", "shown_time", "text"]

PLOT_CONFIG = {"displaylogo": False}


@dataclass
class Context:
    """One dashboard server's shared state (thread-safe: the reader keeps none, the live
    studies and the cache lock their own).

    Attributes:
        reader: Reads the database.
        shown: The storage URL as it may be shown (password hidden).
        poll_ms: How often an open page looks for changes.
        live: The open studies, kept up to date.
        cache: Heavy figures (importance), computed in the background.
    """

    reader: StudyReader
    shown: str
    poll_ms: int = 3000
    live: LiveStudies = field(init=False)
    cache: Cached = field(init=False)

    def __post_init__(self) -> None:
        self.live = LiveStudies(self.reader, min_interval_s=min(1.0, self.poll_ms / 2000))
        self.cache = Cached()
        self._warmed = threading.Event()

    def warm_up(self) -> None:
        """Import, in the background and once, what the first trial page would wait for:
        the architecture families and torch (seconds). Called by a page's first poll,
        after it is drawn: at the server's start it slowed the first page down."""
        if not self._warmed.is_set():
            self._warmed.set()
            threading.Thread(target=import_module, args=("spaces.resnet",), daemon=True).start()

    def close(self) -> None:
        """Stop the background threads (what runs finishes; nothing waits for it)."""
        self.live.close()
        self.cache.close()


def text(value: Any) -> str:
    """A value as a page shows it (floats to 6 significant digits, None as "—")."""
    return format_value(value)


def shown_time(when: datetime | None) -> str:
    """A time as the pages show it (the database's local time, to the second)."""
    return "—" if when is None else when.strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    """``"2 h 05 min"``, ``"3 min 07 s"``, ``"4.2 s"``; ``"—"`` when unknown.

    Example:
        >>> duration(4.23), duration(187), duration(7500), duration(None)
        ('4.2 s', '3 min 07 s', '2 h 05 min', '—')
    """
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
