"""CRM orders name their legal entity (sales org): which ERP an approved order goes to is
configured per legal entity (``HUB_ORDERS__ERP_BY_ENTITY``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sales_order", sa.Column("legal_entity", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("sales_order", "legal_entity")
