"""The canonical 360° customer model: SQLAlchemy 2 typed tables.

Conventions that hold for every table:

- money is ``Numeric(18, 2)`` next to a ``currency`` column (ISO 4217);
- times are ``timestamptz``; business dates (bill date, due date) are ``date``;
- every row that came from a source system keeps its provenance: ``source_system``,
  ``external_id`` and ``fetched_at``; the golden ``customer`` record, which several
  systems feed, keeps provenance per field in ``field_sources``;
- ``content_hash`` is the hash of the canonical record last written, so a re-sync of an
  unchanged record costs no write.

The 360° profile (``canonical_model.profile``) is a query over these tables.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

MONEY = sa.Numeric(18, 2)
NOW = sa.text("now()")
# Personal values are stored sealed (``hub.vault``: longer than the value, hence ``text``);
# these are the plaintext limits the canonical records check.
MOBILE_CHARS = 32
EMAIL_CHARS = 200
# A blind index (HMAC-SHA256, hex) of a personal value, beside its sealed column.
BLIND_INDEX = sa.String(64)


class Base(DeclarativeBase):
    """Declarative base; metadata is what Alembic migrations are checked against."""

    type_annotation_map = {dict[str, Any]: JSONB, dt.datetime: sa.DateTime(timezone=True)}  # noqa: RUF012 (SQLAlchemy reads it as a class attribute)


class ProvenanceMixin:
    """Where a row came from and when the hub last fetched a change of it."""

    source_system: Mapped[str] = mapped_column(sa.String(32))
    external_id: Mapped[str] = mapped_column(sa.String(200))
    fetched_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    content_hash: Mapped[str | None] = mapped_column(sa.String(64))


class SourceStampMixin:
    """The source's change stamp (the value of the stream's cursor field) of the version
    held, for tables that grow with the source (bills, contacts): an unchanged re-sync
    then reads the stored hashes of a page's stamp range with one index range scan
    instead of one index probe per key (``hub.engine.targets.changed_keys``)."""

    source_cursor: Mapped[str | None] = mapped_column(sa.Text)


class InternalUser(Base):
    """An employee: salesperson, manager, finance. Chat ids come from the directories."""

    __tablename__ = "internal_user"
    __table_args__ = (
        sa.UniqueConstraint("source_system", "external_id"),
        sa.Index("ix_internal_user_mobile_hash", "mobile_hash"),
        sa.Index("ix_internal_user_email_hash", "email_hash"),
        sa.Index("uq_internal_user_wecom", "wecom_userid", unique=True),
        sa.Index("uq_internal_user_dingtalk", "dingtalk_userid", unique=True),
        sa.Index("ix_internal_user_employee_number", "employee_number"),
        sa.Index("ix_internal_user_manager", "manager_id"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    # sealed (hub.vault) with their blind indexes beside them
    mobile: Mapped[str | None] = mapped_column(sa.Text)
    mobile_hash: Mapped[str | None] = mapped_column(BLIND_INDEX)
    email: Mapped[str | None] = mapped_column(sa.Text)
    email_hash: Mapped[str | None] = mapped_column(BLIND_INDEX)
    department: Mapped[str | None] = mapped_column(sa.String(200))
    title: Mapped[str | None] = mapped_column(sa.String(200))
    manager_id: Mapped[int | None] = mapped_column(sa.ForeignKey("internal_user.id"))
    # the manager's id in the directory this row came from; resolved to manager_id
    # once that manager's row exists (directories page in any order)
    manager_ref: Mapped[str | None] = mapped_column(sa.String(200))
    wecom_userid: Mapped[str | None] = mapped_column(sa.String(64))
    dingtalk_userid: Mapped[str | None] = mapped_column(sa.String(64))
    dingtalk_unionid: Mapped[str | None] = mapped_column(sa.String(64))
    # the employee number (工号) the ERPs' salesperson records carry; links them first
    employee_number: Mapped[str | None] = mapped_column(sa.String(64))
    # the role the hub's pages and API give this person (hub.access.Role); None: sales,
    # or manager when the directory shows reports (hub.access.principal)
    role: Mapped[str | None] = mapped_column(sa.String(20))
    active: Mapped[bool] = mapped_column(server_default=sa.true())
    # each chat directory's view of the person: {system: {"active", "hash", "manager_ref"}}
    # (a person may be in WeCom and DingTalk; neither undoes the other)
    directories: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
    # {system: when} of the last directory lookup by mobile that found nothing, per chat
    # platform (lookups are rationed)
    directory_lookup_misses: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
    source_system: Mapped[str] = mapped_column(sa.String(32))
    external_id: Mapped[str] = mapped_column(sa.String(200))
    fetched_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    content_hash: Mapped[str | None] = mapped_column(sa.String(64))


class Customer(Base):
    """The golden record of a company; several systems' records resolve to one row."""

    __tablename__ = "customer"
    __table_args__ = (
        sa.Index("uq_customer_credit_code", "credit_code", unique=True),
        sa.Index("ix_customer_normalized_name", "normalized_name"),
        sa.Index("ix_customer_owner", "owner_id"),
        sa.Index("ix_customer_pool", "pool_since", postgresql_where=sa.text("pool_since IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(300))
    normalized_name: Mapped[str] = mapped_column(sa.String(300))
    credit_code: Mapped[str | None] = mapped_column(sa.String(18))
    region: Mapped[str | None] = mapped_column(sa.String(100))
    industry: Mapped[str | None] = mapped_column(sa.String(100))
    size: Mapped[str | None] = mapped_column(sa.String(50))
    phone: Mapped[str | None] = mapped_column(sa.String(50))
    address: Mapped[str | None] = mapped_column(sa.String(500))
    owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey("internal_user.id"))
    credit_limit: Mapped[Decimal | None] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(sa.String(3), server_default="CNY")
    tags: Mapped[list[str]] = mapped_column(ARRAY(sa.String(50)), server_default="{}")
    stage: Mapped[str | None] = mapped_column(sa.String(50))
    # field -> {"system", "external_id", "fetched_at"}: provenance of each value
    field_sources: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    last_followup_at: Mapped[dt.datetime | None]
    assigned_at: Mapped[dt.datetime | None]
    # since when the customer sits in the public pool (公海池): no owner after linking, or
    # returned there by a rule; None while someone owns it
    pool_since: Mapped[dt.datetime | None]


class ExternalIdentity(Base):
    """A record in an external system and the canonical row it resolved to."""

    __tablename__ = "external_identity"
    __table_args__ = (
        sa.UniqueConstraint("system", "object", "external_id"),
        sa.Index("ix_external_identity_canonical", "canonical_table", "canonical_id"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    system: Mapped[str] = mapped_column(sa.String(32))
    object: Mapped[str] = mapped_column(sa.String(64))
    external_id: Mapped[str] = mapped_column(sa.String(200))
    canonical_table: Mapped[str] = mapped_column(sa.String(64))
    canonical_id: Mapped[int] = mapped_column(sa.BigInteger)
    content_hash: Mapped[str | None] = mapped_column(sa.String(64))
    first_seen: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    last_seen: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    # a customer record's own claims on the golden fields (hub.survivorship):
    # {"values": {field: value}, "changed_at": at its source, "fetched_at": read by the hub}
    source_values: Mapped[dict[str, Any] | None]


class CustomerLinksVersion(Base):
    """One row: a counter moved (by triggers on ``external_identity``) whenever a customer
    link is repointed, re-keyed or deleted, so a sync run may remember the links it looked
    up until the counter moves (``hub.engine.targets.CustomerLinks``; migration 0024)."""

    __tablename__ = "customer_links_version"

    id: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True)
    version: Mapped[int] = mapped_column(sa.BigInteger)


class Contact(Base, ProvenanceMixin, SourceStampMixin):
    """A person at a customer, with title and role in the decision chain (决策链)."""

    __tablename__ = "contact"
    __table_args__ = (
        sa.UniqueConstraint("source_system", "external_id"),
        sa.Index("ix_contact_customer", "customer_id"),
        sa.Index("ix_contact_source_cursor", "source_system", "source_cursor"),
        sa.Index("ix_contact_mobile_hash", "mobile_hash"),
        sa.Index("ix_contact_email_hash", "email_hash"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("customer.id"))
    name: Mapped[str] = mapped_column(sa.String(200))
    title: Mapped[str | None] = mapped_column(sa.String(200))
    decision_role: Mapped[str | None] = mapped_column(sa.String(100))
    # sealed (hub.vault) with their blind indexes beside them
    mobile: Mapped[str | None] = mapped_column(sa.Text)
    mobile_hash: Mapped[str | None] = mapped_column(BLIND_INDEX)
    email: Mapped[str | None] = mapped_column(sa.Text)
    email_hash: Mapped[str | None] = mapped_column(BLIND_INDEX)
    owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey("internal_user.id"))
    wecom_external_userid: Mapped[str | None] = mapped_column(sa.String(100))


class Lead(Base, ProvenanceMixin):
    """A sales lead (线索) before it becomes (or joins) a customer."""

    __tablename__ = "lead"
    __table_args__ = (
        sa.UniqueConstraint("source_system", "external_id"),
        sa.Index("ix_lead_credit_code", "credit_code"),
        sa.Index("ix_lead_normalized_name", "normalized_name"),
        sa.Index("ix_lead_mobile_hash", "mobile_hash"),
        sa.Index("ix_lead_email_hash", "email_hash"),
        sa.Index("ix_lead_owner", "owner_id", "status"),
        sa.Index("ix_lead_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    company_name: Mapped[str] = mapped_column(sa.String(300))
    normalized_name: Mapped[str | None] = mapped_column(sa.String(300))
    credit_code: Mapped[str | None] = mapped_column(sa.String(18))
    region: Mapped[str | None] = mapped_column(sa.String(100))
    industry: Mapped[str | None] = mapped_column(sa.String(100))
    contact_name: Mapped[str | None] = mapped_column(sa.String(200))
    # sealed (hub.vault) with their blind indexes beside them
    mobile: Mapped[str | None] = mapped_column(sa.Text)
    mobile_hash: Mapped[str | None] = mapped_column(BLIND_INDEX)
    email: Mapped[str | None] = mapped_column(sa.Text)
    email_hash: Mapped[str | None] = mapped_column(BLIND_INDEX)
    channel: Mapped[str | None] = mapped_column(sa.String(50))  # web form, event, ad, partner
    status: Mapped[str] = mapped_column(sa.String(30), server_default="new")  # new/assigned/invalid/pool
    stage: Mapped[str] = mapped_column(sa.String(30), server_default="潜在客户")
    estimated_amount: Mapped[Decimal | None] = mapped_column(MONEY)
    owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey("internal_user.id"))
    customer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("customer.id"))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    assigned_at: Mapped[dt.datetime | None]
    last_contacted_at: Mapped[dt.datetime | None]
    # which assignment rule matched (or "pool"), and why a lead was marked invalid
    assigned_rule: Mapped[str | None] = mapped_column(sa.String(100))
    invalid_reason: Mapped[str | None] = mapped_column(sa.Text)
    pool_since: Mapped[dt.datetime | None]


class LeadRotation(Base):
    """Where the round-robin of one lead team stands (``hub.rules.lead_assignment``): the row
    is locked while a lead is given to the next member, so concurrent assignments never
    pick the same turn."""

    __tablename__ = "lead_rotation"

    team: Mapped[str] = mapped_column(sa.String(200), primary_key=True)  # "team:<ref>" / "department:<name>"
    position: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)


class SalesOrder(Base):
    """A sales order. CRM orders (source 'crm') flow out to the ERP; ERP orders flow in.

    ``(erp_system, erp_bill_number)`` is unique: when the hub reads back an order it
    wrote, the upsert lands on the CRM order instead of creating an echo.
    """

    __tablename__ = "sales_order"
    __table_args__ = (
        sa.Index("ix_sales_order_rfm", "currency", "customer_id", postgresql_include=["source_system", "order_date"]),
        sa.Index("ix_sales_order_date", "order_date", postgresql_include=["owner_id", "currency", "total_amount", "status"]),
        sa.UniqueConstraint("source_system", "external_id"),
        sa.Index("uq_sales_order_erp_bill", "erp_system", "erp_bill_number", unique=True),
        sa.Index("ix_sales_order_customer", "customer_id"),
        sa.Index("ix_sales_order_owner_date", "owner_id", "order_date"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    order_number: Mapped[str] = mapped_column(sa.String(100))
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("customer.id"))
    owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey("internal_user.id"))
    order_date: Mapped[dt.date]
    currency: Mapped[str] = mapped_column(sa.String(3))
    total_amount: Mapped[Decimal] = mapped_column(MONEY)
    status: Mapped[str] = mapped_column(sa.String(30), server_default="draft")
    approval_state: Mapped[str] = mapped_column(sa.String(30), server_default="none")
    # the legal entity (sales organisation) selling: which ERP the order goes to is configured
    # per legal entity (hub.rules.orders.route_order)
    legal_entity: Mapped[str | None] = mapped_column(sa.String(64))
    erp_system: Mapped[str | None] = mapped_column(sa.String(32))
    erp_bill_number: Mapped[str | None] = mapped_column(sa.String(100))
    erp_status: Mapped[str | None] = mapped_column(sa.String(10))
    erp_synced_at: Mapped[dt.datetime | None]
    erp_error: Mapped[str | None] = mapped_column(sa.Text)
    source_system: Mapped[str] = mapped_column(sa.String(32))
    external_id: Mapped[str] = mapped_column(sa.String(200))
    fetched_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    content_hash: Mapped[str | None] = mapped_column(sa.String(64))
    approved_at: Mapped[dt.datetime | None]


class SalesOrderLine(Base):
    """One line of a sales order."""

    __tablename__ = "sales_order_line"
    __table_args__ = (sa.UniqueConstraint("order_id", "line_no"),)

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("sales_order.id", ondelete="CASCADE"))
    line_no: Mapped[int]
    product_code: Mapped[str] = mapped_column(sa.String(100))
    product_name: Mapped[str | None] = mapped_column(sa.String(300))
    quantity: Mapped[Decimal] = mapped_column(sa.Numeric(18, 6))
    unit_price: Mapped[Decimal] = mapped_column(sa.Numeric(18, 6))
    tax_rate: Mapped[Decimal] = mapped_column(sa.Numeric(6, 2), server_default="0")
    amount: Mapped[Decimal] = mapped_column(MONEY)


class Receivable(Base, ProvenanceMixin, SourceStampMixin):
    """An accounts-receivable bill from the ERP; open_amount is what is still unpaid."""

    __tablename__ = "receivable"
    __table_args__ = (
        sa.UniqueConstraint("source_system", "external_id"),
        sa.Index("ix_receivable_customer", "customer_id"),
        sa.Index("ix_receivable_source_cursor", "source_system", "source_cursor"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("customer.id"))
    bill_number: Mapped[str] = mapped_column(sa.String(100))
    bill_date: Mapped[dt.date]
    due_date: Mapped[dt.date]
    currency: Mapped[str] = mapped_column(sa.String(3))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    open_amount: Mapped[Decimal] = mapped_column(MONEY)
    status: Mapped[str | None] = mapped_column(sa.String(30))


class Receipt(Base, ProvenanceMixin, SourceStampMixin):
    """Money received from a customer (收款单)."""

    __tablename__ = "receipt"
    __table_args__ = (
        sa.Index("ix_receipt_date", "receipt_date", postgresql_include=["customer_id", "currency", "amount"]),
        sa.UniqueConstraint("source_system", "external_id"),
        sa.Index("ix_receipt_customer", "customer_id"),
        sa.Index("ix_receipt_source_cursor", "source_system", "source_cursor"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("customer.id"))
    bill_number: Mapped[str] = mapped_column(sa.String(100))
    receipt_date: Mapped[dt.date]
    currency: Mapped[str] = mapped_column(sa.String(3))
    amount: Mapped[Decimal] = mapped_column(MONEY)


class Task(Base):
    """A CRM to-do for a salesperson; ``push_state`` holds per-channel delivery state."""

    __tablename__ = "task"
    __table_args__ = (
        sa.Index("ix_task_due_at", "due_at", postgresql_include=["assignee_id", "status"]),
        sa.Index("ix_task_done_at", "completed_at", postgresql_include=["assignee_id", "completed_via"],
                 postgresql_where=sa.text("status = 'done'")),
        sa.Index("ix_task_due", "status", "due_at"),
        sa.Index("ix_task_assignee", "assignee_id"),
        sa.Index("ix_task_lead", "lead_id"),
        sa.Index("ix_task_completed", "assignee_id", "completed_at"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(300))
    description: Mapped[str | None] = mapped_column(sa.Text)
    kind: Mapped[str] = mapped_column(sa.String(50), server_default="follow_up")
    customer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("customer.id"))
    # the lead a task is about (a lead's first follow-up: no customer yet)
    lead_id: Mapped[int | None] = mapped_column(sa.ForeignKey("lead.id"))
    assignee_id: Mapped[int] = mapped_column(sa.ForeignKey("internal_user.id"))
    due_at: Mapped[dt.datetime]
    status: Mapped[str] = mapped_column(sa.String(20), server_default="open")  # open/done/cancelled
    # {"wecom": {"due:zhangsan": {"state": "sent", "msgid": ...}},
    #  "dingtalk": {"todo": {"synced": {"id": ..., "version": ...}, "queued": {...}}}, ...}
    push_state: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
    problems: Mapped[list[str]] = mapped_column(ARRAY(sa.Text), server_default="{}")
    created_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    completed_at: Mapped[dt.datetime | None]
    # who ticked the task off, and where: "crm", or the chat platform whose to-do was
    # completed (its to-do is then done already: nothing is pushed back to it)
    completed_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("internal_user.id"))
    completed_via: Mapped[str | None] = mapped_column(sa.String(32))


class Interaction(Base):
    """A touchpoint on the customer timeline: call, visit, meeting, chat, marketing event."""

    __tablename__ = "interaction"
    __table_args__ = (
        sa.Index("ix_interaction_occurred", "occurred_at", postgresql_include=["user_id", "kind"]),sa.Index("ix_interaction_customer", "customer_id", "occurred_at"),
                      sa.Index("ix_interaction_user", "user_id", "occurred_at"))

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("customer.id"))
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("internal_user.id"))
    kind: Mapped[str] = mapped_column(sa.String(30))  # call/visit/meeting/chat/marketing/note
    occurred_at: Mapped[dt.datetime]
    summary: Mapped[str] = mapped_column(sa.Text)
    source_system: Mapped[str] = mapped_column(sa.String(32), server_default="crm")
    external_id: Mapped[str | None] = mapped_column(sa.String(200))


