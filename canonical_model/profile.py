"""The 360° customer profile (360°客户视图): one query per section over the canonical tables.

Every value carries where it came from: the golden record's fields through
``field_sources``, everything else through its row's ``source_system`` /
``external_id`` / ``fetched_at``. Receivables are summarised the way finance reads
them: open total, overdue amount, aging buckets (not due, 1–30, 31–60, 61–90, >90
days past due) and credit used against the credit limit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection

AGING_BUCKETS = ("not_due", "1_30", "31_60", "61_90", "over_90")
KEY_FIELDS = ("credit_code", "region", "industry", "owner_id", "phone", "address", "credit_limit")


class ReceivableSummary(BaseModel):
    """Open receivables of one customer, per currency (amounts never mixed across currencies)."""

    currency: str
    open_amount: Decimal
    overdue_amount: Decimal
    aging: dict[str, Decimal]
    open_bills: int


class Profile(BaseModel):
    """Everything the hub knows about one customer."""

    customer: dict[str, Any]
    provenance: dict[str, Any]
    identities: list[dict[str, Any]]
    owner: dict[str, Any] | None
    contacts: list[dict[str, Any]]
    receivables: list[ReceivableSummary]
    credit_limit: Decimal | None
    credit_used: Decimal
    recent_orders: list[dict[str, Any]]
    recent_receipts: list[dict[str, Any]]
    open_tasks: list[dict[str, Any]]
    interactions: list[dict[str, Any]]
    approvals: list[dict[str, Any]]
    completeness: float
    as_of: dt.date
    contracts: list[dict[str, Any]] = []
    tickets: list[dict[str, Any]] = []
    touchpoints: list[dict[str, Any]] = []
    # interactions, service tickets and marketing touchpoints, newest first (互动记录 + 服务工单 + 营销触点)
    timeline: list[dict[str, Any]] = []
    # the instalments signed contracts are expected to pay (回款计划), by due date
    receivable_plan: list[dict[str, Any]] = []
    # per golden field, what each linked record says (hub.survivorship): system, external_id,
    # value, changed_at (at its source), chosen (its value is the one the golden record shows),
    # agrees (its value equals the golden one); owners also shown (the user's name)
    field_values: dict[str, list[dict[str, Any]]] = {}
    # golden fields some linked record gives another value for ("Kingdee says X, YonBIP says Y")
    disagreements: list[str] = []


def business_today(timezone: str = "Asia/Shanghai") -> dt.date:
    """Today's date where the business is (aging must not flip at UTC midnight)."""
    from zoneinfo import ZoneInfo

    return dt.datetime.now(ZoneInfo(timezone)).date()


# The aging of open receivables as SQL aggregates over ``receivable`` rows, ``:d`` the as-of
# date: the one definition of the buckets (profile, receivables report). Columns: open_amount,
# overdue, then one per bucket of AGING_BUCKETS, named after it (not_due, b1_30, …).
AGING_COLUMNS = """
    sum(open_amount) AS open_amount,
    sum(open_amount) FILTER (WHERE due_date < :d) AS overdue,
    sum(open_amount) FILTER (WHERE due_date >= :d) AS not_due,
    sum(open_amount) FILTER (WHERE :d - due_date BETWEEN 1 AND 30) AS b1_30,
    sum(open_amount) FILTER (WHERE :d - due_date BETWEEN 31 AND 60) AS b31_60,
    sum(open_amount) FILTER (WHERE :d - due_date BETWEEN 61 AND 90) AS b61_90,
    sum(open_amount) FILTER (WHERE :d - due_date > 90) AS bover_90
"""


def aging_of(row: Any) -> dict[str, Decimal]:
    """The bucket amounts of a row selected with :data:`AGING_COLUMNS` (missing = 0)."""
    zero = Decimal("0.00")
    mapping = row._mapping
    return {bucket: mapping["not_due" if bucket == "not_due" else f"b{bucket}"] or zero for bucket in AGING_BUCKETS}


def receivable_summaries(conn: Connection, customer_id: int, as_of: dt.date) -> list[ReceivableSummary]:
    """Open and overdue amounts and aging buckets per currency."""
    rows = conn.execute(sa.text(
        f"SELECT currency, {AGING_COLUMNS}, count(*) AS bills "
        "FROM receivable WHERE customer_id = :c AND open_amount > 0 GROUP BY currency ORDER BY currency"),
        {"c": customer_id, "d": as_of}).all()
    zero = Decimal("0.00")
    return [
        ReceivableSummary(currency=r.currency, open_amount=r.open_amount or zero, overdue_amount=r.overdue or zero,
                          aging=aging_of(r), open_bills=r.bills)
        for r in rows
    ]


