"""A study database opened for reading only: what the dashboard serves from.

:func:`~studies.storage.open_storage` creates and upgrades tables (Optuna's and archtune's);
a viewer must not. :func:`open_readonly` opens the same URL so that the database engine
itself refuses every write: SQLite through its ``mode=ro`` URI, PostgreSQL with
``default_transaction_read_only``. It creates nothing, so a database made by plain Optuna
(no archtune tables) opens as it is, and :class:`~studies.reads.StudyReader` reads it with
the views that apply (no per-epoch metric rows, no driver leases).

Example:
    >>> import os, tempfile, optuna
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "plain.db")
    >>> optuna.create_study(study_name="p", storage=url).optimize(lambda t: 1.0, n_trials=1)
    >>> db = open_readonly(url)
    >>> db.archtune_tables
    False
    >>> from studies.reads import StudyReader
    >>> StudyReader(db).names()
    ['p']
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

from studies.storage import (
    _CONNECT_TIMEOUT_S,
    DriverRow,
    MetricRow,
    StorageError,
    _check_url,
    _engine_url,
    _reason,
    shown_url,
)

__all__ = ["OPTUNA_TABLES", "ReadOnlyStorage", "open_readonly"]

OPTUNA_TABLES = ("studies", "study_directions", "trials", "trial_params", "trial_values")
"""Optuna's tables that a study database must have (Optuna's RDB schema)."""


@dataclass(frozen=True)
class ReadOnlyStorage:
    """A study database open for reading; the engine refuses writes.

    Attributes:
        url: The URL as given (password included): show :attr:`shown` instead.
        engine: The SQLAlchemy engine.
        archtune_tables: Whether archtune's tables (metric rows, driver leases) exist.
    """

    url: str
    engine: sa.Engine
    archtune_tables: bool

    @property
    def shown(self) -> str:
        """The URL as it may be shown, its password as ``***``."""
        return shown_url(self.url)

    def __repr__(self) -> str:
        return f"ReadOnlyStorage(url={self.shown!r})"


def _sqlite_readonly(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=2000")  # a writer holds the lock: the next poll retries
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def _missing_file(url: str) -> None:
    """Raise if ``url`` names an SQLite file that does not exist (nothing to read)."""
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError, TypeError):
        return  # _check_url says why
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = os.path.abspath(parsed.database)
        if not os.path.isfile(path):
            raise StorageError(
                f"No study database at {path!r} ({shown_url(parsed)}). Run a study first "
                "(archtune demo) or point --storage / ARCHTUNE_STORAGE at an existing one."
            )


def open_readonly(url: str) -> ReadOnlyStorage:
    """Open the study database at ``url`` for reading only.

    Raises:
        StorageError: the URL is malformed, the SQLite file does not exist, the server
            cannot be reached, or the database holds no Optuna study tables; the
            message says which (never with the password) and what to do.
    """
    _missing_file(url)
    parsed = _check_url(url)
    shown = shown_url(parsed)
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StorageError(
            f"The dashboard reads SQLite and PostgreSQL only, not {shown}: it opens the "
            "database read-only, which archtune does for those two."
        )
    if parsed.get_backend_name() == "sqlite":
        path = os.path.abspath(parsed.database or "")
        query = {"mode": "ro", "uri": "true"}
        engine = sa.create_engine(
            sa.engine.URL.create("sqlite", database="file:" + quote(path), query=query)
        )
        sa.event.listen(engine, "connect", _sqlite_readonly)
    else:
        options = " ".join(
            filter(
                None,
                [str(parsed.query.get("options") or ""), "-c default_transaction_read_only=on"],
            )
        )
        args: dict[str, Any] = {"options": options}
        if "connect_timeout" not in parsed.query:
            args["connect_timeout"] = _CONNECT_TIMEOUT_S
        engine = sa.create_engine(_engine_url(parsed), connect_args=args, pool_pre_ping=True)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            missing = [t for t in OPTUNA_TABLES if not inspector.has_table(t)]
            ours = all(inspector.has_table(m.__tablename__) for m in (MetricRow, DriverRow))
    except ImportError as e:
        engine.dispose()
        raise StorageError(
            f"Cannot open {shown}: {e}. For PostgreSQL: pip install 'archtune[postgres]'."
        ) from e
    except sa.exc.SQLAlchemyError as e:
        engine.dispose()
        raise StorageError(
            f"Cannot open storage {shown}: {_reason(e, parsed.password)}. "
            "Check that the server runs and the host, port, user and password are right."
        ) from e
    if missing:
        engine.dispose()
        raise StorageError(
            f"{shown} is not an Optuna study database (no table {missing[0]!r}); "
            "point --storage at a database that archtune or optuna.create_study wrote."
        )
    return ReadOnlyStorage(url, engine, ours)
