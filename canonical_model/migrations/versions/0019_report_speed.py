"""The report pages at a mid-size company's volume (issue 17): indexes for their aggregates,
and the receivables report's summary tables.

- indexes: each report aggregate reads a date range or a currency's rows from an index that
  holds every column it needs (index-only scans): orders by date and by (currency, customer)
  for RFM, receipts by date, interactions by time, tasks by due and completion time, the
  stage history in the funnel's order (``id`` breaks ties of ``changed_at``), the latest run
  per stream on the operations page;
- ``ar_customer_balance`` (open receivables per customer and currency, aged as of a date),
  ``ar_daily`` (bills and receipts per currency and day, for the DSO trend) and
  ``report_snapshot`` (when they were rebuilt, for which date): rebuilt whole by
  ``hub.rules.receivables_summary`` after each receivable/receipt sync and customer merge.

Revision ID: 0019
Revises: 0021
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0021"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(18, 2)


def upgrade() -> None:
    op.create_index("ix_sales_order_rfm", "sales_order", ["currency", "customer_id"],
                    postgresql_include=["source_system", "order_date"])
    op.create_index("ix_sales_order_date", "sales_order", ["order_date"],
                    postgresql_include=["owner_id", "currency", "total_amount", "status"])
    op.create_index("ix_receipt_date", "receipt", ["receipt_date"], postgresql_include=["customer_id", "currency", "amount"])
    op.create_index("ix_interaction_occurred", "interaction", ["occurred_at"], postgresql_include=["user_id", "kind"])
    op.create_index("ix_task_due_at", "task", ["due_at"], postgresql_include=["assignee_id", "status"])
    op.create_index("ix_task_done_at", "task", ["completed_at"], postgresql_include=["assignee_id", "completed_via"],
                    postgresql_where=sa.text("status = 'done'"))
    op.drop_index("ix_stage_change_subject", table_name="stage_change")
    op.create_index("ix_stage_change_subject", "stage_change", ["subject_type", "subject_id", "changed_at", "id"],
                    postgresql_include=["to_stage"])
    op.create_index("ix_sync_run_latest", "sync_run", ["connector", "stream", "started_at", "id"])
    op.create_table(
        "ar_customer_balance",
        sa.Column("currency", sa.String(length=3), primary_key=True),
        sa.Column("customer_id", sa.BigInteger(), primary_key=True),
        *(sa.Column(name, MONEY, nullable=False)
          for name in ("open_amount", "overdue", "not_due", "b1_30", "b31_60", "b61_90", "bover_90")),
        sa.Column("open_bills", sa.Integer(), nullable=False),
        sa.Column("oldest_days", sa.Integer(), nullable=True),
    )
    op.create_index("ix_ar_customer_balance_overdue", "ar_customer_balance", ["currency", "overdue", "customer_id"])
    op.create_table(
        "ar_daily",
        sa.Column("currency", sa.String(length=3), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("billed", sa.Numeric(20, 2), nullable=False),
        sa.Column("received", sa.Numeric(20, 2), nullable=False),
        sa.Column("bills", sa.Integer(), nullable=False),
    )
    op.create_table(
        "report_snapshot",
        sa.Column("name", sa.String(length=50), primary_key=True),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("report_snapshot")
    op.drop_table("ar_daily")
    op.drop_index("ix_ar_customer_balance_overdue", table_name="ar_customer_balance")
    op.drop_table("ar_customer_balance")
    op.drop_index("ix_sync_run_latest", table_name="sync_run")
    op.drop_index("ix_stage_change_subject", table_name="stage_change")
    op.create_index("ix_stage_change_subject", "stage_change", ["subject_type", "subject_id", "changed_at"])
    for index, table in (("ix_task_done_at", "task"), ("ix_task_due_at", "task"),
                         ("ix_interaction_occurred", "interaction"), ("ix_receipt_date", "receipt"),
                         ("ix_sales_order_date", "sales_order"), ("ix_sales_order_rfm", "sales_order")):
        op.drop_index(index, table_name=table)