class Approval(Base):
    """An OA approval (quote, contract, discount) about a CRM subject."""

    __tablename__ = "approval"
    __table_args__ = (
        sa.Index("ix_approval_subject", "subject_type", "subject_id"),
        sa.Index("uq_approval_business_key", "business_key", unique=True),
        sa.Index("uq_approval_instance", "system", "external_id", unique=True,
                 postgresql_where=sa.text("external_id IS NOT NULL")),
        sa.Index("ix_approval_open", "last_checked_at", postgresql_where=sa.text("state IN ('pending', 'approved')")),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(30))  # quote/contract/discount/order
    subject_type: Mapped[str] = mapped_column(sa.String(30))
    subject_id: Mapped[int] = mapped_column(sa.BigInteger)
    customer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("customer.id"))
    state: Mapped[str] = mapped_column(sa.String(20))  # pending/approved/rejected/withdrawn
    system: Mapped[str] = mapped_column(sa.String(32), server_default="crm")
    external_id: Mapped[str | None] = mapped_column(sa.String(200))
    submitted_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    decided_at: Mapped[dt.datetime | None]
    # why the approver decided as they did (a rejected order's reason)
    comment: Mapped[str | None] = mapped_column(sa.Text)
    # OA instances (0016): one per order revision, found again by business_key ("CRM单号")
    business_key: Mapped[str | None] = mapped_column(sa.String(200))
    revision: Mapped[int] = mapped_column(server_default="1")
    template: Mapped[str | None] = mapped_column(sa.String(100))  # DingTalk processCode / WeCom template_id
    originator: Mapped[str | None] = mapped_column(sa.String(100))  # the owner's platform userid
    approver: Mapped[str | None] = mapped_column(sa.String(100))
    vendor_status: Mapped[str | None] = mapped_column(sa.String(40))  # e.g. "COMPLETED/agree", "sp_status 6"
    revoked_at: Mapped[dt.datetime | None]
    error: Mapped[str | None] = mapped_column(sa.Text)
    routing: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))  # ERP routing when asked
    last_checked_at: Mapped[dt.datetime | None]


