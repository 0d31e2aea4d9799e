"""Automation rules: firings (once per rule, subject and window), activations, the
receivable plan of signed contracts, and the approver's comment.

- ``rule_firing``: one row per (rule, subject, window) that fired, unique, inserted with
  ``ON CONFLICT DO NOTHING`` in the transaction of the rule's actions
  (``hub.rules.automation.evaluate``): re-running, replaying or racing evaluators fire once;
- ``rule_activation``: when each rule (by name) first became active, so a new rule does not
  fire on years of history;
- ``receivable_plan``: the instalments (回款计划) a signed contract is expected to pay;
- ``approval.comment``: why an approver decided as they did (a rejected order's reason).
  The approvals work adds the same column: at merge only one migration may add it.

Revision ID: 0015
Revises: 0012
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rule_firing",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("subject_type", sa.String(length=30), nullable=False),
        sa.Column("subject_id", sa.BigInteger(), nullable=False),
        sa.Column("window_key", sa.String(length=200), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("outcomes", sa.dialects.postgresql.JSONB(astext_type=sa.Text()),
                  server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rule", "subject_type", "subject_id", "window_key"),
    )
    op.create_index("ix_rule_firing_subject", "rule_firing", ["subject_type", "subject_id"], unique=False)
    op.create_table(
        "rule_activation",
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("rule"),
    )
    op.create_table(
        "receivable_plan",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("contract_id", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("instalment_no", sa.Integer(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("state", sa.String(length=20), server_default="planned", nullable=False),
        sa.Column("rule", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["contract_id"], ["contract.id"]),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("contract_id", "instalment_no"),
    )
    op.create_index("ix_receivable_plan_customer", "receivable_plan", ["customer_id", "due_date"], unique=False)
    op.add_column("approval", sa.Column("comment", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("approval", "comment")
    op.drop_index("ix_receivable_plan_customer", table_name="receivable_plan")
    op.drop_table("receivable_plan")
    op.drop_table("rule_activation")
    op.drop_index("ix_rule_firing_subject", table_name="rule_firing")
    op.drop_table("rule_firing")
