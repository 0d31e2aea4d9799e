"""OA approvals of CRM orders: opening one (the interface the automation rules call).

Only :func:`request_order_approval` lives here in this branch: the approvals work (DingTalk
/ WeCom approval instances, their callbacks and polling) replaces this module with a fuller
one that keeps this function's signature and its row semantics: one ``approval`` row of
kind ``order`` per open request, on the chat platform of the order's owner.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.errors import NotFoundError
from hub.rules.channels import channels, choice_sql


def request_order_approval(conn: Connection, order_id: int, *, at: dt.datetime) -> int | None:
    """Open an approval of sales order ``order_id``: an ``approval`` row (kind ``order``,
    subject ``sales_order``/``order_id``, the order's customer, state ``pending``, ``system``
    the owner's one chat platform, ``crm`` when none knows them), submitted ``at``.

    Returns its id, or None when the order has a pending or approved approval already
    (asking twice opens nothing). The order row is locked first, so two callers at once
    open one approval. Raises :class:`~hub.errors.NotFoundError` for an unknown order.
    """
    ordered = channels()
    chosen, _, _ = choice_sql("u", ordered)
    order = conn.execute(sa.text(
        f"""
        SELECT o.id, o.customer_id, {chosen} AS channel
        FROM sales_order o JOIN customer c ON c.id = o.customer_id
        LEFT JOIN internal_user u ON u.id = COALESCE(o.owner_id, c.owner_id)
        WHERE o.id = :id FOR UPDATE OF o
        """), {"id": order_id}).first()
    if order is None:
        raise NotFoundError(f"no sales order {order_id}")
    open_already = conn.execute(sa.text(
        "SELECT id FROM approval WHERE subject_type = 'sales_order' AND subject_id = :id "
        "AND state IN ('pending', 'approved') LIMIT 1"), {"id": order_id}).scalar()
    if open_already is not None:
        return None
    return int(conn.execute(sa.text(
        "INSERT INTO approval (kind, subject_type, subject_id, customer_id, state, system, submitted_at) "
        "VALUES ('order', 'sales_order', :id, :c, 'pending', :s, :at) RETURNING id"),
        {"id": order_id, "c": order.customer_id, "s": order.channel or "crm", "at": at}).scalar_one())


__all__ = ["request_order_approval"]
