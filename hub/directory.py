"""Linking CRM users to their chat-directory accounts before a directory sync.

Directory sync matches CRM users by the directory's own id, then mobile, then e-mail
(``hub.targets.upsert_internal_users``). But WeCom apps created since 2022-06-20 get no
mobile or e-mail from ``user/get`` (messaging-apis.md §1.2), so nothing would match and
every salesperson would appear twice. Before syncing, the hub therefore asks the platform
for the account of each CRM user who has a mobile and no account yet (WeCom
``user/getuserid``) and stores it; the sync then finds them by account id.

Lookups are spent only on users that should exist: WeCom blocks ``getuserid`` for a day
when misses exceed 20 % of the seat count, so a miss is remembered on the user
(``directory_lookup_missed_at``) and not retried for ``retry_after``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from hub.audit import write_audit
from hub.database import Database
from hub.targets import USER_ID_COLUMN


@dataclass
class LinkCounts:
    """What one linking pass did."""

    asked: int = 0
    linked: int = 0
    missed: int = 0
    already_taken: int = 0


def link_users_by_mobile(
    db: Database, system: str, lookup: Callable[[str], str | None], *,
    retry_after: dt.timedelta = dt.timedelta(days=7), limit: int = 500,
) -> LinkCounts:
    """Give CRM users without an account on ``system`` the account their mobile has."""
    column = USER_ID_COLUMN[system]
    counts = LinkCounts()
    with db.begin() as conn:
        candidates = conn.execute(sa.text(
            f"SELECT id, mobile FROM internal_user WHERE {column} IS NULL AND mobile IS NOT NULL AND active "
            "AND (directory_lookup_missed_at IS NULL OR directory_lookup_missed_at < now() - :retry) "
            "ORDER BY id LIMIT :limit"), {"retry": retry_after, "limit": limit}).all()
    for user_id, mobile in candidates:
        counts.asked += 1
        account = lookup(mobile)
        with db.begin() as conn:
            if account is None:
                counts.missed += 1
                conn.execute(sa.text("UPDATE internal_user SET directory_lookup_missed_at = now() WHERE id = :id"),
                             {"id": user_id})
                continue
            taken = conn.execute(sa.text(f"SELECT id FROM internal_user WHERE {column} = :a"),
                                 {"a": account}).scalar()
            if taken is not None and taken != user_id:
                counts.already_taken += 1  # two hub users for one account: a person must decide
                write_audit(conn, actor=f"directory:{system}", system=system, operation="link:by_mobile",
                            outcome="conflict", key=str(user_id), external_id=account,
                            error=f"account {account} already belongs to hub user {taken}")
                continue
            conn.execute(sa.text(f"UPDATE internal_user SET {column} = :a WHERE id = :id"),
                         {"a": account, "id": user_id})
            counts.linked += 1
    return counts
