"""Outbox failure accounting and the shared per-recipient send budget.

- ``outbox.unexpected_failures``: attempts that ended in an unexpected exception (a bug)
  or were lost with their dispatcher (lease expired); a row is dead-lettered when they
  reach ``max_attempts``. Transient failures are bounded by time instead.
- ``send_budget_spend``: one row per send spent against a platform's per-recipient limit
  (WeCom: 30/min, 1000/h per app per member), so every dispatcher process shares it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("unexpected_failures", sa.Integer(), server_default="0", nullable=False))
    op.create_table(
        "send_budget_spend",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("recipient", sa.String(200), nullable=False),
        sa.Column("spent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outbox_id", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_send_budget_spend_window", "send_budget_spend", ["scope", "recipient", "spent_at"])


def downgrade() -> None:
    op.drop_index("ix_send_budget_spend_window", table_name="send_budget_spend")
    op.drop_table("send_budget_spend")
    op.drop_column("outbox", "unexpected_failures")
