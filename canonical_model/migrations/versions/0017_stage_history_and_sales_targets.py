"""Stage history (the sales funnel's dwell times) and sales targets (the performance page).

- ``stage_change``: one row per change of a lead's or a customer's sales stage (销售阶段),
  the first stage included (``from_stage`` NULL). Written by ``hub.stages.record_stage_change``
  wherever a stage is set: lead capture (CRM API, web form, chat contacts), the CRM
  customer API, the demo. The funnel (``hub.web.reports.funnel``) reads when each subject
  entered and left each stage from it.
- ``sales_target``: a period's target per salesperson (``owner_id``) or per team
  (``department``), per currency; set by ``hub targets set`` (capability ``set_targets``).
- indexes the report pages' aggregates use: orders and contracts per owner and date,
  interactions per user and time, tasks per assignee and completion time.

Revision ID: 0017
Revises: 0012
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stage_change",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("subject_type", sa.String(length=20), nullable=False),
        sa.Column("subject_id", sa.BigInteger(), nullable=False),
        sa.Column("from_stage", sa.String(length=50), nullable=True),
        sa.Column("to_stage", sa.String(length=50), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.CheckConstraint("subject_type IN ('lead', 'customer')", name="ck_stage_change_subject_type"),
    )
    op.create_index("ix_stage_change_subject", "stage_change", ["subject_type", "subject_id", "changed_at"])
    op.create_table(
        "sales_target",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("owner_id", sa.BigInteger(), sa.ForeignKey("internal_user.id"), nullable=True),
        sa.Column("department", sa.String(length=200), nullable=True),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.Numeric(18, 2), nullable=False),
        sa.Column("set_by", sa.String(length=200), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("(owner_id IS NULL) <> (department IS NULL)", name="ck_sales_target_one_subject"),
        sa.CheckConstraint("amount >= 0", name="ck_sales_target_amount"),
    )
    op.create_index("uq_sales_target_owner", "sales_target", ["owner_id", "period_start", "currency"], unique=True,
                    postgresql_where=sa.text("owner_id IS NOT NULL"))
    op.create_index("uq_sales_target_department", "sales_target", ["department", "period_start", "currency"],
                    unique=True, postgresql_where=sa.text("department IS NOT NULL"))
    op.create_index("ix_sales_order_owner_date", "sales_order", ["owner_id", "order_date"])
    op.create_index("ix_contract_owner_signed", "contract", ["owner_id", "signed_at"])
    op.create_index("ix_interaction_user", "interaction", ["user_id", "occurred_at"])
    op.create_index("ix_task_completed", "task", ["assignee_id", "completed_at"])
    op.create_index("ix_lead_created", "lead", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_lead_created", table_name="lead")
    op.drop_index("ix_task_completed", table_name="task")
    op.drop_index("ix_interaction_user", table_name="interaction")
    op.drop_index("ix_contract_owner_signed", table_name="contract")
    op.drop_index("ix_sales_order_owner_date", table_name="sales_order")
    op.drop_table("sales_target")
    op.drop_index("ix_stage_change_subject", table_name="stage_change")
    op.drop_table("stage_change")