# One customer's timeline: what happened with whom, from every source, newest first.
TIMELINE = """
    SELECT * FROM (
        SELECT 'interaction' AS type, kind, occurred_at, summary, source_system, external_id FROM interaction
         WHERE customer_id = :c
        UNION ALL
        SELECT 'ticket', kind, opened_at, subject, source_system, external_id FROM service_ticket WHERE customer_id = :c
        UNION ALL
        SELECT 'touchpoint', kind, occurred_at, COALESCE(campaign, url, detail, kind), source_system, external_id
          FROM touchpoint WHERE customer_id = :c
    ) t ORDER BY occurred_at DESC LIMIT 50
"""


def _dicts(conn: Connection, query: str, **params: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(sa.text(query), params)]


# (table, column, stored value) -> the value to show: the hub's vault opens sealed personal data
Reveal = Callable[[str, str, Any], Any]


def _keep(table: str, column: str, value: Any) -> Any:
    return value


def _comparable(field: str, value: Any) -> Any:
    if value is None:
        return None
    if field == "credit_limit":
        return Decimal(str(value))
    if field == "owner_id":
        return int(value)
    return value


def source_values(conn: Connection, customer_id: int, golden: dict[str, Any],
                  provenance: dict[str, Any]) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Per golden field, every linked record's value (from ``external_identity.source_values``),
    the one the golden record shows marked ``chosen``, each marked whether it ``agrees`` with
    the golden value; and the fields where a record disagrees."""
    rows = conn.execute(sa.text(
        "SELECT system, external_id, source_values FROM external_identity WHERE object = 'customer' "
        "AND canonical_table = 'customer' AND canonical_id = :c AND source_values IS NOT NULL "
        "ORDER BY system, external_id"), {"c": customer_id}).all()
    values: dict[str, list[dict[str, Any]]] = {}
    disagreements: list[str] = []
    for system, external_id, stored in rows:
        for field, value in (stored.get("values") or {}).items():
            source = provenance.get(field) or {}
            chosen = (source.get("system"), source.get("external_id")) == (system, external_id)
            agrees = _comparable(field, value) == _comparable(field, golden.get(field))
            values.setdefault(field, []).append({
                "system": system, "external_id": external_id, "value": value,
                "changed_at": stored.get("changed_at"), "chosen": chosen, "agrees": agrees})
            if not agrees and field not in disagreements:
                disagreements.append(field)
    owners = values.get("owner_id", [])
    if owners:  # an owner is shown by name, not by its id
        names: dict[int, str] = dict(conn.execute(
            sa.text("SELECT id, name FROM internal_user WHERE id = ANY(:ids)"),
            {"ids": [int(v["value"]) for v in owners]}).all())
        for claim in owners:
            claim["shown"] = names.get(int(claim["value"]))
    return values, sorted(disagreements)


def customer_profile(conn: Connection, customer_id: int, *, as_of: dt.date | None = None,
                     reveal: Reveal = _keep) -> Profile | None:
    """The full profile of one customer, or None when there is no such customer.

    ``as_of`` (the aging date) defaults to today in Asia/Shanghai; pass the tenant's own
    ``business_today(settings.timezone)`` where it differs. Mobiles and e-mails are stored
    sealed: ``reveal`` (``hub.vault.Vault.reveal``) opens them; without it they stay as
    stored. Masking per role is the caller's business.
    """
    as_of = as_of or business_today()
    customer = conn.execute(sa.text("SELECT * FROM customer WHERE id = :id"), {"id": customer_id}).first()
    if customer is None:
        return None
    data = dict(customer._mapping)
    provenance = data.pop("field_sources") or {}
    owner = None
    if data.get("owner_id"):
        found = _dicts(conn, "SELECT u.id, u.name, u.mobile, u.wecom_userid, u.department, m.name AS manager "
                             "FROM internal_user u LEFT JOIN internal_user m ON m.id = u.manager_id "
                             "WHERE u.id = :id", id=data["owner_id"])
        owner = found[0] if found else None
        if owner is not None:
            owner["mobile"] = reveal("internal_user", "mobile", owner["mobile"])
    receivables = receivable_summaries(conn, customer_id, as_of)
    credit_used = sum((s.open_amount for s in receivables if s.currency == data["currency"]), Decimal("0.00"))
    filled = sum(1 for f in KEY_FIELDS if data.get(f) not in (None, ""))
    has_contact = conn.execute(sa.text("SELECT count(*) FROM contact WHERE customer_id = :c"),
                               {"c": customer_id}).scalar_one() > 0
    completeness = round((filled + int(has_contact)) / (len(KEY_FIELDS) + 1), 3)
    contacts = _dicts(conn, "SELECT name, title, decision_role, mobile, email, source_system, external_id, "
                            "fetched_at FROM contact WHERE customer_id = :c ORDER BY name", c=customer_id)
    for contact in contacts:
        contact["mobile"] = reveal("contact", "mobile", contact["mobile"])
        contact["email"] = reveal("contact", "email", contact["email"])
    field_values, disagreements = source_values(conn, customer_id, data, provenance)
    return Profile(
        customer=data, provenance=provenance, field_values=field_values, disagreements=disagreements,
        identities=_dicts(conn, "SELECT system, object, external_id, first_seen, last_seen FROM external_identity "
                                "WHERE canonical_table = 'customer' AND canonical_id = :c ORDER BY system", c=customer_id),
        owner=owner,
        contacts=contacts,
        receivables=receivables, credit_limit=data.get("credit_limit"), credit_used=credit_used,
        recent_orders=_dicts(conn, "SELECT o.order_number, o.order_date, o.currency, o.total_amount, o.status, "
                                   "o.approval_state, o.legal_entity, o.erp_system, o.erp_bill_number, o.erp_status, "
                                   "o.erp_error, o.source_system, o.external_id, o.fetched_at, "
                                   # the order's latest OA approval: where, and the approver's reason
                                   "a.system AS approval_system, a.external_id AS approval_instance, "
                                   "a.comment AS approval_comment, a.error AS approval_error, "
                                   "a.decided_at AS approval_decided_at "
                                   "FROM sales_order o LEFT JOIN LATERAL (SELECT system, external_id, comment, error, "
                                   "decided_at FROM approval WHERE subject_type = 'sales_order' AND subject_id = o.id "
                                   "ORDER BY id DESC LIMIT 1) a ON true "
                                   "WHERE o.customer_id = :c ORDER BY o.order_date DESC, o.id DESC LIMIT 10",
                             c=customer_id),
        recent_receipts=_dicts(conn, "SELECT bill_number, receipt_date, currency, amount, source_system, external_id, "
                                     "fetched_at FROM receipt WHERE customer_id = :c ORDER BY receipt_date DESC LIMIT 10",
                               c=customer_id),
        open_tasks=_dicts(conn, "SELECT t.id, t.title, t.kind, t.due_at, t.push_state, t.problems, u.name AS assignee "
                                "FROM task t JOIN internal_user u ON u.id = t.assignee_id "
                                "WHERE t.customer_id = :c AND t.status = 'open' ORDER BY t.due_at", c=customer_id),
        interactions=_dicts(conn, "SELECT kind, occurred_at, summary, source_system, external_id FROM interaction "
                                  "WHERE customer_id = :c ORDER BY occurred_at DESC LIMIT 20", c=customer_id),
        approvals=_dicts(conn, "SELECT a.kind, a.subject_type, a.subject_id, a.state, a.system, a.external_id, "
                               "a.submitted_at, a.decided_at, a.comment, a.error, a.vendor_status, a.revoked_at, "
                               "o.order_number FROM approval a LEFT JOIN sales_order o ON a.subject_type = 'sales_order' "
                               "AND o.id = a.subject_id WHERE a.customer_id = :c ORDER BY a.submitted_at DESC, a.id DESC",
                         c=customer_id),
        completeness=completeness, as_of=as_of,
        contracts=_dicts(conn, "SELECT id, contract_number, title, currency, amount, status, signed_at, starts_on, "
                               "ends_on, owner_id, source_system, external_id, fetched_at FROM contract "
                               "WHERE customer_id = :c ORDER BY COALESCE(signed_at, created_at) DESC, id DESC LIMIT 20",
                         c=customer_id),
        tickets=_dicts(conn, "SELECT id, kind, subject, status, satisfaction, opened_at, closed_at, source_system, "
                             "external_id, fetched_at FROM service_ticket WHERE customer_id = :c "
                             "ORDER BY opened_at DESC, id DESC LIMIT 20", c=customer_id),
        touchpoints=_dicts(conn, "SELECT id, kind, occurred_at, campaign, url, source_system, external_id, fetched_at "
                                 "FROM touchpoint WHERE customer_id = :c ORDER BY occurred_at DESC, id DESC LIMIT 20",
                           c=customer_id),
        timeline=_dicts(conn, TIMELINE, c=customer_id),
        receivable_plan=_dicts(conn, "SELECT p.contract_id, k.contract_number, p.instalment_no, p.due_date, p.amount, "
                                     "p.currency, p.state, p.rule FROM receivable_plan p "
                                     "JOIN contract k ON k.id = p.contract_id WHERE p.customer_id = :c "
                                     "ORDER BY p.due_date, k.contract_number, p.instalment_no LIMIT 100",
                               c=customer_id),
    )
