"""The study database: Optuna's RDB storage plus archtune's own tables beside it.

One SQL database holds a study. Optuna's schema keeps trials, parameters, objective
values and per-epoch intermediate values, so ``optuna.load_study`` and
optuna-dashboard open what archtune writes. Every other per-epoch metric (losses,
accuracies, seconds, samples/s) lives in ``archtune_metrics``, one row per
(trial, step, name), with non-finite values encoded explicitly (SQLite stores NaN as
NULL). Only the driver writes; Ray workers never open the database.

SQLite files are switched to write-ahead logging with ``synchronous=NORMAL``: a crash of
the driver cannot corrupt the file, and a commit costs no ``fsync`` on the hot path.

archtune's tables are migrated with Alembic (:mod:`studies.migrations`), which records
their revision in its own table, ``archtune_alembic_version``. Optuna migrates its tables
with Alembic too, in ``alembic_version``; one shared version table would make each tool
take the other's revision for its own, so the two never touch each other's tables.
:func:`open_storage` brings every database to the newest revision: a new one is created
from nothing; one written by archtune before migrations existed (``archtune_metrics`` and
``archtune_schema`` but no ``archtune_alembic_version``) is recorded as revision ``0001``,
the schema it has, and upgraded from there; one already at the newest revision costs two
small queries. Each upgrade runs in one transaction, under a lock (SQLite's write lock,
PostgreSQL's advisory lock), so processes opening one database at once wait for each other.
``archtune_schema`` still holds a version number, raised by any migration that an older
archtune could not safely read and write: that archtune refuses the database and asks to
be upgraded, as this one does with a database from a newer archtune.

PostgreSQL goes through psycopg 3 (``pip install 'archtune[postgres]'``), SQLAlchemy
2.1's default for ``postgresql://``; a bare ``postgresql://`` URL names it explicitly
before it reaches SQLAlchemy, so it means psycopg 3 under SQLAlchemy 2.0 too. A URL that
names a driver that is not installed (``postgresql+psycopg2://``) is refused with the
command that installs one. A URL is shown only through :func:`shown_url`, with its
password as ``***``: messages, errors and pages never carry it.

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
import re
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event, orm
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from studies import migrations
from studies.errors import StorageError

# Optuna is imported where a storage is opened or written: ``--help`` and the read-only
# path of ``ls`` and ``show`` (studies.cli_views) do neither.
if TYPE_CHECKING:
    import optuna

DEFAULT_STORAGE = "sqlite:///archtune.db"
SCHEMA_VERSION = 1
"""The ``archtune_schema`` version this archtune reads and writes: a database above it is
refused. A migration raises it only when an older archtune could no longer use the
database safely (0002 adds indexes only, so it stays 1)."""


_CREDENTIALS = re.compile(r"(://[^:/@\s]*:)\S*@")


def shown_url(url: str | sa.engine.URL) -> str:
    """``url`` as it may be shown to anyone: its password, if any, replaced by ``***``.

    Every message, error and page that names a database goes through this. A string
    that is not a valid URL has whatever stands between ``user:`` and ``@`` hidden.

    Example:
        >>> shown_url("postgresql://me:s3cret@db.example:5432/studies")
        'postgresql://me:***@db.example:5432/studies'
        >>> shown_url("sqlite:///archtune.db")
        'sqlite:///archtune.db'
    """
    if isinstance(url, sa.engine.URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):
        return _CREDENTIALS.sub(r"\1***@", str(url))


def _reason(error: BaseException, password: str | None) -> str:
    """The first line of a driver's error, with the password hidden should it echo it."""
    orig = getattr(error, "orig", None)
    reason = str(orig if orig is not None else error).strip().splitlines()[0]
    if password and len(password) >= 3:
        reason = reason.replace(password, "***")
    return reason


