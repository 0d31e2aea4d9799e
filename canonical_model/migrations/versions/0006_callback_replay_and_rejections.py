"""Chat callbacks: accepted requests remembered in Postgres (replays refused by every web
process and after a restart); refused requests counted per source and time window.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "callback_replay",
        sa.Column("system", sa.String(32), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("system", "fingerprint"),
    )
    op.create_index("ix_callback_replay_expires_at", "callback_replay", ["expires_at"])
    op.create_table(
        "callback_rejection_window",
        sa.Column("system", sa.String(32), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rejections", sa.Integer(), nullable=False),
        sa.Column("reasons", JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("system", "source", "window_start"),
    )


def downgrade() -> None:
    op.drop_table("callback_rejection_window")
    op.drop_index("ix_callback_replay_expires_at", table_name="callback_replay")
    op.drop_table("callback_replay")
