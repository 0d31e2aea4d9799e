"""WeCom (企业微信) server-API sandbox: a small, honest emulator of qyapi.weixin.qq.com.

Same paths (``/cgi-bin/...``), token rules, JSON envelopes, cursors, error codes and
limits as the real API (reference/messaging-apis.md §1 and §3), seeded with a
deterministic demo corp, with switchable faults. The official SDK (wechatpy) works
against it unchanged but for the base URL (tests/contract/test_wecom_wechatpy.py).

The sandbox's credentials (``credentials.py``) exist nowhere else. :class:`CallbackDriver`
plays WeCom's side of the callback protocol against a receiver (the hub's, or
``connectors.wecom.callbacks``).
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr
from starlette.applications import Starlette

from connectors.kit.sandbox import serve_in_thread
from connectors.kit.sandbox.universe import crm_seed
from connectors.wecom.sandbox.app import create_app
from connectors.wecom.sandbox.approvals import ORDER_TEMPLATE
from connectors.wecom.sandbox.callbacks import CallbackDriver, Delivery
from connectors.wecom.sandbox.credentials import (
    SANDBOX_AGENT_ID,
    SANDBOX_CALLBACK_TOKEN,
    SANDBOX_CORP_ID,
    SANDBOX_ENCODING_AES_KEY,
    SANDBOX_OTHER_AGENT_ID,
    SANDBOX_OTHER_SECRET,
    SANDBOX_SECRET,
)
from connectors.wecom.sandbox.seed import (
    DEFAULT_SEED,
    DemoCompany,
    DemoDepartment,
    DemoExternalContact,
    DemoFollow,
    DemoUser,
    demo_customer_companies,
    demo_departments,
    demo_directory,
    demo_external_contacts,
)
from connectors.wecom.sandbox.state import SentMessage, WeComApiError, WeComState
from connectors.wecom.settings import WeComSettings
from hub.contracts import SandboxSpec


def make_sandbox(**options: Any) -> Starlette:
    """The sandbox with its built-in credentials; ``options`` go to :func:`create_app`."""
    settings: dict[str, Any] = {"corp_id": SANDBOX_CORP_ID, "secret": SANDBOX_SECRET, "agent_id": SANDBOX_AGENT_ID}
    settings.update(options)
    return create_app(**settings)


def client_settings(url: str, base: WeComSettings) -> WeComSettings:
    """``base`` pointed at a sandbox serving at ``url``, with the sandbox's credentials (the
    callback token and AES key too, unless set: a test may give the receiver its own), its
    OAuth and web-login pages and its CRM order approval template (unless set)."""
    return base.model_copy(update={
        "base_url": url, "corp_id": SANDBOX_CORP_ID, "secret": SecretStr(SANDBOX_SECRET),
        "agent_id": SANDBOX_AGENT_ID, "oauth_url": url, "web_login_url": url,
        "callback_token": base.callback_token or SecretStr(SANDBOX_CALLBACK_TOKEN),
        "callback_aes_key": base.callback_aes_key or SecretStr(SANDBOX_ENCODING_AES_KEY),
        "approval_template_id": base.approval_template_id or ORDER_TEMPLATE.template_id,
    })


SANDBOX: SandboxSpec[WeComSettings] = SandboxSpec(
    create_app=make_sandbox, serve=serve_in_thread, client_settings=client_settings, demo_seed=crm_seed)

__all__ = [
    "DEFAULT_SEED",
    "SANDBOX",
    "SANDBOX_AGENT_ID",
    "SANDBOX_CALLBACK_TOKEN",
    "SANDBOX_CORP_ID",
    "SANDBOX_ENCODING_AES_KEY",
    "SANDBOX_OTHER_AGENT_ID",
    "SANDBOX_OTHER_SECRET",
    "SANDBOX_SECRET",
    "CallbackDriver",
    "Delivery",
    "DemoCompany",
    "DemoDepartment",
    "DemoExternalContact",
    "DemoFollow",
    "DemoUser",
    "SentMessage",
    "WeComApiError",
    "WeComState",
    "client_settings",
    "create_app",
    "demo_customer_companies",
    "demo_departments",
    "demo_directory",
    "demo_external_contacts",
    "make_sandbox",
]
