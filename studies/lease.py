"""Which process runs a study, and whether it is alive: the driver's lease.

A driver that runs a study holds one row of ``archtune_drivers`` (host, pid, since when)
and renews its heartbeat every :data:`HEARTBEAT_S` seconds from a background thread, on
its own connection; it deletes the row when it stops, however it stops short of being
killed. A driver is **alive** while its heartbeat is younger than :data:`STALE_AFTER_S`
and, when it runs on this host, its process exists (so a driver killed with SIGKILL is
known dead at once on its own machine, and after :data:`STALE_AFTER_S` elsewhere).

One live driver per study: a second ``archtune run`` or an ``archtune resume`` of a study
whose driver is alive refuses, saying which process holds it (two drivers would train
the same configurations twice and overwrite each other's run record). Once the driver is
gone, its trials still RUNNING were interrupted, and the next run trains them again from
their checkpoints (:mod:`studies.recorder`).

Example:
    >>> import os, tempfile
    >>> from studies.storage import open_storage
    >>> storage = open_storage("sqlite:///" + os.path.join(tempfile.mkdtemp(), "a.db"))
    >>> lease = Lease.acquire(storage, study_id=1, study_name="demo")
    >>> [d.pid for d in live_drivers(storage, 1)] == [os.getpid()]
    True
    >>> lease.release()
    >>> live_drivers(storage, 1)
    []
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from studies.storage import DriverRow, Storage

HEARTBEAT_S = 5.0  # how often a driver renews its lease
STALE_AFTER_S = 30.0  # a lease not renewed for this long belongs to a dead driver

logger = logging.getLogger(__name__)


class DriverAlive(ValueError):
    """The study is being run by a live driver; the message says which."""


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class Driver:
    """A driver's lease as recorded (times in UTC)."""

    id: int
    host: str
    pid: int
    started_at: datetime
    beat_at: datetime

    def alive(self, now: datetime | None = None) -> bool:
        """Whether the driver still runs: a recent heartbeat and, on this host, its process."""
        now = now or _now()
        if now - self.beat_at > timedelta(seconds=STALE_AFTER_S):
            return False
        return self.host != socket.gethostname() or _process_exists(self.pid)

    def describe(self) -> str:
        """``pid 12 on host h since 2026-12-06 21:00 UTC (last heartbeat 3 s ago)``."""
        ago = max(0.0, (_now() - self.beat_at).total_seconds())
        since = self.started_at.strftime("%Y-%m-%d %H:%M:%S")
        return (
            f"pid {self.pid} on host {self.host} since {since} UTC "
            f"(last heartbeat {ago:.0f} s ago)"
        )


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def drivers(storage: Storage, study_id: int) -> list[Driver]:
    """Every lease recorded for the study, live or not, oldest first."""
    with storage.session() as s:
        rows = s.scalars(
            sa.select(DriverRow).where(DriverRow.study_id == study_id).order_by(DriverRow.id)
        )
        return [Driver(r.id, r.host, r.pid, r.started_at, r.beat_at) for r in rows]


def live_drivers(storage: Storage, study_id: int) -> list[Driver]:
    """The leases of the study whose drivers are alive."""
    now = _now()
    return [d for d in drivers(storage, study_id) if d.alive(now)]


def refuse_if_driven(storage: Storage, study_id: int, study_name: str, doing: str) -> None:
    """Raise :class:`DriverAlive` if a live driver runs the study.

    Args:
        doing: What was refused, e.g. ``"resume it"``, for the message.
    """
    live = live_drivers(storage, study_id)
    if live:
        raise DriverAlive(
            f"Study {study_name!r} is being run by a live driver, {live[0].describe()}; "
            f"cannot {doing} while it runs. Wait for it to finish, or stop it (Ctrl-C) and "
            f"then `archtune resume {study_name}`."
        )


class Lease:
    """This process's lease on a study; renewed by a daemon thread until released.

    Use :meth:`acquire`; call :meth:`release` when the run ends (also after an error).
    """

    def __init__(self, storage: Storage, row_id: int) -> None:
        self.storage, self.id = storage, row_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="archtune-lease", daemon=True)
        self._thread.start()

    @classmethod
    def acquire(cls, storage: Storage, study_id: int, study_name: str) -> Lease:
        """Take the study for this process.

        Raises:
            DriverAlive: if another live driver runs the study (of two that start at the
                same moment, the one recorded first keeps it).
        """
        refuse_if_driven(storage, study_id, study_name, "run it")
        now = _now()
        with storage.session() as s:
            stale = [d.id for d in drivers(storage, study_id)]  # none is alive
            if stale:
                s.execute(sa.delete(DriverRow).where(DriverRow.id.in_(stale)))
            row = DriverRow(
                study_id=study_id,
                host=socket.gethostname(),
                pid=os.getpid(),
                started_at=now,
                beat_at=now,
            )
            s.add(row)
            s.flush()
            row_id = row.id
        earlier = [d for d in live_drivers(storage, study_id) if d.id < row_id]
        if earlier:  # another driver started at the same moment and was recorded first
            with storage.session() as s:
                s.execute(sa.delete(DriverRow).where(DriverRow.id == row_id))
            refuse_if_driven(storage, study_id, study_name, "run it")
        return cls(storage, row_id)

    def release(self) -> None:
        """Stop the heartbeat and delete the lease (the study is free)."""
        self._stop.set()
        self._thread.join(timeout=HEARTBEAT_S * 2)
        try:
            with self.storage.session() as s:
                s.execute(sa.delete(DriverRow).where(DriverRow.id == self.id))
        except sa.exc.SQLAlchemyError as e:  # the lease goes stale by itself
            logger.warning("archtune: could not release the driver lease: %s", e)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                with self.storage.session() as s:
                    s.execute(
                        sa.update(DriverRow).where(DriverRow.id == self.id).values(beat_at=_now())
                    )
            except sa.exc.SQLAlchemyError as e:  # a busy database: try again next beat
                logger.warning("archtune: driver heartbeat failed, retrying: %s", e)
