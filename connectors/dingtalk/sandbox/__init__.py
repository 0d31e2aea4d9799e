"""DingTalk server-API sandbox: a small, honest emulator of oapi.dingtalk.com and api.dingtalk.com.

Both hosts' routes served at the root (dingtalk-sdk drops a base-URL path prefix, §2.5),
with DingTalk's tokens, envelopes (errcode with 88 wrapping; v1.0 status + code), cursor
paging, error codes and limits (reference/messaging-apis.md §2 and §3), seeded from the
demo universe (the same people and departments as the WeCom sandbox), with switchable
faults. The official v1.0 SDK (alibabacloud-dingtalk) works against it unchanged but for
the endpoint (tests/contract/test_dingtalk_sdk.py).

The sandbox's credentials (``credentials.py``) exist nowhere else. :class:`CallbackDriver`
plays DingTalk's side of the event subscription against a receiver.
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr
from starlette.applications import Starlette

from connectors.dingtalk.sandbox.app import create_app
from connectors.dingtalk.sandbox.approvals import ORDER_TEMPLATE
from connectors.dingtalk.sandbox.callbacks import CallbackDriver, Push
from connectors.dingtalk.sandbox.credentials import (
    SANDBOX_AGENT_ID,
    SANDBOX_APP_KEY,
    SANDBOX_APP_SECRET,
    SANDBOX_CALLBACK_AES_KEY,
    SANDBOX_CALLBACK_TOKEN,
    SANDBOX_CORP_ID,
)
from connectors.dingtalk.sandbox.seed import DEFAULT_SEED, DingTalkMember, dingtalk_directory
from connectors.dingtalk.sandbox.state import TODO_EVENT, DingTalkState
from connectors.dingtalk.settings import DingTalkSettings
from connectors.kit.sandbox import serve_in_thread
from connectors.kit.sandbox.universe import crm_seed
from hub.contracts import SandboxSpec

# The account the hub creates to-dos as in the sandbox: the IT manager (信息技术经理), who
# runs the integration. `hub sandbox dingtalk` prints their unionId.
OPERATOR_TITLE = "信息技术经理"


def operator_union_id(seed: int = DEFAULT_SEED) -> str:
    """The unionId of the sandbox's to-do operator (see :data:`OPERATOR_TITLE`)."""
    return next(m.unionid for m in dingtalk_directory(seed) if m.title == OPERATOR_TITLE)


def make_sandbox(**options: Any) -> Starlette:
    """The sandbox with its built-in credentials; ``options`` go to :func:`create_app`."""
    settings: dict[str, Any] = {"app_key": SANDBOX_APP_KEY, "app_secret": SANDBOX_APP_SECRET,
                                "agent_id": SANDBOX_AGENT_ID, "corp_id": SANDBOX_CORP_ID}
    settings.update(options)
    return create_app(**settings)


def client_settings(url: str, base: DingTalkSettings) -> DingTalkSettings:
    """``base`` pointed at a sandbox serving both hosts at ``url``, with the sandbox's
    credentials (the callback token and aes_key too, unless set) and its CRM order approval
    template (unless set). The sandbox pushes no
    events by itself (a test drives them with :class:`CallbackDriver`), so the to-do poll
    is on unless ``base`` says otherwise."""
    return base.model_copy(update={
        "base_url": url, "api_base_url": url, "app_key": SANDBOX_APP_KEY, "corp_id": SANDBOX_CORP_ID,
        "jsapi_url": f"{url}/__sandbox__/dingtalk.open.js",
        "login_url": url,
        "app_secret": SecretStr(SANDBOX_APP_SECRET), "agent_id": SANDBOX_AGENT_ID,
        "operator_union_id": base.operator_union_id or operator_union_id(),
        "callback_token": base.callback_token or SecretStr(SANDBOX_CALLBACK_TOKEN),
        "callback_aes_key": base.callback_aes_key or SecretStr(SANDBOX_CALLBACK_AES_KEY),
        "poll_todo_completions": True if base.poll_todo_completions is None else base.poll_todo_completions,
        "approval_process_code": base.approval_process_code or ORDER_TEMPLATE.process_code,
    })


SANDBOX: SandboxSpec[DingTalkSettings] = SandboxSpec(
    create_app=make_sandbox, serve=serve_in_thread, client_settings=client_settings, demo_seed=crm_seed)

__all__ = [
    "DEFAULT_SEED",
    "OPERATOR_TITLE",
    "SANDBOX",
    "SANDBOX_AGENT_ID",
    "SANDBOX_APP_KEY",
    "SANDBOX_APP_SECRET",
    "SANDBOX_CALLBACK_AES_KEY",
    "SANDBOX_CALLBACK_TOKEN",
    "SANDBOX_CORP_ID",
    "TODO_EVENT",
    "CallbackDriver",
    "DingTalkMember",
    "DingTalkState",
    "Push",
    "client_settings",
    "create_app",
    "dingtalk_directory",
    "make_sandbox",
    "operator_union_id",
]