class Contract(Base, ProvenanceMixin):
    """A contract with a customer (合同); ``status`` signed starts the receivable plan."""

    __tablename__ = "contract"
    __table_args__ = (
        sa.UniqueConstraint("source_system", "external_id"),
        sa.Index("ix_contract_customer", "customer_id"),
        sa.Index("ix_contract_owner_signed", "owner_id", "signed_at"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("customer.id"))
    owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey("internal_user.id"))
    contract_number: Mapped[str] = mapped_column(sa.String(100))
    title: Mapped[str] = mapped_column(sa.String(300))
    currency: Mapped[str] = mapped_column(sa.String(3))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    status: Mapped[str] = mapped_column(sa.String(20), server_default="draft")  # draft/signed/cancelled/closed
    signed_at: Mapped[dt.datetime | None]
    starts_on: Mapped[dt.date | None]
    ends_on: Mapped[dt.date | None]
    created_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)


class ServiceTicket(Base, ProvenanceMixin):
    """A service ticket (服务工单) from the CRM: an inquiry, a complaint or a satisfaction survey."""

    __tablename__ = "service_ticket"
    __table_args__ = (
        sa.UniqueConstraint("source_system", "external_id"),
        sa.Index("ix_service_ticket_customer", "customer_id", "opened_at"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("customer.id"))
    contact_id: Mapped[int | None] = mapped_column(sa.ForeignKey("contact.id"))
    kind: Mapped[str] = mapped_column(sa.String(20))  # inquiry/complaint/satisfaction
    subject: Mapped[str] = mapped_column(sa.String(300))
    detail: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(20), server_default="open")  # open/resolved/closed
    satisfaction: Mapped[int | None]  # 1..5, for satisfaction surveys
    opened_at: Mapped[dt.datetime]
    closed_at: Mapped[dt.datetime | None]


