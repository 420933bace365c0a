"""Driver leases: which process runs a study, and whether it is alive.

Revision ID: 0003
Revises: 0002

A driver running a study holds one row of ``archtune_drivers`` and renews ``beat_at``
every few seconds; it deletes the row when it stops cleanly. A row whose beat is old, or
whose process is gone from this host, belongs to a driver that died: its trials still
RUNNING were interrupted, and ``archtune resume`` trains them again from their
checkpoint. The ``archtune_schema`` version stays 1: an older archtune never reads the
table, and its drivers hold no lease.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``archtune_drivers``."""
    op.create_table(
        "archtune_drivers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        # The process's start time (seconds since the epoch): a pid the system reused
        # for another process is not the driver.
        sa.Column("process_start", sa.Float(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("beat_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_archtune_drivers_study_id", "archtune_drivers", ["study_id"])


def downgrade() -> None:
    """Drop ``archtune_drivers``."""
    op.drop_index("ix_archtune_drivers_study_id", table_name="archtune_drivers")
    op.drop_table("archtune_drivers")
