"""The CRM's front door: sign-in (logins, sessions, API tokens), idempotent writes,
contracts, service tickets and marketing touchpoints, lead identity and assignment
columns, the public pool, and people's roles and employee numbers.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('idempotency_key',
    sa.Column('principal', sa.String(length=100), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('method', sa.String(length=10), nullable=False),
    sa.Column('path', sa.String(length=500), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('response', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('principal', 'key')
    )
    op.create_index('ix_idempotency_created', 'idempotency_key', ['created_at'], unique=False)
    op.create_table('api_token',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['internal_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_table('app_login',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('password_hash', sa.String(length=300), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=True),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('failed_attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['internal_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('username')
    )
    op.create_table('contract',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('customer_id', sa.BigInteger(), nullable=False),
    sa.Column('owner_id', sa.BigInteger(), nullable=True),
    sa.Column('contract_number', sa.String(length=100), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('amount', sa.Numeric(precision=18, scale=2), nullable=False),
    sa.Column('status', sa.String(length=20), server_default='draft', nullable=False),
    sa.Column('signed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('starts_on', sa.Date(), nullable=True),
    sa.Column('ends_on', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('source_system', sa.String(length=32), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('fetched_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.ForeignKeyConstraint(['owner_id'], ['internal_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source_system', 'external_id')
    )
    op.create_index('ix_contract_customer', 'contract', ['customer_id'], unique=False)
    op.create_table('web_session',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('user_id', sa.BigInteger(), nullable=True),
    sa.Column('login_id', sa.BigInteger(), nullable=True),
    sa.Column('via', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['login_id'], ['app_login.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['internal_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_index('ix_web_session_expires', 'web_session', ['expires_at'], unique=False)
    op.create_table('service_ticket',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('customer_id', sa.BigInteger(), nullable=False),
    sa.Column('contact_id', sa.BigInteger(), nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=20), server_default='open', nullable=False),
    sa.Column('satisfaction', sa.Integer(), nullable=True),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('source_system', sa.String(length=32), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('fetched_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contact.id'], ),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source_system', 'external_id')
    )
    op.create_index('ix_service_ticket_customer', 'service_ticket', ['customer_id', 'opened_at'], unique=False)
    op.create_table('touchpoint',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('customer_id', sa.BigInteger(), nullable=False),
    sa.Column('contact_id', sa.BigInteger(), nullable=True),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('campaign', sa.String(length=200), nullable=True),
    sa.Column('url', sa.String(length=2000), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('source_system', sa.String(length=32), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('fetched_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contact.id'], ),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source_system', 'external_id')
    )
    op.create_index('ix_touchpoint_customer', 'touchpoint', ['customer_id', 'occurred_at'], unique=False)
    op.add_column('customer', sa.Column('pool_since', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_customer_owner', 'customer', ['owner_id'], unique=False)
    op.add_column('internal_user', sa.Column('employee_number', sa.String(length=64), nullable=True))
    op.add_column('internal_user', sa.Column('role', sa.String(length=20), nullable=True))
    op.create_index('ix_internal_user_employee_number', 'internal_user', ['employee_number'], unique=False)
    op.create_index('ix_internal_user_manager', 'internal_user', ['manager_id'], unique=False)
    op.add_column('lead', sa.Column('normalized_name', sa.String(length=300), nullable=True))
    op.add_column('lead', sa.Column('credit_code', sa.String(length=18), nullable=True))
    op.add_column('lead', sa.Column('region', sa.String(length=100), nullable=True))
    op.add_column('lead', sa.Column('industry', sa.String(length=100), nullable=True))
    op.add_column('lead', sa.Column('assigned_rule', sa.String(length=100), nullable=True))
    op.add_column('lead', sa.Column('invalid_reason', sa.Text(), nullable=True))
    op.add_column('lead', sa.Column('pool_since', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_lead_credit_code', 'lead', ['credit_code'], unique=False)
    op.create_index('ix_lead_mobile', 'lead', ['mobile'], unique=False)
    op.create_index('ix_lead_normalized_name', 'lead', ['normalized_name'], unique=False)
    op.create_index('ix_lead_owner', 'lead', ['owner_id', 'status'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_lead_owner', table_name='lead')
    op.drop_index('ix_lead_normalized_name', table_name='lead')
    op.drop_index('ix_lead_mobile', table_name='lead')
    op.drop_index('ix_lead_credit_code', table_name='lead')
    op.drop_column('lead', 'pool_since')
    op.drop_column('lead', 'invalid_reason')
    op.drop_column('lead', 'assigned_rule')
    op.drop_column('lead', 'industry')
    op.drop_column('lead', 'region')
    op.drop_column('lead', 'credit_code')
    op.drop_column('lead', 'normalized_name')
    op.drop_index('ix_internal_user_manager', table_name='internal_user')
    op.drop_index('ix_internal_user_employee_number', table_name='internal_user')
    op.drop_column('internal_user', 'role')
    op.drop_column('internal_user', 'employee_number')
    op.drop_index('ix_customer_owner', table_name='customer')
    op.drop_column('customer', 'pool_since')
    op.drop_index('ix_touchpoint_customer', table_name='touchpoint')
    op.drop_table('touchpoint')
    op.drop_index('ix_service_ticket_customer', table_name='service_ticket')
    op.drop_table('service_ticket')
    op.drop_index('ix_web_session_expires', table_name='web_session')
    op.drop_table('web_session')
    op.drop_index('ix_contract_customer', table_name='contract')
    op.drop_table('contract')
    op.drop_table('app_login')
    op.drop_table('api_token')
    op.drop_index('ix_idempotency_created', table_name='idempotency_key')
    op.drop_table('idempotency_key')
