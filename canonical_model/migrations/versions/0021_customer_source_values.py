"""Each customer record keeps its own values: survivorship decides the golden record.

``external_identity.source_values`` holds what one source record says about its golden
customer (``hub.survivorship``): ``{"values": {field: value}, "changed_at": …, "fetched_at": …}``.
Rows written before this revision have none. So that the next sync of each system records
them, the upgrade forgets the content hash of every existing customer link (the way
``hub.rules.salespeople`` does for re-linked owners): the next read applies each customer
record once more, which stores its values and settles its golden customer; later syncs skip
unchanged records again. Until that sync, the values already in the golden record keep
taking part under their provenance.

Revision ID: 0021
Revises: 0016
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0021"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("external_identity", sa.Column("source_values", JSONB(), nullable=True))
    op.execute("UPDATE external_identity SET content_hash = NULL WHERE object = 'customer' AND content_hash IS NOT NULL")


def downgrade() -> None:
    op.drop_column("external_identity", "source_values")
