"""Trial times as views show them: Optuna's ``FrozenTrial`` has them in naive local time,
while Optuna 5.1 stores naive UTC (before, it stored local time: optuna#6776).

:func:`shown_time` converts one; :func:`shown_times` many, looking each UTC hour's offset up
once; :func:`shown_times64` a NumPy array (a study's outline). In an hour in which the
clock changes, each time is converted alone.

Example:
    >>> from datetime import datetime
    >>> at = [datetime(2026, 1, 1, 12, 30), None]
    >>> shown_times(at) == [shown_time(at[0]), None]
    True
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from importlib import import_module

import numpy as np

__all__ = ["STORES_UTC", "hour_offset", "shown_time", "shown_times", "shown_times64"]

# Optuna 5.1 stores naive UTC and shows naive local time; before, it stored local time
# (optuna#6776). Its model says which: the one private name read here, pinned by a test.
STORES_UTC = hasattr(
    import_module("optuna.storages._rdb.models").TrialModel, "_datetime_start_utc"
)


def shown_time(stored: datetime | None) -> datetime | None:
    """A stored trial time as Optuna's ``FrozenTrial`` shows it (naive local time)."""
    if stored is None or not STORES_UTC:
        return stored
    return stored.replace(tzinfo=timezone.utc).astimezone().replace(tzinfo=None)


def shown_times(stored: Iterable[datetime | None]) -> list[datetime | None]:
    """:func:`shown_time` of many times, a third of the cost: the offset of each hour
    (UTC) is looked up once, and a time is shifted by it; within an hour whose two ends
    have different offsets (a clock change), each time is converted alone."""
    if not STORES_UTC:
        return list(stored)
    offsets: dict[datetime, timedelta | None] = {}
    out: list[datetime | None] = []
    for t in stored:
        if t is None:
            out.append(None)
            continue
        hour = t.replace(minute=0, second=0, microsecond=0)
        offset = offsets.get(hour, _UNSEEN)
        if offset is _UNSEEN:
            offset = offsets[hour] = hour_offset(hour)
        out.append(shown_time(t) if offset is None else t + offset)
    return out


_UNSEEN = timedelta(days=-1)  # an offset no zone has: a key not looked up yet
_HOUR_END = timedelta(hours=1, microseconds=-1)


def hour_offset(hour: datetime) -> timedelta | None:
    """The local time's offset from UTC throughout the hour that starts at ``hour`` (UTC),
    or None if it changes within it."""
    start, end = (t.replace(tzinfo=timezone.utc).astimezone() for t in (hour, hour + _HOUR_END))
    return start.utcoffset() if start.utcoffset() == end.utcoffset() else None


def shown_times64(utc: np.ndarray) -> np.ndarray:
    """``datetime64`` stored times as Optuna shows them (naive local time; :func:`shown_time`),
    shifted by each distinct UTC hour's offset, looked up once; in an hour in which the
    clock changes, each time is converted alone (:func:`shown_times`)."""
    if not STORES_UTC or not len(utc):
        return utc
    known = np.flatnonzero(~np.isnat(utc))
    hours = utc[known].astype("datetime64[h]")
    unique, which = np.unique(hours, return_inverse=True)
    offsets = [hour_offset(h) for h in unique.astype(datetime).tolist()]
    if all(o is not None and not o for o in offsets):
        return utc  # the local time is UTC
    shift = np.array([o or timedelta(0) for o in offsets], dtype="timedelta64[us]")
    out = utc.copy()
    out[known] = utc[known] + shift[which]
    for j in np.flatnonzero([o is None for o in offsets]):  # a clock change in the hour
        at = known[which == j]
        one_by_one = shown_times(utc[at].astype(datetime).tolist())
        out[at] = np.array(one_by_one, dtype="datetime64[us]")
    return out
