"""Signed webhooks back to the CRM: the event log, and ordering keys on the outbox.

``webhook_event`` holds every event the hub tells the CRM about (receivable changed, order
in the ERP, task done in chat, lead assigned), written in the transaction of the change;
``published_at`` is set when it is handed to the outbox. ``outbox.ordering_key`` makes the
dispatcher deliver the rows of one key one after another, oldest first.

Revision ID: 0014
Revises: 0011
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_event",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=True),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index("ix_webhook_event_unpublished", "webhook_event", ["id"], unique=False,
                    postgresql_where=sa.text("published_at IS NULL"))
    op.create_index("ix_webhook_event_customer", "webhook_event", ["customer_id", "id"], unique=False)
    op.add_column("outbox", sa.Column("ordering_key", sa.String(length=300), nullable=True))
    op.create_index("ix_outbox_ordering", "outbox", ["ordering_key", "id"], unique=False,
                    postgresql_where=sa.text("ordering_key IS NOT NULL AND status IN ('pending', 'in_progress')"))


def downgrade() -> None:
    op.drop_index("ix_outbox_ordering", table_name="outbox")
    op.drop_column("outbox", "ordering_key")
    op.drop_index("ix_webhook_event_customer", table_name="webhook_event")
    op.drop_index("ix_webhook_event_unpublished", table_name="webhook_event")
    op.drop_table("webhook_event")
