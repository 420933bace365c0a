"""Alembic migrations for archtune's own tables, run from code (no ``alembic.ini``).

The revisions live in ``versions/`` and never import the live models in
:mod:`studies.storage`: each one describes its tables with ``op.create_table`` and
``sa.Column`` as they were at that revision, so an old database is upgraded the same way
whatever the models look like today.

Alembic records the revision in ``archtune_alembic_version`` (:data:`VERSION_TABLE`),
not in ``alembic_version``: that table belongs to Optuna's own migrations in the same
database, and sharing it would make each tool read the other's revision.

To write a new revision, bump ``SCHEMA_VERSION`` in :mod:`studies.storage` if an older
archtune could not safely read and write the new layout, then::

    from alembic import command
    from studies.migrations import alembic_config

    command.revision(alembic_config(), "what it changes", rev_id="0003")

and fill in ``upgrade`` and ``downgrade`` with ``op.*`` operations only (no SQL of one
database), so that SQLite and PostgreSQL run the same file.

Example:
    >>> head_revision() in known_revisions()
    True
    >>> VERSION_TABLE
    'archtune_alembic_version'
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

# Alembic is imported where it is used: ``import studies.storage`` (every CLI command)
# should not pay for it; Optuna loads it anyway once a storage is opened.
if TYPE_CHECKING:
    import sqlalchemy as sa
    from alembic.config import Config
    from alembic.script import ScriptDirectory

VERSION_TABLE = "archtune_alembic_version"
"""Where Alembic keeps archtune's revision (Optuna's is ``alembic_version``)."""

V1_REVISION = "0001"
"""The revision that is the schema archtune created with ``create_all`` before migrations."""

_HERE = Path(__file__).resolve().parent


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """An Alembic configuration for archtune's migrations, without an ini file.

    Args:
        connection: The connection ``env.py`` migrates, in a transaction the caller
            commits; ``None`` for commands that need no database (``revision``,
            ``history``).

    Returns:
        A :class:`alembic.config.Config` whose ``script_location`` is this package.
    """
    from alembic.config import Config

    config = Config()
    # ConfigParser interpolates '%': a path that holds one must be escaped.
    config.set_main_option("script_location", str(_HERE).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


@functools.cache
def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision this archtune knows (read from ``versions/`` once per process)."""
    head = _script().get_current_head()
    if head is None:  # pragma: no cover - the package always ships its revisions
        raise RuntimeError(f"No migrations found in {_HERE / 'versions'}.")
    return head


def known_revisions() -> frozenset[str]:
    """Every revision id this archtune knows."""
    return frozenset(script.revision for script in _script().walk_revisions())


def migrate_to_head(connection: sa.Connection, *, stamp: str | None = None) -> None:
    """Upgrade archtune's tables on ``connection`` to :func:`head_revision`.

    Args:
        connection: A connection in a transaction; the caller commits it (on SQLite and
            PostgreSQL the whole upgrade then lands at once or not at all).
        stamp: A revision to record first without running it: the tables are already
            there, made before migrations existed (:data:`V1_REVISION`).
    """
    from alembic import command

    config = alembic_config(connection)
    if stamp is not None:
        command.stamp(config, stamp)
    command.upgrade(config, "head")
