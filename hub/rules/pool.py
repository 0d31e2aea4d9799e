"""The public pool (公海池): customers nobody owns, and how they leave it.

A customer without an owner after the ERP salespeople are linked (``hub.rules.salespeople``)
sits in the pool: ``customer.pool_since`` says since when (:func:`refresh_pool` keeps it in
step with ``owner_id``, after every customer stream and before every collection pass). Its overdue receivables go to finance meanwhile
(``hub.rules.collections``). It leaves the pool when someone owns it: a salesperson claims
it, or a manager hands it out (:func:`take_from_pool`, row-locked so two claims of one
customer cannot both win). The owner's provenance then names the hub and who did it
(``field_sources["owner_id"]``), and the customer's open 催收 task moves to the new owner.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.runtime import HubRuntime, after_stream


@dataclass
class PoolCounts:
    """What one refresh changed, and the pool's size after it."""

    entered: int = 0
    left: int = 0
    in_pool: int = 0


def refresh_pool(conn: Connection, now: dt.datetime | None = None) -> PoolCounts:
    """Put every ownerless customer in the pool (from ``now``) and take owned ones out."""
    at = now or dt.datetime.now(dt.UTC)
    entered = conn.execute(sa.text(
        "UPDATE customer SET pool_since = :at WHERE owner_id IS NULL AND pool_since IS NULL"), {"at": at}).rowcount
    left = conn.execute(sa.text(
        "UPDATE customer SET pool_since = NULL WHERE owner_id IS NOT NULL AND pool_since IS NOT NULL")).rowcount
    return PoolCounts(int(entered or 0), int(left or 0), ownerless_customers(conn))


def ownerless_customers(conn: Connection) -> int:
    """How many customers have no owner (the pool's size; Dagster's check and `hub doctor` show it)."""
    return int(conn.execute(sa.text("SELECT count(*) FROM customer WHERE owner_id IS NULL")).scalar_one())


class PoolRefusal(Exception):
    """The customer cannot be taken from the pool (named in the message): it does not exist
    or someone owns it already."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


def take_from_pool(conn: Connection, customer_id: int, owner_id: int, *, by: str,
                   now: dt.datetime | None = None) -> dict[str, object]:
    """Give pool customer ``customer_id`` to ``owner_id`` (``by``: who did it, for provenance).

    Raises :class:`PoolRefusal` (404: no such customer; 409: owned already). Returns the
    customer's id, name, owner and how many open 催收 tasks moved to the owner.
    """
    at = now or dt.datetime.now(dt.UTC)
    row = conn.execute(sa.text("SELECT id, name, owner_id FROM customer WHERE id = :id FOR UPDATE"),
                       {"id": customer_id}).first()
    if row is None:
        raise PoolRefusal(f"no customer {customer_id}", status=404)
    if row.owner_id is not None:
        raise PoolRefusal(f"customer {customer_id} is not in the public pool: it has an owner", status=409)
    source = {"system": "hub", "external_id": by[:200], "fetched_at": at.isoformat()}
    conn.execute(sa.text(
        "UPDATE customer SET owner_id = :o, pool_since = NULL, assigned_at = :at, updated_at = :at, "
        "field_sources = field_sources || jsonb_build_object('owner_id', CAST(:src AS jsonb)) WHERE id = :id"),
        {"o": owner_id, "at": at, "src": json.dumps(source, ensure_ascii=False), "id": customer_id})
    moved = conn.execute(sa.text(
        "UPDATE task SET assignee_id = :o WHERE customer_id = :id AND kind = 'collection' AND status = 'open' "
        "AND assignee_id <> :o"), {"o": owner_id, "id": customer_id}).rowcount
    return {"id": row.id, "name": row.name, "owner_id": owner_id, "collection_tasks_moved": int(moved or 0)}


def pool_customers(conn: Connection, *, limit: int = 100, offset: int = 0) -> list[dict[str, object]]:
    """The pool, longest waiting first, with basic info only (no receivables, no contacts)."""
    rows = conn.execute(sa.text(
        "SELECT id, name, region, industry, size, pool_since FROM customer WHERE owner_id IS NULL "
        "ORDER BY pool_since NULLS LAST, id LIMIT :l OFFSET :o"), {"l": limit, "o": offset}).all()
    return [dict(r._mapping) for r in rows]


def refresh_after_customer_sync(runtime: HubRuntime, spec: Any, stream: Any) -> None:
    """After any customer stream: customers that arrived without an owner enter the pool, and
    those that got one leave it."""
    with runtime.db.begin() as conn:
        refresh_pool(conn)


after_stream("customer", refresh_after_customer_sync)

__all__ = ["PoolCounts", "PoolRefusal", "ownerless_customers", "pool_customers", "refresh_pool", "take_from_pool"]
