"""Owners, the public pool and leads: the round-robin position of each lead team, and the
lead a task is about (a lead's first follow-up has no customer yet).

Revision ID: 0011
Revises: 0009
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lead_rotation",
        sa.Column("team", sa.String(length=200), nullable=False),
        sa.Column("position", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("team"),
    )
    op.add_column("task", sa.Column("lead_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key("task_lead_id_fkey", "task", "lead", ["lead_id"], ["id"])
    op.create_index("ix_task_lead", "task", ["lead_id"], unique=False)
    op.create_index("ix_customer_pool", "customer", ["pool_since"], unique=False,
                    postgresql_where=sa.text("pool_since IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_customer_pool", table_name="customer")
    op.drop_index("ix_task_lead", table_name="task")
    op.drop_constraint("task_lead_id_fkey", "task", type_="foreignkey")
    op.drop_column("task", "lead_id")
    op.drop_table("lead_rotation")