class Touchpoint(Base, ProvenanceMixin):
    """A marketing touchpoint (营销触点): a quote or campaign opened, a link clicked, a webinar."""

    __tablename__ = "touchpoint"
    __table_args__ = (
        sa.UniqueConstraint("source_system", "external_id"),
        sa.Index("ix_touchpoint_customer", "customer_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("customer.id"))
    contact_id: Mapped[int | None] = mapped_column(sa.ForeignKey("contact.id"))
    kind: Mapped[str] = mapped_column(sa.String(30))  # quote_opened/campaign_opened/link_clicked/webinar_attended
    occurred_at: Mapped[dt.datetime]
    campaign: Mapped[str | None] = mapped_column(sa.String(200))
    url: Mapped[str | None] = mapped_column(sa.String(2000))
    detail: Mapped[str | None] = mapped_column(sa.Text)


class AppLogin(Base):
    """A username and password an admin set, for browsers outside the chat apps.

    ``password_hash`` is a modern password hash (scrypt, :mod:`hub.access.passwords`);
    the password itself is never stored.
    """

    __tablename__ = "app_login"
    __table_args__ = (sa.UniqueConstraint("username"),)

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(100))
    password_hash: Mapped[str] = mapped_column(sa.String(300))
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("internal_user.id"))
    role: Mapped[str] = mapped_column(sa.String(20))
    active: Mapped[bool] = mapped_column(server_default=sa.true())
    failed_attempts: Mapped[int] = mapped_column(server_default="0")
    locked_until: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    last_login_at: Mapped[dt.datetime | None]


