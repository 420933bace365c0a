"""Indexes for incremental reads.

Revision ID: 0002
Revises: 0001

A live view asks what changed since its last poll: one trial's rows in step order
(``trial_id, step``) and the rows recorded after a time (``recorded_at``). Both were full
scans of ``archtune_metrics`` before.

The ``archtune_schema`` version stays 1: indexes change nothing an archtune that knows
only version 1 reads or writes, so it may go on using the database.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the two indexes."""
    op.create_index("ix_archtune_metrics_trial_id_step", "archtune_metrics", ["trial_id", "step"])
    op.create_index("ix_archtune_metrics_recorded_at", "archtune_metrics", ["recorded_at"])


def downgrade() -> None:
    """Drop the two indexes."""
    op.drop_index("ix_archtune_metrics_recorded_at", table_name="archtune_metrics")
    op.drop_index("ix_archtune_metrics_trial_id_step", table_name="archtune_metrics")
