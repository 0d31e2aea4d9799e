"""Chat events about customer contacts, onto the customer's timeline.

When a salesperson deletes a customer's contact in WeCom (``del_external_contact``) or
the contact deletes the salesperson (``del_follow_user``), the customer's timeline gets
an interaction: losing the WeChat line to a buyer is something the account owner's
manager wants to see (:func:`record_lost_contact`, WeCom's entry in
``hub.rules.EVENT_HANDLERS``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

LOST_CONTACT_CHANGES = ("del_external_contact", "del_follow_user")


def _created_at(event: Mapping[str, Any]) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(int(str(event.get("CreateTime", "")).strip()), dt.UTC)
    except (ValueError, OverflowError, OSError):
        return dt.datetime.now(dt.UTC)


def record_lost_contact(conn: Connection, event: Mapping[str, Any]) -> list[int]:
    """Put a "contact lost" interaction on the customer of the event's external contact.

    Returns the customers it was recorded on (none when the contact is unknown). The
    interaction's external id is built from the event, so an event delivered twice
    (WeCom retries after a slow answer) is recorded once.
    """
    change = str(event.get("ChangeType", ""))
    external_userid = str(event.get("ExternalUserID", "")).strip()
    userid = str(event.get("UserID", "")).strip()
    if event.get("Event") != "change_external_contact" or change not in LOST_CONTACT_CHANGES or not external_userid:
        return []
    contacts = conn.execute(sa.text(
        "SELECT DISTINCT ON (customer_id) customer_id, name FROM contact "
        "WHERE wecom_external_userid = :x AND customer_id IS NOT NULL ORDER BY customer_id, id"),
        {"x": external_userid}).all()
    if not contacts:
        return []
    user = conn.execute(sa.text("SELECT id, name FROM internal_user WHERE wecom_userid = :u"),
                        {"u": userid}).first() if userid else None
    who = user.name if user else (userid or "成员")
    occurred_at = _created_at(event)
    external_id = f"{change}:{userid}:{external_userid}:{event.get('CreateTime', '')}"[:200]
    recorded = []
    for contact in contacts:
        if change == "del_external_contact":
            summary = f"企业微信：{who} 删除了客户联系人 {contact.name}"
        else:
            summary = f"企业微信：客户联系人 {contact.name} 删除了 {who}（客户关系流失风险）"
        inserted = conn.execute(sa.text(
            "INSERT INTO interaction (customer_id, user_id, kind, occurred_at, summary, source_system, external_id) "
            "SELECT CAST(:c AS bigint), CAST(:u AS bigint), 'chat', CAST(:at AS timestamptz), CAST(:s AS text), "
            "'wecom', CAST(:x AS text) WHERE NOT EXISTS ("
            "  SELECT 1 FROM interaction WHERE customer_id = :c AND source_system = 'wecom' AND external_id = :x) "
            "RETURNING id"),
            {"c": contact.customer_id, "u": user.id if user else None, "at": occurred_at, "s": summary,
             "x": external_id}).scalar()
        if inserted is not None:
            recorded.append(int(contact.customer_id))
    return recorded
