"""Indexes for incremental reads; schema version 2.

Revision ID: 0002
Revises: 0001

A live view asks what changed since its last poll: one trial's rows in step order
(``trial_id, step``) and the rows recorded after a time (``recorded_at``). Both were full
scans of ``archtune_metrics`` before.

The ``archtune_schema`` row becomes 2, so an archtune that knows only version 1 refuses
this database with its "newer than this archtune; upgrade archtune" message instead of
reading it without knowing what changed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_schema = sa.table("archtune_schema", sa.column("version", sa.Integer()))


def _set_version(version: int) -> None:
    op.execute(_schema.delete())
    op.bulk_insert(_schema, [{"version": version}])


def upgrade() -> None:
    """Add the two indexes and record schema version 2."""
    op.create_index("ix_archtune_metrics_trial_id_step", "archtune_metrics", ["trial_id", "step"])
    op.create_index("ix_archtune_metrics_recorded_at", "archtune_metrics", ["recorded_at"])
    _set_version(2)


def downgrade() -> None:
    """Drop the two indexes and record schema version 1 again."""
    _set_version(1)
    op.drop_index("ix_archtune_metrics_recorded_at", table_name="archtune_metrics")
    op.drop_index("ix_archtune_metrics_trial_id_step", table_name="archtune_metrics")
