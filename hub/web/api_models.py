"""Response models of the JSON API: the 360° profile (:class:`canonical_model.profile.Profile`), typed.

``Profile`` keeps its sections as plain dicts (it is a query result). The API gives each
section a real schema so that the OpenAPI document tells a client (and schemathesis)
what it gets; :class:`ProfileOut` has exactly ``Profile``'s fields (a test holds the two
together), and every section allows extra keys, so a column added to the profile query
reaches API clients before anyone updates this file.

Money stays ``Decimal`` and is serialised as a string ("58106.60"): a JSON float would
round it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from canonical_model.profile import Profile, ReceivableSummary


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow")


class CustomerOut(_Section):
    """The golden customer record (``customer`` row without its ``field_sources``)."""

    id: int
    name: str
    normalized_name: str | None = None
    credit_code: str | None = None
    region: str | None = None
    industry: str | None = None
    size: str | None = None
    phone: str | None = None
    address: str | None = None
    owner_id: int | None = None
    credit_limit: Decimal | None = None
    currency: str
    tags: list[str] = []
    stage: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    last_followup_at: dt.datetime | None = None
    assigned_at: dt.datetime | None = None


class FieldSource(_Section):
    """Where one golden-record field came from. ``fetched_at`` is passed through as stored (ISO text)."""

    system: str
    external_id: str | None = None
    fetched_at: str | None = None


class SourceValueOut(_Section):
    """What one linked record says about a golden field (``hub.survivorship``): its value, when
    it changed at its source, whether the golden record shows it (``chosen``) and whether it
    equals the golden value (``agrees``; false: a disagreement between sources)."""

    system: str
    external_id: str
    value: Any
    changed_at: str | None = None
    chosen: bool
    agrees: bool
    shown: str | None = None  # owners: the user's name


class IdentityOut(_Section):
    """One external record that resolved to this customer."""

    system: str
    object: str
    external_id: str
    first_seen: dt.datetime
    last_seen: dt.datetime


class OwnerOut(_Section):
    """The customer's owner (salesperson) and their manager's name."""

    id: int
    name: str
    mobile: str | None = None
    wecom_userid: str | None = None
    department: str | None = None
    manager: str | None = None


class ContactOut(_Section):
    """A person at the customer, with their place in the decision chain (决策链)."""

    name: str
    title: str | None = None
    decision_role: str | None = None
    mobile: str | None = None
    email: str | None = None
    source_system: str
    external_id: str
    fetched_at: dt.datetime


class OrderOut(_Section):
    """A recent sales order with its ERP bill number and status."""

    order_number: str
    order_date: dt.date
    currency: str
    total_amount: Decimal
    status: str
    approval_state: str
    erp_system: str | None = None
    erp_bill_number: str | None = None
    erp_status: str | None = None
    source_system: str
    approval_system: str | None = None  # where its latest OA approval is (dingtalk, wecom)
    approval_comment: str | None = None  # the approver's reason (a rejection's)


class ReceiptOut(_Section):
    """A recent receipt (收款单)."""

    bill_number: str
    receipt_date: dt.date
    currency: str
    amount: Decimal
    source_system: str


class TaskOut(_Section):
    """An open task with its per-channel push state and delivery problems."""

    id: int
    title: str
    kind: str
    due_at: dt.datetime
    push_state: dict[str, Any]
    problems: list[str]
    assignee: str


class InteractionOut(_Section):
    """A touchpoint on the customer's timeline."""

    kind: str
    occurred_at: dt.datetime
    summary: str
    source_system: str


class ApprovalOut(_Section):
    """An OA approval about something of this customer's."""

    kind: str
    subject_type: str
    subject_id: int
    state: str
    system: str
    submitted_at: dt.datetime
    decided_at: dt.datetime | None = None
    external_id: str | None = None  # the OA instance (DingTalk processInstanceId, WeCom sp_no)
    comment: str | None = None  # the approver's reason
    order_number: str | None = None  # an order approval's order


class ContractOut(_Section):
    """A contract (合同) with the customer."""

    id: int
    contract_number: str
    title: str
    currency: str
    amount: Decimal
    status: str
    signed_at: dt.datetime | None = None
    starts_on: dt.date | None = None
    ends_on: dt.date | None = None
    source_system: str


class ReceivablePlanOut(_Section):
    """One instalment of a signed contract's receivable plan (回款计划)."""

    contract_id: int
    contract_number: str
    instalment_no: int
    due_date: dt.date
    amount: Decimal
    currency: str
    state: str  # planned/invoiced/paid/cancelled
    rule: str | None = None  # the automation rule that planned it


class TicketOut(_Section):
    """A service ticket (服务工单): inquiry, complaint or satisfaction survey."""

    id: int
    kind: str
    subject: str
    status: str
    satisfaction: int | None = None
    opened_at: dt.datetime
    closed_at: dt.datetime | None = None
    source_system: str


class TouchpointOut(_Section):
    """A marketing touchpoint (营销触点): a quote or campaign opened, a link clicked."""

    id: int
    kind: str
    occurred_at: dt.datetime
    campaign: str | None = None
    url: str | None = None
    source_system: str


class TimelineEntry(_Section):
    """One event on the customer's timeline; ``type`` says which table it came from."""

    type: str  # interaction | ticket | touchpoint
    kind: str
    occurred_at: dt.datetime
    summary: str
    source_system: str


class ProfileOut(BaseModel):
    """The 360° profile as the API returns it (same fields as ``Profile``)."""

    customer: CustomerOut
    provenance: dict[str, FieldSource]
    identities: list[IdentityOut]
    owner: OwnerOut | None
    contacts: list[ContactOut]
    receivables: list[ReceivableSummary]
    credit_limit: Decimal | None
    credit_used: Decimal
    recent_orders: list[OrderOut]
    recent_receipts: list[ReceiptOut]
    open_tasks: list[TaskOut]
    interactions: list[InteractionOut]
    approvals: list[ApprovalOut]
    completeness: float
    as_of: dt.date
    contracts: list[ContractOut]
    tickets: list[TicketOut]
    touchpoints: list[TouchpointOut]
    timeline: list[TimelineEntry]
    receivable_plan: list[ReceivablePlanOut]
    field_values: dict[str, list[SourceValueOut]]
    disagreements: list[str]

    @classmethod
    def from_profile(cls, profile: Profile) -> ProfileOut:
        """Type a profile query result (values pass through unchanged)."""
        return cls.model_validate(profile.model_dump())


class CustomerHit(BaseModel):
    """One search result."""

    id: int
    name: str
    credit_code: str | None
    region: str | None
    industry: str | None
    owner: str | None
    matched_by: str  # "id" | "credit_code" | "external_id" | "name"
    matched_value: str | None  # e.g. "kingdee CUST00007" for an external-id match
    url: str


class Health(BaseModel):
    """What ``/healthz`` reports; ``status`` is "ok" only when both checks pass."""

    status: str
    database: str
    schema_revision: str | None
    head_revision: str | None


class Problem(BaseModel):
    """An error answer of the JSON API."""

    detail: str
