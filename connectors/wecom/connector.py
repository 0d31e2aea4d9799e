"""WeCom's registry entry: how the hub core builds its client, streams, writers and sandbox.

The writers from :mod:`connectors.wecom.writers` perform the effect; the subclasses
here add what the outbox needs to write back onto canonical rows (the task's per-channel
push state and its problems), inside the dispatcher's transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from connectors.wecom.client import WeComClient
from connectors.wecom.mapping import ReminderTask, build_reminder_card
from connectors.wecom.sandbox import (
    SANDBOX_AGENT_ID,
    SANDBOX_CORP_ID,
    SANDBOX_SECRET,
    demo_customer_companies,
    demo_directory,
    make_sandbox,
)
from connectors.wecom.streams import STREAMS
from connectors.wecom.writers import ReminderWriter
from hub.calls import CallObserver
from hub.contracts import ConnectorSpec, WriteResult
from hub.errors import ConfigError, RecipientError
from hub.reminders import record_push_problem, record_push_result
from hub.settings import Settings

SYSTEM = "wecom"


def make_client(settings: Settings, observer: CallObserver, sandbox_url: str | None) -> WeComClient:
    """A client for the configured tenant, or for the in-process sandbox."""
    cfg = settings.wecom
    if sandbox_url is not None:
        from pydantic import SecretStr

        return WeComClient(corp_id=SANDBOX_CORP_ID, secret=SecretStr(SANDBOX_SECRET), agent_id=SANDBOX_AGENT_ID,
                           base_url=sandbox_url, timeout=cfg.timeout_s, observer=observer)
    if not (cfg.corp_id and cfg.secret and cfg.agent_id):
        raise ConfigError("WeCom needs HUB_WECOM__CORP_ID, HUB_WECOM__SECRET and HUB_WECOM__AGENT_ID "
                          "(or no HUB_WECOM__BASE_URL, for the sandbox)")
    return WeComClient(corp_id=cfg.corp_id, secret=cfg.secret, agent_id=cfg.agent_id,
                       base_url=cfg.base_url or "https://qyapi.weixin.qq.com", timeout=cfg.timeout_s,
                       observer=observer)


class HubReminderWriter(ReminderWriter):
    """The reminder writer plus its write-back onto the task."""

    def record_result(self, conn: Any, payload: dict[str, Any], result: WriteResult) -> None:
        """Mark the reminder sent on ``task.push_state``."""
        record_push_result(conn, SYSTEM, payload, "sent", {"msgid": result.external_id})

    def record_failure(self, conn: Any, payload: dict[str, Any], error: Exception) -> None:
        """Report the failure on the task: an unknown recipient is not retried forever."""
        state = "invalid_recipient" if isinstance(error, RecipientError) else "failed"
        record_push_result(conn, SYSTEM, payload, state, {"error": str(error)[:300]})
        who = payload.get("recipient_name") or payload.get("recipient")
        if isinstance(error, RecipientError):
            record_push_problem(conn, payload, f"WeCom does not know {who}: '{payload.get('kind')}' reminder not "
                                               f"delivered")
        else:
            record_push_problem(conn, payload, f"'{payload.get('kind')}' reminder to {who} failed: {error}")


def make_writer(kind: str, client: WeComClient, settings: Settings) -> HubReminderWriter:
    """The writer for an outbox kind of this connector."""
    if kind != "wecom.reminder":
        raise ConfigError(f"wecom has no writer for {kind!r}")
    return HubReminderWriter(client)


def prepare_payload(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Build the card once, at enqueue time, from the channel-neutral reminder payload."""
    task = ReminderTask(
        task_id=payload["task_id"], title=payload["title"],
        customer_name=payload.get("customer_name") or "（未关联客户）",
        due_at=dt.datetime.fromisoformat(payload["due_at"]), assignee_name=payload.get("assignee_name"),
    )
    card = build_reminder_card(task, profile_url=payload["profile_url"], kind=payload["kind"])
    return {**payload, "card": card}


def demo_seed() -> dict[str, list[dict[str, Any]]]:
    """The sandbox directory's people and its customers' companies, as the CRM demo holds them."""
    users = demo_directory()
    by_id = {u.userid: u for u in users}
    people = [
        {"crm_id": f"crm-{u.userid}", "name": u.name, "mobile": u.mobile, "email": u.email,
         "department": u.department, "title": u.position,
         "manager_crm_id": f"crm-{u.manager_userid}" if u.manager_userid in by_id else None,
         "is_sales_rep": u.is_sales_rep}
        for u in users
    ]
    companies = [{"name": c.full_name, "city": c.city, "region": c.region} for c in demo_customer_companies()]
    return {"people": people, "companies": companies}


CONNECTOR = ConnectorSpec(
    system=SYSTEM,
    title="WeCom 企业微信",
    make_client=make_client,
    streams=STREAMS,
    writer_kinds=("wecom.reminder",),
    make_writer=make_writer,
    make_sandbox=make_sandbox,
    check=lambda client: client.check(),
    prepare_payload=prepare_payload,
    account_by_mobile=lambda client, mobile: client.get_userid_by_mobile(mobile),
    demo_seed=demo_seed,
)
