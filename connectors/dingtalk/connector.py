"""DingTalk's registry entry: client, streams, writers, chat channel, callbacks and limits.

Everything here is built from :class:`~connectors.dingtalk.settings.DingTalkSettings`;
the sandbox (``connectors.dingtalk.sandbox``) is named by module path and loaded only in
sandbox mode. What a notice's or a to-do's outcome changes on the task is the domain
rules' business (``hub.rules.reminders`` and ``hub.rules.todos``).
"""

from __future__ import annotations

from typing import Any

from connectors.dingtalk.callbacks import create_callback_app
from connectors.dingtalk.client import DingTalkClient
from connectors.dingtalk.mapping import build_work_notice
from connectors.dingtalk.settings import DingTalkSettings
from connectors.dingtalk.streams import STREAMS
from connectors.dingtalk.writers import ApprovalWriter, NoticeWriter, TodoWriter, notice_recipient
from hub.calls import CallObserver
from hub.contracts import (
    CallbackHooks,
    CallbackSpec,
    CallLimits,
    ChatChannel,
    ConnectorSpec,
    RateWindow,
    SendBudget,
)

SYSTEM = "dingtalk"
DAY_S = 24 * 3600.0


def make_client(settings: DingTalkSettings, observer: CallObserver) -> DingTalkClient:
    """A client for the app the settings name (the runtime checked they are complete)."""
    assert settings.base_url and settings.api_base_url and settings.app_key and settings.app_secret
    assert settings.agent_id is not None and settings.operator_union_id
    return DingTalkClient(
        app_key=settings.app_key, app_secret=settings.app_secret, agent_id=settings.agent_id,
        operator_union_id=settings.operator_union_id, base_url=settings.base_url,
        api_base_url=settings.api_base_url, timeout=settings.timeout_s, observer=observer,
        polls_todo_completions=settings.polls_todo_completions(), max_qps=settings.max_qps)


def prepare_reminder(payload: dict[str, Any]) -> dict[str, Any]:
    """Build the work notice once, at enqueue time, from the channel-neutral reminder."""
    return {**payload, "msg": build_work_notice(payload)}


def account_by_mobile(client: DingTalkClient, mobile: str) -> str | None:
    """The DingTalk userid of a mobile number (``topapi/v2/user/getbymobile``)."""
    return client.get_userid_by_mobile(mobile)


def make_callback_receiver(settings: DingTalkSettings, hooks: CallbackHooks, path: str) -> Any | None:
    """The signed, encrypted event receiver, or None without subscription credentials."""
    if not (settings.callback_token and settings.callback_aes_key and settings.app_key):
        return None
    return create_callback_app(token=settings.callback_token.get_secret_value(),
                               aes_key=settings.callback_aes_key.get_secret_value(), app_key=settings.app_key,
                               hooks=hooks, path=path)


def call_limits(settings: DingTalkSettings) -> CallLimits:
    """Writes in flight per app (a guess from the 20 QPS of the standard edition,
    ``max_concurrent_calls``) and the per-user notice budget (500 a day, §2.2), shared by
    every dispatcher through Postgres."""
    daily = SendBudget(scope=f"dingtalk:{settings.app_key}:{settings.agent_id}", recipient=notice_recipient,
                       windows=(RateWindow(seconds=DAY_S, limit=settings.notices_per_user_per_day),),
                       unsettled_s=settings.timeout_s)
    return CallLimits(concurrency=settings.max_concurrent_calls, per_call=True, budgets={"reminder": daily})


CONNECTOR: ConnectorSpec[DingTalkSettings, DingTalkClient] = ConnectorSpec(
    system=SYSTEM,
    title="DingTalk 钉钉",
    settings_model=DingTalkSettings,
    make_client=make_client,
    streams=STREAMS,
    writers={"reminder": lambda client, settings: NoticeWriter(client),
             "todo": lambda client, settings: TodoWriter(client),
             "approval": lambda client, settings: ApprovalWriter(
                 client, process_code=settings.approval_process_code, key_control=settings.approval_key_control)},
    sandbox="connectors.dingtalk.sandbox",
    chat=ChatChannel(label="DingTalk", user_column="dingtalk_userid", prepare_reminder=prepare_reminder,
                     account_by_mobile=account_by_mobile, alias_column="dingtalk_unionid"),
    callbacks=CallbackSpec(make_receiver=make_callback_receiver),
    limits=call_limits,
)
