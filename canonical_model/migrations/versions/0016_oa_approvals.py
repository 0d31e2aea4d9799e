"""OA approvals of CRM orders on DingTalk and WeCom: the instance, its key and its outcome.

``approval`` gains what one OA instance needs: ``business_key`` (unique: one instance per
order revision, the value the hub writes into the form's "CRM单号" control and searches by
before any create), ``revision``, ``template`` (DingTalk processCode / WeCom template_id),
``originator`` (the owner's platform user id), the decision (``approver``, ``vendor_status``,
``revoked_at``), ``error`` (why no instance could be opened), ``routing`` (which ERP an approved
order goes to, fixed when it was asked for) and ``last_checked_at`` (the reconcile poll).

Revision ID: 0016
Revises: 0012
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0016"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # approval.comment (the approver's reason) comes with 0015, the automation rules
    op.add_column("approval", sa.Column("business_key", sa.String(length=200), nullable=True))
    op.add_column("approval", sa.Column("revision", sa.Integer(), server_default="1", nullable=False))
    op.add_column("approval", sa.Column("template", sa.String(length=100), nullable=True))
    op.add_column("approval", sa.Column("originator", sa.String(length=100), nullable=True))
    op.add_column("approval", sa.Column("approver", sa.String(length=100), nullable=True))
    op.add_column("approval", sa.Column("vendor_status", sa.String(length=40), nullable=True))
    op.add_column("approval", sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("approval", sa.Column("error", sa.Text(), nullable=True))
    op.add_column("approval", sa.Column("routing", postgresql.JSONB(astext_type=sa.Text()),
                                        server_default=sa.text("'{}'::jsonb"), nullable=False))
    op.add_column("approval", sa.Column("last_checked_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("uq_approval_business_key", "approval", ["business_key"], unique=True)
    op.create_index("uq_approval_instance", "approval", ["system", "external_id"], unique=True,
                    postgresql_where=sa.text("external_id IS NOT NULL"))
    op.create_index("ix_approval_open", "approval", ["last_checked_at"], unique=False,
                    postgresql_where=sa.text("state IN ('pending', 'approved')"))


def downgrade() -> None:
    op.drop_index("ix_approval_open", table_name="approval")
    op.drop_index("uq_approval_instance", table_name="approval")
    op.drop_index("uq_approval_business_key", table_name="approval")
    for column in ("last_checked_at", "routing", "error", "revoked_at", "vendor_status", "approver", "originator",
                   "template", "revision", "business_key"):
        op.drop_column("approval", column)