class ApiToken(Base):
    """A machine's bearer token (the CRM, scripts): stored as its SHA-256, shown once."""

    __tablename__ = "api_token"
    __table_args__ = (sa.UniqueConstraint("token_hash"),)

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64))
    prefix: Mapped[str] = mapped_column(sa.String(16))  # the first characters, to tell tokens apart
    label: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[str] = mapped_column(sa.String(20))
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("internal_user.id"))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]


class WebSession(Base):
    """A signed-in browser: the cookie holds a random token, the table its SHA-256."""

    __tablename__ = "web_session"
    __table_args__ = (sa.UniqueConstraint("token_hash"), sa.Index("ix_web_session_expires", "expires_at"))

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64))
    role: Mapped[str] = mapped_column(sa.String(20))
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("internal_user.id"))
    login_id: Mapped[int | None] = mapped_column(sa.ForeignKey("app_login.id", ondelete="CASCADE"))
    via: Mapped[str] = mapped_column(sa.String(20))  # password / wecom / dingtalk
    created_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]


class IdempotencyRecord(Base):
    """The first answer to a write that carried an ``Idempotency-Key``, per principal.

    Written in the same transaction as the write itself, so a key is either unused or
    bound to a committed result; a repeat with a different body is refused.
    """

    __tablename__ = "idempotency_key"
    __table_args__ = (sa.Index("ix_idempotency_created", "created_at"),)

    principal: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    method: Mapped[str] = mapped_column(sa.String(10))
    path: Mapped[str] = mapped_column(sa.String(500))
    status_code: Mapped[int]
    response: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)


