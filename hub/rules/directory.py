"""Linking CRM users to their chat-directory accounts before a directory sync.

Directory sync matches CRM users by the directory's own id, then mobile, then e-mail
(``hub.engine.targets.upsert_internal_users``). But WeCom apps created since 2022-06-20 get no
mobile or e-mail from ``user/get`` (messaging-apis.md §1.2), so nothing would match and
every salesperson would appear twice. Before syncing, the hub therefore asks the platform
for the account of each CRM user who has a mobile and no account yet (WeCom
``user/getuserid``) and stores it; the sync then finds them by account id.

Lookups are spent only on users that should exist: WeCom blocks ``getuserid`` for a day
when misses exceed 20 % of the seat count, so a miss is remembered on the user, per
platform (``directory_lookup_misses``: a person missing from DingTalk may well be in
WeCom), and not retried for ``retry_after``.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from hub.audit import write_audit
from hub.contracts import ConnectorSpec
from hub.database import Database
from hub.engine.targets import user_id_column
from hub.errors import RateLimitedError
from hub.runtime import HubRuntime, before_stream

log = logging.getLogger(__name__)


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
    column = user_id_column(system)
    if column is None:
        raise ValueError(f"{system} is not a chat directory")
    counts = LinkCounts()
    vault = db.vault
    with db.begin() as conn:
        candidates = conn.execute(sa.text(
            f"SELECT id, mobile FROM internal_user WHERE {column} IS NULL AND mobile IS NOT NULL AND active "
            "AND COALESCE(CAST(directory_lookup_misses ->> :system AS timestamptz) < now() - :retry, true) "
            "ORDER BY id LIMIT :limit"), {"system": system, "retry": retry_after, "limit": limit}).all()
    for user_id, sealed in candidates:
        counts.asked += 1
        mobile = vault.open("internal_user", "mobile", sealed)  # the platform is asked with the number itself
        try:
            account = lookup(mobile)
        except RateLimitedError as exc:
            # the platform's per-second limit (the client paces to it, but a pass of lookups
            # lands on the window's edge now and then): wait as told, then ask once more
            time.sleep(min(exc.retry_after, 5.0))
            account = lookup(mobile)
        with db.begin() as conn:
            if account is None:
                counts.missed += 1
                conn.execute(sa.text(
                    "UPDATE internal_user SET directory_lookup_misses = directory_lookup_misses || "
                    "jsonb_build_object(CAST(:system AS text), now()) WHERE id = :id"), {"system": system, "id": user_id})
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


def link_before_directory_sync(runtime: HubRuntime, spec: ConnectorSpec[Any, Any], client: Any) -> None:
    """Before a chat directory's users are synced: link CRM users by mobile (see the module doc)."""
    if spec.chat is None or spec.chat.account_by_mobile is None:
        return
    linked = link_users_by_mobile(runtime.db, spec.system, functools.partial(spec.chat.account_by_mobile, client))
    log.info("%s: linked %d CRM user(s) by mobile before the directory sync (%d asked, %d missed)",
             spec.system, linked.linked, linked.asked, linked.missed)


before_stream("internal_user", link_before_directory_sync)
