"""Which process runs a study, and whether it is alive: the driver's lease.

A driver that runs a study holds one row of ``archtune_drivers`` (host, pid, the
process's start time, since when) and renews its heartbeat every :data:`HEARTBEAT_S`
seconds from a background thread, on its own connection; it deletes the row when it
stops, however it stops short of being killed. Whether a driver is **alive** is decided
on its own host by its process (the same pid with the same start time), whatever its
heartbeat (a heartbeat held up by a busy database does not make it dead), so a driver
killed with SIGKILL is known dead at once there; from another host, by its heartbeat,
younger than :data:`STALE_AFTER_S` (three times SQLite's busy timeout). Two machines with
the same host name (containers) would mistake each other's drivers: give them distinct
host names.

If another process judged this driver dead and deleted its lease, the heartbeat finds
its row gone: :attr:`Lease.lost` is set, and the run stops as on Ctrl-C.

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
import shlex
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import psutil
import sqlalchemy as sa

from studies.storage import DriverRow, Storage

HEARTBEAT_S = 5.0  # how often a driver renews its lease
STALE_AFTER_S = 90.0  # seen from another host, a lease not renewed this long is dead

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
    process_start: float
    started_at: datetime
    beat_at: datetime

    def alive(self, now: datetime | None = None) -> bool:
        """Whether the driver still runs: on this host its process, elsewhere a recent
        heartbeat (see the module doc)."""
        if self.host == socket.gethostname():
            return _process_start(self.pid) == self.process_start
        return (now or _now()) - self.beat_at <= timedelta(seconds=STALE_AFTER_S)

    def describe(self) -> str:
        """``pid 12 on host h since 2026-12-06 21:00 UTC (last heartbeat 3 s ago)``."""
        ago = max(0.0, (_now() - self.beat_at).total_seconds())
        since = self.started_at.strftime("%Y-%m-%d %H:%M:%S")
        return (
            f"pid {self.pid} on host {self.host} since {since} UTC "
            f"(last heartbeat {ago:.0f} s ago)"
        )


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (rounded to 10 ms), or None when there is none."""
    try:
        return round(psutil.Process(pid).create_time(), 2)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:  # another user's process: its start time is readable
        return None


def drivers(storage: Storage, study_id: int) -> list[Driver]:
    """Every lease recorded for the study, live or not, oldest first."""
    with storage.session() as s:
        rows = s.scalars(
            sa.select(DriverRow).where(DriverRow.study_id == study_id).order_by(DriverRow.id)
        )
        return [_driver(r) for r in rows]


def _driver(row: DriverRow) -> Driver:
    return Driver(row.id, row.host, row.pid, row.process_start, row.started_at, row.beat_at)


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
            f"then `archtune resume {shlex.quote(study_name)}`."
        )


class Lease:
    """This process's lease on a study; renewed by a daemon thread until released.

    Use :meth:`acquire`; call :meth:`release` when the run ends (also after an error).
    """

    def __init__(self, storage: Storage, row_id: int) -> None:
        self.storage, self.id = storage, row_id
        self.lost = threading.Event()  # another process deleted this lease
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
            # Only the leases read here and found dead: one another driver adds meanwhile
            # stays, and the check below settles which of the two keeps the study.
            rows = s.scalars(sa.select(DriverRow).where(DriverRow.study_id == study_id))
            stale = [r.id for r in rows if not _driver(r).alive(now)]
            if stale:
                s.execute(sa.delete(DriverRow).where(DriverRow.id.in_(stale)))
            row = DriverRow(
                study_id=study_id,
                host=socket.gethostname(),
                pid=os.getpid(),
                process_start=_process_start(os.getpid()) or 0.0,
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
            logger.warning("archtune: could not release the driver lease: %s", _reason(e))

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                with self.storage.session() as s:
                    renewed = s.execute(
                        sa.update(DriverRow).where(DriverRow.id == self.id).values(beat_at=_now())
                    ).rowcount
            except sa.exc.SQLAlchemyError as e:  # a busy database: try again next beat
                logger.warning("archtune: driver heartbeat failed, retrying: %s", _reason(e))
                continue
            if not renewed:
                logger.error("archtune: another process took over this study; stopping")
                self.lost.set()
                return


def _reason(error: BaseException) -> str:
    """A database error in one line: the driver's message, without SQLAlchemy's SQL,
    parameters and "Background on this error" link."""
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