class SyncCursor(Base):
    """The watermark of one (connector, stream); moved in the same transaction as its rows."""

    __tablename__ = "sync_cursor"

    connector: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    stream: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    value: Mapped[str | None] = mapped_column(sa.Text)
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)


class SyncRun(Base):
    """One run of one stream with its counts (what Dagster and `hub sync` report)."""

    __tablename__ = "sync_run"
    __table_args__ = (sa.Index("ix_sync_run_latest", "connector", "stream", "started_at", "id"),)

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    connector: Mapped[str] = mapped_column(sa.String(32))
    stream: Mapped[str] = mapped_column(sa.String(64))
    started_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    finished_at: Mapped[dt.datetime | None]
    status: Mapped[str] = mapped_column(sa.String(20), server_default="running")
    cursor_before: Mapped[str | None] = mapped_column(sa.Text)
    cursor_after: Mapped[str | None] = mapped_column(sa.Text)
    counts: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
    error: Mapped[str | None] = mapped_column(sa.Text)


class OutboxItem(Base):
    """One outbound effect waiting for, or done by, a dispatcher.

    ``idempotency_key`` is unique: enqueueing the same effect twice is a no-op.
    States: pending → in_progress → done | failed (permanent) | dead (retry budget or
    ``max_attempts`` used up). ``attempts`` counts every attempt; ``unexpected_failures``
    only those that ended in an unexpected exception or lost their dispatcher's lease.
    ``result`` holds the outcome, or the progress a failed multi-step write reached.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        sa.UniqueConstraint("idempotency_key"),
        sa.Index("ix_outbox_ready", "status", "next_attempt_at"),
        sa.Index("ix_outbox_ordering", "ordering_key", "id",
                 postgresql_where=sa.text("ordering_key IS NOT NULL AND status IN ('pending', 'in_progress')")),
        sa.Index("ix_outbox_due", "next_attempt_at", "id", postgresql_where=sa.text("status = 'pending'")),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(64))  # "<system>.<writer>", e.g. kingdee.sales_order
    idempotency_key: Mapped[str] = mapped_column(sa.String(300))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(sa.String(20), server_default="pending")
    attempts: Mapped[int] = mapped_column(server_default="0")
    max_attempts: Mapped[int] = mapped_column(server_default="6")
    unexpected_failures: Mapped[int] = mapped_column(server_default="0")
    next_attempt_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    first_attempt_at: Mapped[dt.datetime | None]
    outcome_unknown: Mapped[bool] = mapped_column(server_default=sa.false())
    locked_by: Mapped[str | None] = mapped_column(sa.String(100))
    locked_until: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    result: Mapped[dict[str, Any] | None]
    created_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    completed_at: Mapped[dt.datetime | None]
    # rows of one ordering key are delivered one after another, oldest first (hub.outbox.claims)
    ordering_key: Mapped[str | None] = mapped_column(sa.String(300))


class WebhookEvent(Base):
    """An event the hub tells the CRM about (``hub.rules.webhooks``), written in the
    transaction of the change it reports. ``body`` is the exact JSON text that is signed and
    delivered; ``published_at`` is set when it is handed to the outbox for delivery."""

    __tablename__ = "webhook_event"
    __table_args__ = (
        sa.UniqueConstraint("event_id"),
        sa.Index("ix_webhook_event_unpublished", "id", postgresql_where=sa.text("published_at IS NULL")),
        sa.Index("ix_webhook_event_customer", "customer_id", "id"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    event_id: Mapped[str] = mapped_column(sa.String(40))  # the X-Hub-Delivery value
    type: Mapped[str] = mapped_column(sa.String(40))  # receivable.changed, order.in_erp, ...
    customer_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    subject: Mapped[str] = mapped_column(sa.String(200))  # what it is about: "receivable:12"
    occurred_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    body: Mapped[str] = mapped_column(sa.Text)
    published_at: Mapped[dt.datetime | None]


class SendBudgetSpend(Base):
    """One send spent against a platform's per-recipient limit (``hub.outbox.budget``).

    ``spent_at`` is when the send reached the platform at the latest: while the call is
    in flight it lies ``unsettled_s`` ahead, and the reply settles it to the reply's time.
    """

    __tablename__ = "send_budget_spend"
    __table_args__ = (sa.Index("ix_send_budget_spend_window", "scope", "recipient", "spent_at"),)

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    scope: Mapped[str] = mapped_column(sa.String(200))  # whose budget: "wecom:<corp>:<agent>"
    recipient: Mapped[str] = mapped_column(sa.String(200))
    spent_at: Mapped[dt.datetime]
    outbox_id: Mapped[int | None] = mapped_column(sa.BigInteger)


class AuditLog(Base):
    """Append-only record of every external call and every batch (a trigger refuses
    UPDATE, DELETE and TRUNCATE)."""

    __tablename__ = "audit_log"
    __table_args__ = (sa.Index("ix_audit_at", "at"), sa.Index("ix_audit_key", "key"))

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    actor: Mapped[str] = mapped_column(sa.String(100))  # "sync:kingdee/receivables", "dispatcher:host-1"
    system: Mapped[str] = mapped_column(sa.String(32))
    operation: Mapped[str] = mapped_column(sa.String(100))
    key: Mapped[str | None] = mapped_column(sa.String(300))
    external_id: Mapped[str | None] = mapped_column(sa.String(200))
    outcome: Mapped[str] = mapped_column(sa.String(20))
    attempt: Mapped[int] = mapped_column(server_default="1")
    duration_ms: Mapped[float | None] = mapped_column(sa.Float)
    error: Mapped[str | None] = mapped_column(sa.Text)
    detail: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))


class Quarantine(Base):
    """A source record the hub could not accept, kept whole with the reason.

    Its columns take whatever arrives: ``payload_text`` is the record's exact JSON text
    (what ``hub quarantine retry`` reads), ``payload`` a jsonb copy for people and queries
    with what jsonb cannot hold made visible (NUL as ␀, NaN/Infinity as text).
    """

    __tablename__ = "quarantine"
    __table_args__ = (
        sa.Index("ix_quarantine_open", "status", "system", "stream"),
        sa.Index("uq_quarantine_open_payload", "system", "stream", "payload_hash", unique=True,
                 postgresql_where=sa.text("status = 'open'")),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    system: Mapped[str] = mapped_column(sa.String(32))
    stream: Mapped[str] = mapped_column(sa.String(64))
    source_ref: Mapped[str | None] = mapped_column(sa.Text)
    reason: Mapped[str] = mapped_column(sa.Text)
    payload: Mapped[dict[str, Any]]
    payload_text: Mapped[str | None] = mapped_column(sa.Text)
    payload_hash: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(20), server_default="open")  # open/resolved
    run_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    resolved_at: Mapped[dt.datetime | None]
    attempts: Mapped[int] = mapped_column(server_default="1")


class IdentityConflict(Base):
    """Two identity rules disagree about which customer a record is; never auto-merged."""

    __tablename__ = "identity_conflict"
    __table_args__ = (
        sa.UniqueConstraint("system", "object", "external_id", "reason"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    system: Mapped[str] = mapped_column(sa.String(32))
    object: Mapped[str] = mapped_column(sa.String(64))
    external_id: Mapped[str] = mapped_column(sa.String(200))
    reason: Mapped[str] = mapped_column(sa.String(200))
    chosen_customer_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    candidate_customer_ids: Mapped[list[int]] = mapped_column(ARRAY(sa.BigInteger))
    detail: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(sa.String(20), server_default="open")
    created_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
    # set when a person resolves it (hub.conflicts): merge | keep_apart, by whom, what moved
    resolved_at: Mapped[dt.datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(sa.String(100))
    resolution: Mapped[str | None] = mapped_column(sa.String(20))
    resolution_detail: Mapped[dict[str, Any] | None]


class CallbackReplay(Base):
    """A chat callback request accepted by ``hub serve``, remembered until its timestamp
    goes stale so that a replay is refused by every web process, also after a restart."""

    __tablename__ = "callback_replay"
    __table_args__ = (sa.Index("ix_callback_replay_expires_at", "expires_at"),)

    system: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(sa.String(64), primary_key=True)  # the request's msg_signature
    accepted_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]


class CallbackRejectionWindow(Base):
    """Refused callback requests from one source in one time window, counted per reason;
    past a threshold they reach the audit as one aggregate row when the window closes."""

    __tablename__ = "callback_rejection_window"

    system: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(64), primary_key=True)  # client address (IPv6: its /64)
    window_start: Mapped[dt.datetime] = mapped_column(primary_key=True)
    rejections: Mapped[int]
    reasons: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))  # reason → count
    last_at: Mapped[dt.datetime]


class RuleFiring(Base):
    """One automation rule fired for one subject in one window, once (``hub.rules.automation``).

    The unique key is the "exactly once": the row is inserted with ``ON CONFLICT DO NOTHING``
    in the transaction of the rule's actions; ``outcomes`` lists what each action did.
    """

    __tablename__ = "rule_firing"
    __table_args__ = (
        sa.UniqueConstraint("rule", "subject_type", "subject_id", "window_key"),
        sa.Index("ix_rule_firing_subject", "subject_type", "subject_id"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    rule: Mapped[str] = mapped_column(sa.String(100))
    subject_type: Mapped[str] = mapped_column(sa.String(30))  # lead/customer/sales_order/contract/receivable/task
    subject_id: Mapped[int] = mapped_column(sa.BigInteger)
    window_key: Mapped[str] = mapped_column(sa.String(200))  # the event's identity, or the deadline crossed
    fired_at: Mapped[dt.datetime]
    state: Mapped[str] = mapped_column(sa.String(20))  # done/failed
    outcomes: Mapped[list[Any]] = mapped_column(JSONB, server_default=sa.text("'[]'::jsonb"))
    error: Mapped[str | None] = mapped_column(sa.Text)


class RuleActivation(Base):
    """When a rule (by name) first became active: it fires only for events after that."""

    __tablename__ = "rule_activation"

    rule: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    activated_at: Mapped[dt.datetime]
    fingerprint: Mapped[str] = mapped_column(sa.String(64))  # of the rule's definition when first seen


class ReceivablePlan(Base):
    """One instalment (期次) of a signed contract's receivable plan (回款计划)."""

    __tablename__ = "receivable_plan"
    __table_args__ = (
        sa.UniqueConstraint("contract_id", "instalment_no"),
        sa.Index("ix_receivable_plan_customer", "customer_id", "due_date"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    contract_id: Mapped[int] = mapped_column(sa.ForeignKey("contract.id"))
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("customer.id"))
    instalment_no: Mapped[int]
    due_date: Mapped[dt.date]
    amount: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(sa.String(3))
    state: Mapped[str] = mapped_column(sa.String(20), server_default="planned")  # planned/invoiced/paid/cancelled
    rule: Mapped[str | None] = mapped_column(sa.String(100))  # the rule that planned it
    created_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)
