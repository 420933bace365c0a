"""The study database: Optuna's RDB storage plus archtune's own tables beside it.

One SQL database holds a study. Optuna's schema keeps trials, parameters, objective
values and per-epoch intermediate values, so ``optuna.load_study`` and
optuna-dashboard open what archtune writes. Every other per-epoch metric (losses,
accuracies, seconds, samples/s) lives in ``archtune_metrics``, one row per
(trial, step, name), with non-finite values encoded explicitly (SQLite stores NaN as
NULL). Only the driver writes; Ray workers never open the database.

SQLite files are switched to write-ahead logging with ``synchronous=NORMAL``: a crash of
the driver cannot corrupt the file, and a commit costs no ``fsync`` on the hot path.

Example:
    >>> import tempfile, os
    >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "a.db")
    >>> storage = open_storage(url)
    >>> storage.url == url
    True
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import optuna
import sqlalchemy as sa
from sqlalchemy import event, orm
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

DEFAULT_STORAGE = "sqlite:///archtune.db"
SCHEMA_VERSION = 1


class StorageError(RuntimeError):
    """The storage URL is malformed, or the database cannot be reached or read."""


class _Base(orm.DeclarativeBase):
    pass


class MetricRow(_Base):
    """One metric of one trial at one step (epoch)."""

    __tablename__ = "archtune_metrics"
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    trial_id: orm.Mapped[int] = orm.mapped_column(sa.Integer, index=True)
    step: orm.Mapped[int] = orm.mapped_column(sa.Integer)
    name: orm.Mapped[str] = orm.mapped_column(sa.String(128))
    value: orm.Mapped[float | None] = orm.mapped_column(sa.Float, nullable=True)
    # 'finite', 'nan', 'inf' or '-inf': SQL engines disagree on non-finite floats.
    kind: orm.Mapped[str] = orm.mapped_column(sa.String(8), default="finite")
    recorded_at: orm.Mapped[datetime] = orm.mapped_column(sa.DateTime)

    @staticmethod
    def encode(value: float) -> tuple[float | None, str]:
        """``(stored value, kind)`` of a float, non-finite values made explicit."""
        if math.isnan(value):
            return None, "nan"
        if math.isinf(value):
            return None, "inf" if value > 0 else "-inf"
        return float(value), "finite"

    def decoded(self) -> float:
        """The float this row stores."""
        return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}.get(
            self.kind, self.value if self.value is not None else math.nan
        )


class SchemaRow(_Base):
    """The version of archtune's own tables in this database."""

    __tablename__ = "archtune_schema"
    version: orm.Mapped[int] = orm.mapped_column(primary_key=True)


@dataclass
class Storage:
    """An open study database: the Optuna storage and a session factory for ours."""

    url: str
    optuna: optuna.storages.RDBStorage

    @contextmanager
    def session(self) -> Iterator[orm.Session]:
        """A session committed on success and rolled back on any error."""
        with orm.Session(self.optuna.engine) as session, session.begin():
            yield session

    def add_metrics(self, trial_id: int, step: int, metrics: Mapping[str, Any]) -> None:
        """Record each numeric entry of ``metrics`` for ``trial_id`` at ``step``, in one commit."""
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        rows = []
        for name, raw in metrics.items():
            if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                continue
            value, kind = MetricRow.encode(float(raw))
            rows.append(
                {
                    "trial_id": trial_id,
                    "step": step,
                    "name": name[:128],
                    "value": value,
                    "kind": kind,
                    "recorded_at": now,
                }
            )
        if rows:
            with self.session() as s:
                s.execute(sa.insert(MetricRow), rows)

    def metrics(self, trial_ids: Sequence[int]) -> dict[int, dict[str, list[tuple[int, float]]]]:
        """``{trial_id: {name: [(step, value), ...]}}`` for the given Optuna trial ids."""
        out: dict[int, dict[str, list[tuple[int, float]]]] = {t: {} for t in trial_ids}
        if not trial_ids:
            return out
        with self.session() as s:
            query = (
                sa.select(MetricRow)
                .where(MetricRow.trial_id.in_(list(trial_ids)))
                .order_by(MetricRow.trial_id, MetricRow.step, MetricRow.id)
            )
            for row in s.scalars(query):
                out[row.trial_id].setdefault(row.name, []).append((row.step, row.decoded()))
        return out


def _check_url(url: str) -> sa.engine.URL:
    if not isinstance(url, str) or not url:
        raise StorageError(f"Storage URL must be a non-empty string, got {url!r}.")
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise StorageError(
            f"Malformed storage URL {url!r}: use e.g. sqlite:///archtune.db or "
            "postgresql://user:password@host:5432/dbname."
        ) from e
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql", "mysql"):
        raise StorageError(
            f"Unsupported database {backend!r} in {parsed.render_as_string(hide_password=True)}; "
            "use sqlite:///FILE or postgresql://..."
        )
    if backend == "sqlite":
        path = parsed.database
        if not path or path == ":memory:":
            raise StorageError(
                f"{url!r} is an in-memory database, lost when the program ends; "
                "use sqlite:///archtune.db."
            )
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise StorageError(
                f"Cannot create {path!r}: directory {parent!r} does not exist; create it first."
            )
    return parsed


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def open_storage(url: str = DEFAULT_STORAGE) -> Storage:
    """Open (and create if needed) the study database at ``url``.

    Args:
        url: An SQLAlchemy URL: ``sqlite:///path.db`` (default ``archtune.db`` in the
            working directory) or ``postgresql://user:pw@host:port/db``.

    Raises:
        StorageError: the URL is malformed, names an unsupported database, or the
            database cannot be reached; the message says which.
    """
    parsed = _check_url(url)
    shown = parsed.render_as_string(hide_password=True)
    engine_kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() != "sqlite":
        engine_kwargs["pool_pre_ping"] = True
    try:
        if parsed.get_backend_name() == "sqlite":
            # Set WAL before Optuna's first connection creates its tables.
            probe = sa.create_engine(url)
            event.listen(probe, "connect", _sqlite_pragmas)
            with probe.connect():
                pass
            probe.dispose()
        rdb = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    except (OperationalError, sa.exc.DBAPIError) as e:
        reason = str(e.orig if getattr(e, "orig", None) else e).strip().splitlines()[0]
        raise StorageError(
            f"Cannot open storage {shown}: {reason}. "
            "Check that the server runs and the host, port, user and password are right."
        ) from e
    except ImportError as e:
        raise StorageError(
            f"No database driver for {shown}; install it, e.g. "
            "pip install 'archtune[postgres]' for PostgreSQL."
        ) from e
    if parsed.get_backend_name() == "sqlite":
        event.listen(rdb.engine, "connect", _sqlite_pragmas)
        rdb.engine.dispose()
    _Base.metadata.create_all(rdb.engine)
    storage = Storage(url=url, optuna=rdb)
    with storage.session() as s:
        version = s.scalar(sa.select(sa.func.max(SchemaRow.version)))
        if version is None:
            s.add(SchemaRow(version=SCHEMA_VERSION))
        elif version > SCHEMA_VERSION:
            raise StorageError(
                f"{shown} has archtune schema {version}, newer than this archtune "
                f"({SCHEMA_VERSION}); upgrade archtune to read it."
            )
    return storage
