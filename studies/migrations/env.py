"""Alembic's entry point for archtune's migrations.

Alembic runs this file for every command; :func:`studies.migrations.alembic_config`
hands it the connection to migrate through ``config.attributes``. Importing it outside
Alembic (pytest's doctest collection does) runs nothing.
"""

from __future__ import annotations

from alembic import context

from studies.migrations import VERSION_TABLE


def run_migrations() -> None:
    """Run the pending migrations on the connection the caller passed in."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "archtune's migrations run on an open connection: build the configuration "
            "with studies.migrations.alembic_config(connection)."
        )
    context.configure(connection=connection, version_table=VERSION_TABLE, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


# ``context.config`` exists only while Alembic runs this file.
if hasattr(context, "config"):
    run_migrations()
