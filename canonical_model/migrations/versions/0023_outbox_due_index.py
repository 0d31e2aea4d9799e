"""The outbox's due rows in claim order (issue 18, outbound speed).

``ix_outbox_due`` holds the pending rows in the order a claim takes them (``next_attempt_at``,
then ``id``), so that a claim reads the first few due rows from the index and stops, probing
each one's ordering key (``ix_outbox_ordering``) for an earlier row still pending or in
progress, instead of grouping every pending row by its key on every claim
(``hub.outbox.claims``). Measured on 10,000 pending webhooks over 500 keys: 33 ms a claim
before, 0.02 ms for the due branch with the index (``EXPLAIN ANALYZE``).

Revision ID: 0023
Revises: 0019
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_outbox_due", "outbox", ["next_attempt_at", "id"], unique=False,
                    postgresql_where=sa.text("status = 'pending'"))


def downgrade() -> None:
    op.drop_index("ix_outbox_due", table_name="outbox")
