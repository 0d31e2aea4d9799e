"""WeCom's event callbacks, wired to the hub: audit every event, note lost contacts.

The receiver itself (signature, decryption, replay refusal) is
:func:`connectors.wecom.callbacks.create_callback_app`; this module gives it its
settings and its two hooks:

- ``on_event``: one audit row per accepted event (system ``wecom``, operation
  ``callback:<Event>/<ChangeType>``). When a salesperson deletes a customer's contact
  (``del_external_contact``) or the contact deletes the salesperson
  (``del_follow_user``), the customer's timeline gets an interaction too: losing the
  WeChat line to a buyer is something the account owner's manager wants to see.
- ``on_rejected``: an audit row with outcome ``rejected`` and the reason, so forged or
  replayed calls are on record.

The web package is an entry layer (like the CLI), so importing the WeCom connector's
receiver here is allowed; the registry's ``ConnectorSpec`` has no callback hook yet.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.audit import write_audit
from hub.database import Database
from hub.settings import Settings

log = logging.getLogger(__name__)

SYSTEM = "wecom"
ACTOR = "web:wecom-callback"
LOST_CONTACT_CHANGES = ("del_external_contact", "del_follow_user")
# Event fields that are not worth keeping in the audit: a welcome code lets whoever
# holds it send the welcome message for 20 s; the audit only needs to know there was one.
_NOT_AUDITED = frozenset({"WelcomeCode", "Encrypt"})


@dataclass(frozen=True)
class CallbackConfig:
    """The receiver's credentials (never logged or rendered) and where they came from."""

    token: str
    encoding_aes_key: str
    corp_id: str
    sandbox: bool


def callback_config(settings: Settings) -> CallbackConfig | None:
    """Token, AES key and corp id from the settings; on the sandbox, the sandbox's own
    for whatever is unset. None when a real tenant lacks any of them."""
    cfg = settings.wecom
    token = cfg.callback_token.get_secret_value() if cfg.callback_token else None
    aes_key = cfg.callback_aes_key.get_secret_value() if cfg.callback_aes_key else None
    corp_id = cfg.corp_id
    on_sandbox = cfg.base_url is None
    if on_sandbox:
        from connectors.wecom.sandbox import SANDBOX_CALLBACK_TOKEN, SANDBOX_CORP_ID, SANDBOX_ENCODING_AES_KEY

        token = token or SANDBOX_CALLBACK_TOKEN
        aes_key = aes_key or SANDBOX_ENCODING_AES_KEY
        corp_id = corp_id or SANDBOX_CORP_ID
    if not (token and aes_key and corp_id):
        return None
    return CallbackConfig(token, aes_key, corp_id, on_sandbox)


def operation_name(event: Mapping[str, Any]) -> str:
    """``callback:<Event>/<ChangeType>`` (``callback:<MsgType>`` for plain messages)."""
    kind = str(event.get("Event") or event.get("MsgType") or "unknown")
    change = event.get("ChangeType")
    name = f"callback:{kind}/{change}" if change else f"callback:{kind}"
    return name[:100]  # audit_log.operation is varchar(100)


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


def event_handler(db: Database) -> Callable[[dict[str, Any]], None]:
    """``on_event``: audit the event and record lost contacts, in one transaction.

    An exception here makes the receiver answer 500, so WeCom retries; nothing is
    half-recorded because audit row and interaction commit together.
    """

    def on_event(event: dict[str, Any]) -> None:
        with db.begin() as conn:
            customers = record_lost_contact(conn, event)
            detail: dict[str, Any] = {k: v for k, v in event.items() if k not in _NOT_AUDITED}
            if customers:
                detail["interaction_customer_ids"] = customers
            write_audit(conn, actor=ACTOR, system=SYSTEM, operation=operation_name(event), outcome="ok",
                        external_id=(str(event.get("ExternalUserID") or "") or None), detail=detail)

    return on_event


def rejection_handler(db: Database) -> Callable[[str, Mapping[str, str]], None]:
    """``on_rejected``: one audit row with outcome ``rejected`` and the reason."""

    def on_rejected(reason: str, details: Mapping[str, str]) -> None:
        with db.begin() as conn:
            write_audit(conn, actor=ACTOR, system=SYSTEM, operation="callback", outcome="rejected",
                        error=reason, detail={"reason": reason, **dict(details)})

    return on_rejected


def create_wecom_callback(db: Database, settings: Settings, *, path: str,
                          now: Callable[[], float] | None = None) -> Any | None:
    """The receiver ASGI app answering at ``path``, or None when WeCom callbacks are not configured."""
    config = callback_config(settings)
    if config is None:
        log.warning("WeCom callbacks are off: set HUB_WECOM__CALLBACK_TOKEN, HUB_WECOM__CALLBACK_AES_KEY "
                    "and HUB_WECOM__CORP_ID")
        return None
    from connectors.wecom.callbacks import create_callback_app

    options: dict[str, Any] = {} if now is None else {"now": now}
    return create_callback_app(
        token=config.token, encoding_aes_key=config.encoding_aes_key, receive_id=config.corp_id,
        on_event=event_handler(db), on_rejected=rejection_handler(db), path=path, **options,
    )