@contextmanager
def writing(storage: Storage, what: str) -> Iterator[None]:
    """Turn a database error raised inside into one :class:`StorageError` line that says
    what could not be done and why (a read-only or full database, a lost server).

    Example:
        >>> import os, tempfile
        >>> storage = open_storage("sqlite:///" + os.path.join(tempfile.mkdtemp(), "w.db"))
        >>> with writing(storage, "record the run"):
        ...     pass
    """
    import optuna

    try:
        yield
    except (sa.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as e:
        cause = e if isinstance(e, sa.exc.SQLAlchemyError) else e.__cause__ or e
        reason = _reason(cause, make_url(storage.url).password)
        raise StorageError(
            f"Cannot {what} in {storage.shown}: {reason}. Check that the database is "
            "writable (not read-only, not full) and reachable."
        ) from e


class _Base(orm.DeclarativeBase):
    pass


class MetricRow(_Base):
    """One metric of one trial at one step (epoch)."""

    __tablename__ = "archtune_metrics"
    # The incremental read path: one trial's rows in step order, and the rows recorded
    # since a live view's last poll (migration 0002).
    __table_args__ = (
        sa.Index("ix_archtune_metrics_trial_id_step", "trial_id", "step"),
        sa.Index("ix_archtune_metrics_recorded_at", "recorded_at"),
    )
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


class DriverRow(_Base):
    """The lease of a driver running a study (see :mod:`studies.lease`; migration 0003)."""

    __tablename__ = "archtune_drivers"
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    study_id: orm.Mapped[int] = orm.mapped_column(sa.Integer, index=True)
    host: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    pid: orm.Mapped[int] = orm.mapped_column(sa.Integer)
    process_start: orm.Mapped[float] = orm.mapped_column(sa.Float)  # seconds since the epoch
    started_at: orm.Mapped[datetime] = orm.mapped_column(sa.DateTime)  # UTC, naive
    beat_at: orm.Mapped[datetime] = orm.mapped_column(sa.DateTime)  # UTC, naive


@dataclass
class Storage:
    """An open study database: the Optuna storage and a session factory for ours.

    ``url`` is the URL as given, password included, to open the database again; show it
    only as :func:`shown_url` gives it (this class's ``repr`` does).
    """

    url: str
    optuna: optuna.storages.RDBStorage

    @property
    def shown(self) -> str:
        """The URL as it may be shown: the password as ``***`` (see :func:`shown_url`)."""
        return shown_url(self.url)

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (Optuna's, shared)."""
        return self.optuna.engine

    def __repr__(self) -> str:
        return f"Storage(url={self.shown!r})"

    @contextmanager
    def session(self) -> Iterator[orm.Session]:
        """A session committed on success and rolled back on any error."""
        with orm.Session(self.optuna.engine) as session, session.begin():
            yield session

    def add_metrics(self, trial_id: int, step: int, metrics: Mapping[str, Any]) -> None:
        """Record each numeric entry of ``metrics`` for ``trial_id`` at ``step``, in one commit.

        Rows of the same trial, step and name recorded before are replaced, in the same
        transaction: a trial trained again from scratch after its driver died between
        this write and the epoch's next one records its epoch once, with the new values.
        """
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
                s.execute(
                    sa.delete(MetricRow).where(
                        MetricRow.trial_id == trial_id,
                        MetricRow.step == step,
                        MetricRow.name.in_([r["name"] for r in rows]),
                    )
                )
                s.execute(sa.insert(MetricRow), rows)

    def delete_study_rows(self, study_id: int, keep_driver: int | None = None) -> int:
        """Delete every row of archtune's tables that belongs to the study ``study_id``,
        in one commit: its trials' metric rows and its drivers' leases (but the lease
        ``keep_driver``, the deleting process's own); return how many metric rows went.

        Call it before Optuna deletes the study: the trial ids are read from Optuna's
        ``trials`` table, and SQLite may give a deleted trial's id to a new trial, which
        would inherit rows left behind. ``archtune_schema`` belongs to no study.

        Example:
            >>> import os, tempfile
            >>> storage = open_storage("sqlite:///" + os.path.join(tempfile.mkdtemp(), "d.db"))
            >>> storage.delete_study_rows(study_id=1)
            0
        """
        trials = sa.table("trials", sa.column("trial_id"), sa.column("study_id"))  # Optuna's
        of_study = sa.select(trials.c.trial_id).where(trials.c.study_id == study_id)
        drivers = sa.delete(DriverRow).where(DriverRow.study_id == study_id)
        if keep_driver is not None:
            drivers = drivers.where(DriverRow.id != keep_driver)
        metrics = sa.delete(MetricRow).where(MetricRow.trial_id.in_(of_study))
        unsynced = {"synchronize_session": False}  # no ORM objects are loaded
        with self.session() as s:
            deleted = s.execute(metrics, execution_options=unsynced).rowcount
            s.execute(drivers, execution_options=unsynced)
        return int(deleted or 0)

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
    except (ArgumentError, ValueError) as e:  # ValueError: a port that is not a number
        raise StorageError(
            f"Malformed storage URL {shown_url(url)!r}: use e.g. sqlite:///archtune.db or "
            "postgresql://user:password@host:5432/dbname."
        ) from e
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql", "mysql"):
        raise StorageError(
            f"Unsupported database {backend!r} in {shown_url(parsed)}; "
            "use sqlite:///FILE or postgresql://..."
        )
    try:
        parsed.get_dialect()  # SQLAlchemy's dialect only: the driver is imported later
    except sa.exc.NoSuchModuleError:
        hint = ", psycopg 3: pip install 'archtune[postgres]'" if backend == "postgresql" else ""
        raise StorageError(
            f"Unknown driver {parsed.drivername!r} in {shown_url(parsed)}; "
            f"use {backend}://...{hint}."
        ) from None
    if backend == "sqlite":
        path = parsed.database
        if not path or path == ":memory:":
            raise StorageError(
                f"{shown_url(parsed)!r} is an in-memory database, lost when the program ends; "
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


_CREATE_ATTEMPTS = 5
# pg_advisory_xact_lock's key: any fixed 32-bit number that other programs are unlikely to use.
_PG_LOCK_KEY = zlib.crc32(migrations.VERSION_TABLE.encode())


def _lost_creation_race(error: sa.exc.DBAPIError) -> bool:
    """Whether ``error`` says another process created the same table or row first.

    "database is locked" too: SQLite switches a file to WAL without waiting on its busy
    timeout, so a second process switching it at the same moment fails at once.
    """
    message = str(error.orig if error.orig is not None else error).lower()
    return isinstance(error, sa.exc.IntegrityError) or any(
        word in message
        for word in ("already exists", "duplicate", "unique constraint", "database is locked")
    )


def _open_optuna(
    url: str, engine_kwargs: dict[str, Any], *, sqlite: bool
) -> optuna.storages.RDBStorage:
    """Optuna's storage, retried when another process is creating the same tables.

    Optuna creates its tables and stamps its revision without a lock: of two processes
    opening one new database, one fails with "table ... already exists". Each such
    failure means the other process got further, so a few tries always finish.
    """
    import optuna

    for attempt in range(1, _CREATE_ATTEMPTS + 1):
        try:
            if sqlite:
                # Set WAL before Optuna's first connection creates its tables.
                probe = sa.create_engine(url)
                event.listen(probe, "connect", _sqlite_pragmas)
                try:
                    with probe.connect():
                        pass
                finally:
                    probe.dispose()
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except sa.exc.DBAPIError as e:
            if attempt == _CREATE_ATTEMPTS or not _lost_creation_race(e):
                raise
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class _SchemaState:
    """Where archtune's tables in one database stand."""

    revision: str | None  # in archtune_alembic_version; None before migrations
    version: int | None  # the highest archtune_schema version; None without the table
    legacy: bool  # archtune tables made before migrations (no revision recorded)


def _read_schema_state(connection: sa.Connection) -> _SchemaState:
    from alembic.runtime.migration import MigrationContext  # loaded by Optuna already

    context = MigrationContext.configure(
        connection, opts={"version_table": migrations.VERSION_TABLE}
    )
    revision = context.get_current_revision()
    inspector = sa.inspect(connection)
    has_schema = revision is not None or inspector.has_table(SchemaRow.__tablename__)
    version = connection.scalar(sa.select(sa.func.max(SchemaRow.version))) if has_schema else None
    legacy = revision is None and (has_schema or inspector.has_table(MetricRow.__tablename__))
    return _SchemaState(revision=revision, version=version, legacy=legacy)


def _up_to_date(state: _SchemaState, shown: str) -> bool:
    """Whether nothing is to migrate; raises if a newer archtune wrote the database.

    A revision this archtune does not know, under a version it does, comes from a newer
    archtune whose migration kept older ones able to use the database: left as it is.
    """
    if state.version is not None and state.version > SCHEMA_VERSION:
        raise StorageError(
            f"{shown} has archtune schema {state.version}, newer than this archtune "
            f"({SCHEMA_VERSION}); upgrade archtune to read it."
        )
    return state.revision is not None and (
        state.revision == migrations.head_revision()
        or state.revision not in migrations.known_revisions()
    )


def _sqlite_without_driver_transactions(dbapi_connection: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, record)
    # pysqlite opens transactions itself, only before INSERT/UPDATE/DELETE, so DDL would
    # commit statement by statement. With its handling off, the engine's begin event
    # emits BEGIN IMMEDIATE and a whole upgrade is one transaction.
    dbapi_connection.isolation_level = None


@contextmanager
def _migration_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection in a transaction holding the database's migration lock.

    SQLite: a separate engine whose transactions start with ``BEGIN IMMEDIATE``, so DDL
    is transactional and a second process waits (``busy_timeout``) for the first to
    commit. PostgreSQL: ``pg_advisory_xact_lock``, released at commit. Other databases
    get no lock; :func:`_bring_to_head` then tries again once.
    """
    backend = engine.url.get_backend_name()
    if backend == "sqlite":
        locked = sa.create_engine(engine.url, poolclass=sa.pool.NullPool)
        event.listen(locked, "connect", _sqlite_without_driver_transactions)
        event.listen(locked, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        try:
            with locked.begin() as connection:
                yield connection
        finally:
            locked.dispose()
        return
    with engine.begin() as connection:
        if backend == "postgresql":
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
        yield connection


def _migrate_under_lock(engine: sa.Engine, shown: str) -> None:
    with _migration_transaction(engine) as connection:
        # Another process may have migrated while this one waited for the lock.
        state = _read_schema_state(connection)
        if not _up_to_date(state, shown):
            stamp = migrations.V1_REVISION if state.legacy else None
            migrations.migrate_to_head(connection, stamp=stamp)


def _bring_to_head(engine: sa.Engine, shown: str) -> None:
    """Migrate archtune's tables to the newest revision, or refuse a newer database.

    At the newest revision this is two small queries and no Alembic command.
    """
    try:
        with engine.connect() as connection:
            if _up_to_date(_read_schema_state(connection), shown):
                return
        try:
            _migrate_under_lock(engine, shown)
        except sa.exc.DBAPIError:
            # Where there is no lock (MySQL), the loser of a race finds the work done.
            _migrate_under_lock(engine, shown)
    except sa.exc.DBAPIError as e:
        reason = _reason(e, engine.url.password)
        raise StorageError(f"Cannot upgrade archtune's tables in {shown}: {reason}.") from e


# pip's name for each database driver SQLAlchemy may import, by SQLAlchemy's driver name.
_DRIVER_PACKAGES = {
    "psycopg": "'archtune[postgres]'",
    "psycopg2": "psycopg2-binary",
    "mysqldb": "mysqlclient",
    "pymysql": "PyMySQL",
}
# Seconds libpq (psycopg 3 and 2) waits for a PostgreSQL server before saying it cannot be
# reached; without a limit it waits as long as TCP does, minutes, for a host that drops
# packets. A URL's own ?connect_timeout=N wins.
_CONNECT_TIMEOUT_S = 10


def _engine_url(parsed: sa.engine.URL) -> sa.engine.URL:
    """The URL handed to SQLAlchemy: a bare ``postgresql://`` names psycopg 3.

    SQLAlchemy 2.1 takes psycopg 3 for it anyway; 2.0 would take psycopg2, which the
    ``postgres`` extra does not install.
    """
    if parsed.drivername == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    return parsed


def _missing_driver(parsed: sa.engine.URL, error: ImportError) -> StorageError:
    """The error for a driver that cannot be imported, with the command that installs it."""
    cause: BaseException = error  # the innermost error: "No module named 'psycopg2'"
    for _ in range(10):
        inner = cause.__cause__ or cause.__context__
        if inner is None:
            break
        cause = inner
    detail = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    driver = _engine_url(parsed).get_driver_name()
    package = _DRIVER_PACKAGES.get(driver.lower(), driver)
    shown = shown_url(parsed)
    if parsed.get_backend_name() == "postgresql" and driver == "psycopg":
        fix = "install it with pip install 'archtune[postgres]'"
    elif parsed.get_backend_name() == "postgresql":
        fix = (
            "archtune's PostgreSQL driver is psycopg 3: write the URL as postgresql://... "
            f"and pip install 'archtune[postgres]', or pip install {package} for this URL"
        )
    else:
        fix = f"install it with pip install {package}"
    return StorageError(f"No database driver {driver!r} for {shown} ({detail}); {fix}.")


def open_storage(url: str = DEFAULT_STORAGE) -> Storage:
    """Open (and create if needed) the study database at ``url``.

    Args:
        url: An SQLAlchemy URL: ``sqlite:///path.db`` (default ``archtune.db`` in the
            working directory) or ``postgresql://user:pw@host:port/db`` (psycopg 3).

    Raises:
        StorageError: the URL is malformed, names an unsupported database or a driver
            that is not installed, the database cannot be reached or upgraded, or a
            newer archtune wrote it; the message says which, never with the password.
    """
    parsed = _check_url(url)
    shown = shown_url(parsed)
    sqlite = parsed.get_backend_name() == "sqlite"
    engine_kwargs: dict[str, Any] = {}
    if not sqlite:
        engine_kwargs["pool_pre_ping"] = True
    engine_url = _engine_url(parsed)
    libpq = engine_url.get_driver_name() in ("psycopg", "psycopg2")
    if libpq and "connect_timeout" not in parsed.query:
        engine_kwargs["connect_args"] = {"connect_timeout": _CONNECT_TIMEOUT_S}
    try:
        target = url if engine_url is parsed else engine_url.render_as_string(hide_password=False)
        rdb = _open_optuna(target, engine_kwargs, sqlite=sqlite)
    except (OperationalError, sa.exc.DBAPIError) as e:
        raise StorageError(
            f"Cannot open storage {shown}: {_reason(e, parsed.password)}. "
            "Check that the server runs and the host, port, user and password are right."
        ) from e
    except ImportError as e:
        raise _missing_driver(parsed, e) from e
    if sqlite:
        event.listen(rdb.engine, "connect", _sqlite_pragmas)
        rdb.engine.dispose()
    _bring_to_head(rdb.engine, shown)
    return Storage(url=url, optuna=rdb)