class StageChange(Base):
    """One change of a lead's or customer's sales stage (销售阶段), the first stage included
    (``from_stage`` None): when each subject entered and left each stage, which the sales
    funnel's dwell times come from (``hub.stages``)."""

    __tablename__ = "stage_change"
    __table_args__ = (
        sa.CheckConstraint("subject_type IN ('lead', 'customer')", name="ck_stage_change_subject_type"),
        sa.Index("ix_stage_change_subject", "subject_type", "subject_id", "changed_at", "id",
                 postgresql_include=["to_stage"]),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    subject_type: Mapped[str] = mapped_column(sa.String(20))  # lead | customer
    subject_id: Mapped[int] = mapped_column(sa.BigInteger)
    from_stage: Mapped[str | None] = mapped_column(sa.String(50))
    to_stage: Mapped[str] = mapped_column(sa.String(50))
    changed_at: Mapped[dt.datetime]
    source: Mapped[str] = mapped_column(sa.String(32))  # crm, web_form, wecom, demo...
    actor: Mapped[str] = mapped_column(sa.String(200))


class SalesTarget(Base):
    """A period's sales target (销售目标) of one salesperson (``owner_id``) or one team
    (``department``), in one currency; set with ``hub targets set`` (audited)."""

    __tablename__ = "sales_target"
    __table_args__ = (
        sa.CheckConstraint("(owner_id IS NULL) <> (department IS NULL)", name="ck_sales_target_one_subject"),
        sa.CheckConstraint("amount >= 0", name="ck_sales_target_amount"),
        sa.Index("uq_sales_target_owner", "owner_id", "period_start", "currency", unique=True,
                 postgresql_where=sa.text("owner_id IS NOT NULL")),
        sa.Index("uq_sales_target_department", "department", "period_start", "currency", unique=True,
                 postgresql_where=sa.text("department IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(sa.ForeignKey("internal_user.id"))
    department: Mapped[str | None] = mapped_column(sa.String(200))
    period_start: Mapped[dt.date]  # the first day of the month the target is for
    currency: Mapped[str] = mapped_column(sa.String(3))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    set_by: Mapped[str] = mapped_column(sa.String(200))
    set_at: Mapped[dt.datetime] = mapped_column(server_default=NOW)


class ArCustomerBalance(Base):
    """The receivables report's per-customer summary (``hub.rules.receivables_summary``): one
    row per customer and currency with open bills, their aging as of ``report_snapshot.as_of``.
    Rebuilt as a whole after each receivable or receipt sync and after a customer merge,
    in one transaction with its snapshot stamp; never written anywhere else."""

    __tablename__ = "ar_customer_balance"
    __table_args__ = (
        sa.Index("ix_ar_customer_balance_overdue", "currency", "overdue", "customer_id"),
    )

    currency: Mapped[str] = mapped_column(sa.String(3), primary_key=True)
    customer_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    open_amount: Mapped[Decimal] = mapped_column(MONEY)
    overdue: Mapped[Decimal] = mapped_column(MONEY)
    not_due: Mapped[Decimal] = mapped_column(MONEY)
    b1_30: Mapped[Decimal] = mapped_column(MONEY)
    b31_60: Mapped[Decimal] = mapped_column(MONEY)
    b61_90: Mapped[Decimal] = mapped_column(MONEY)
    bover_90: Mapped[Decimal] = mapped_column(MONEY)
    open_bills: Mapped[int]
    oldest_days: Mapped[int | None]  # days past due of the oldest overdue open bill


class ArDaily(Base):
    """Per currency and day: receivable bills issued and receipts received (the DSO trend's
    ledger), rebuilt with :class:`ArCustomerBalance`."""

    __tablename__ = "ar_daily"

    currency: Mapped[str] = mapped_column(sa.String(3), primary_key=True)
    day: Mapped[dt.date] = mapped_column(primary_key=True)
    billed: Mapped[Decimal] = mapped_column(sa.Numeric(20, 2))
    received: Mapped[Decimal] = mapped_column(sa.Numeric(20, 2))
    bills: Mapped[int]  # receivable bills dated that day (a currency is on the DSO trend when it has any)


class ReportSnapshot(Base):
    """When a report's summary tables were last rebuilt, and the business date (hub
    timezone) their date-dependent figures (aging buckets) are computed for."""

    __tablename__ = "report_snapshot"

    name: Mapped[str] = mapped_column(sa.String(50), primary_key=True)
    as_of: Mapped[dt.date]
    refreshed_at: Mapped[dt.datetime]
