"""Sales targets (销售目标): one amount per salesperson or team, month and currency.

:func:`set_target` is the only writer of ``sales_target`` (the ``hub targets set`` command
and the performance page's form, capability ``set_targets``, both call it): it checks the
subject exists, replaces an earlier target of the same month and currency, and writes an
audit row with the old and new amount in the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from canonical_model.records import KNOWN_CURRENCIES
from hub.audit import write_audit
from hub.errors import HubError

_CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_AMOUNT = Decimal("9999999999999999.99")  # Numeric(18, 2)


class TargetError(HubError):
    """A target that cannot be set: the subject, month, currency or amount is wrong (the message says which)."""


@dataclass(frozen=True)
class Target:
    """What was set, and what it replaced (None: nothing)."""

    owner_id: int | None
    department: str | None
    month: dt.date
    currency: str
    amount: Decimal
    previous: Decimal | None


def parse_target_month(text: str) -> dt.date:
    """``2026-11`` → 2026-11-01; anything else is a :class:`TargetError`."""
    try:
        return dt.datetime.strptime(text.strip(), "%Y-%m").date()
    except ValueError:
        raise TargetError(f"month: not a month (YYYY-MM): {text[:20]!r}") from None


def parse_target_amount(text: str) -> Decimal:
    """A non-negative amount with at most two decimals (``1,000,000`` accepted)."""
    try:
        amount = Decimal(text.replace(",", "").strip())
    except InvalidOperation:
        raise TargetError(f"amount: not a number: {text[:30]!r}") from None
    if not amount.is_finite() or amount < 0 or amount > MAX_AMOUNT or amount != amount.quantize(Decimal("0.01")):
        raise TargetError(f"amount: between 0 and {MAX_AMOUNT:,} with at most two decimals, not {text[:30]!r}")
    return amount


def set_target(conn: Connection, *, owner_id: int | None, department: str | None, month: dt.date, currency: str,
               amount: Decimal, actor: str) -> Target:
    """Set the ``month``'s target of salesperson ``owner_id`` or team ``department`` (exactly one)."""
    if (owner_id is None) == (department is None or not department.strip()):
        raise TargetError("a target is for one salesperson (owner) or one team (department), not both or neither")
    currency = currency.strip().upper()
    if not _CURRENCY.match(currency):
        raise TargetError(f"currency: a three-letter ISO 4217 code, not {currency[:10]!r}")
    if currency not in KNOWN_CURRENCIES:  # as the CRM API: a target in a currency no order has is a typo
        raise TargetError(f"currency: {currency} is not one the hub accepts ({', '.join(sorted(KNOWN_CURRENCIES))})")
    if owner_id is not None:
        if conn.execute(sa.text("SELECT 1 FROM internal_user WHERE id = :id"), {"id": owner_id}).first() is None:
            raise TargetError(f"owner: no user with id {owner_id}")
        subject = "owner_id = :s"
    else:
        department = (department or "").strip()
        if conn.execute(sa.text("SELECT 1 FROM internal_user WHERE department = :d LIMIT 1"),
                        {"d": department}).first() is None:
            raise TargetError(f"team: nobody is in department {department[:50]!r}")
        subject = "department = :s"
    first = month.replace(day=1)
    key = {"s": owner_id if owner_id is not None else department, "p": first, "c": currency}
    previous = conn.execute(sa.text(f"SELECT amount FROM sales_target WHERE {subject} AND period_start = :p "
                                    "AND currency = :c FOR UPDATE"), key).scalar()
    if previous is None:
        conn.execute(sa.text("INSERT INTO sales_target (owner_id, department, period_start, currency, amount, set_by) "
                             "VALUES (:o, :d, :p, :c, :a, :by)"),
                     {**key, "o": owner_id, "d": department if owner_id is None else None, "a": amount,
                      "by": actor[:200]})
    else:
        conn.execute(sa.text(f"UPDATE sales_target SET amount = :a, set_by = :by, set_at = now() WHERE {subject} "
                             "AND period_start = :p AND currency = :c"), {**key, "a": amount, "by": actor[:200]})
    write_audit(conn, actor=actor, system="hub", operation="sales_target:set", outcome="ok",
                key=f"sales_target:{'owner' if owner_id is not None else 'team'}:{key['s']}:{first:%Y-%m}:{currency}",
                detail={"amount": str(amount), "previous": None if previous is None else str(previous)})
    return Target(owner_id, department if owner_id is None else None, first, currency, amount, previous)
