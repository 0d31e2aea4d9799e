"""Each customer record keeps its own values: survivorship decides the golden record.

``external_identity.source_values`` holds what one source record says about its golden
customer (``hub.survivorship``): ``{"values": {field: value}, "changed_at": …, "fetched_at": …}``.
Rows written before this revision have none; their values already in the golden record
keep taking part under their provenance until the record changes at its source or is read
again in full (``hub sync SYSTEM customers --full`` records every record's values at once).

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


def downgrade() -> None:
    op.drop_column("external_identity", "source_values")
