"""WeCom's registry entry: client, streams, writers, chat channel and callbacks.

Everything here is built from :class:`~connectors.wecom.settings.WeComSettings`; the
sandbox (``connectors.wecom.sandbox``) is named by module path and loaded only in
sandbox mode. What a reminder's outcome changes on the task is the domain rules'
business (``hub.rules.reminders`` registers it for every ``*.reminder`` kind).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from connectors.wecom.callbacks import create_callback_app
from connectors.wecom.client import WeComClient
from connectors.wecom.mapping import ReminderTask, build_reminder_card
from connectors.wecom.settings import WeComSettings, parse_rate_windows
from connectors.wecom.streams import STREAMS
from connectors.wecom.writers import ApprovalWriter, ReminderWriter, reminder_recipient
from hub.calls import CallObserver
from hub.contracts import CallbackHooks, CallbackSpec, CallLimits, ChatChannel, ConnectorSpec, SendBudget

SYSTEM = "wecom"


def make_client(settings: WeComSettings, observer: CallObserver) -> WeComClient:
    """A client for the tenant the settings name (the runtime checked they are complete)."""
    assert settings.base_url and settings.corp_id and settings.secret and settings.agent_id is not None
    return WeComClient(corp_id=settings.corp_id, secret=settings.secret, agent_id=settings.agent_id,
                       base_url=settings.base_url, timeout=settings.timeout_s, observer=observer)


def prepare_reminder(payload: dict[str, Any]) -> dict[str, Any]:
    """Build the card once, at enqueue time, from the channel-neutral reminder payload."""
    task = ReminderTask(
        task_id=payload["task_id"], title=payload["title"],
        customer_name=payload.get("customer_name") or "（未关联客户）",
        due_at=dt.datetime.fromisoformat(payload["due_at"]), assignee_name=payload.get("assignee_name"),
    )
    card = build_reminder_card(task, profile_url=payload["profile_url"], kind=payload["kind"])
    return {**payload, "card": card}


def account_by_mobile(client: WeComClient, mobile: str) -> str | None:
    """The WeCom userid of a mobile number (``user/getuserid``)."""
    return client.get_userid_by_mobile(mobile)


def make_callback_receiver(settings: WeComSettings, hooks: CallbackHooks, path: str) -> Any | None:
    """The signed, encrypted event receiver, or None without callback credentials."""
    if not (settings.callback_token and settings.callback_aes_key and settings.corp_id):
        return None
    return create_callback_app(
        token=settings.callback_token.get_secret_value(),
        encoding_aes_key=settings.callback_aes_key.get_secret_value(), receive_id=settings.corp_id,
        hooks=hooks, path=path,
    )


def call_limits(settings: WeComSettings) -> CallLimits:
    """Sends in flight per app (a guess, ``max_concurrent_calls``) and the per-member message
    budget of the app (30/min, 1,000/h, §1.4), shared by every dispatcher through Postgres."""
    member_budget = SendBudget(
        scope=f"wecom:{settings.corp_id}:{settings.agent_id}", recipient=reminder_recipient,
        windows=parse_rate_windows(settings.member_message_limits),
        # a send is on its way at most one client timeout after it started
        unsettled_s=settings.timeout_s)
    return CallLimits(concurrency=settings.max_concurrent_calls, per_call=True, budgets={"reminder": member_budget})


CONNECTOR: ConnectorSpec[WeComSettings, WeComClient] = ConnectorSpec(
    system=SYSTEM,
    title="WeCom 企业微信",
    settings_model=WeComSettings,
    make_client=make_client,
    streams=STREAMS,
    # ScheduleWriter (calendar entries) is ready but nothing enqueues schedules yet: it joins
    # the registry with the rule that creates them.
    writers={"reminder": lambda client, settings: ReminderWriter(client),
             "approval": lambda client, settings: ApprovalWriter(
                 client, template_id=settings.approval_template_id, key_control=settings.approval_key_control)},
    sandbox="connectors.wecom.sandbox",
    chat=ChatChannel(label="WeCom", user_column="wecom_userid", prepare_reminder=prepare_reminder,
                     account_by_mobile=account_by_mobile),
    callbacks=CallbackSpec(make_receiver=make_callback_receiver),
    limits=call_limits,
)
