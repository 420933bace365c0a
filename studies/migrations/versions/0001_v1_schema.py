"""archtune's version-1 tables, exactly as archtune created them with ``create_all``.

Revision ID: 0001
Revises:

A database written before migrations existed holds these tables already; archtune
stamps it at this revision instead of running it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``archtune_metrics`` and ``archtune_schema`` (version 1)."""
    op.create_table(
        "archtune_metrics",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        # 'finite', 'nan', 'inf' or '-inf': SQL engines disagree on non-finite floats.
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_archtune_metrics_trial_id", "archtune_metrics", ["trial_id"])
    schema = op.create_table(
        "archtune_schema",
        sa.Column("version", sa.Integer(), primary_key=True),
    )
    op.bulk_insert(schema, [{"version": 1}])


def downgrade() -> None:
    """Drop both tables, and every metric row with them."""
    op.drop_table("archtune_schema")
    op.drop_index("ix_archtune_metrics_trial_id", table_name="archtune_metrics")
    op.drop_table("archtune_metrics")
