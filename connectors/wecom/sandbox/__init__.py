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

from starlette.applications import Starlette

from connectors.wecom.sandbox.app import create_app
from connectors.wecom.sandbox.callbacks import CallbackDriver, Delivery
from connectors.wecom.sandbox.credentials import (
    SANDBOX_AGENT_ID,
    SANDBOX_CALLBACK_TOKEN,
    SANDBOX_CORP_ID,
    SANDBOX_ENCODING_AES_KEY,
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


def make_sandbox(**options: Any) -> Starlette:
    """The sandbox with its built-in credentials; ``options`` go to :func:`create_app`."""
    settings: dict[str, Any] = {"corp_id": SANDBOX_CORP_ID, "secret": SANDBOX_SECRET, "agent_id": SANDBOX_AGENT_ID}
    settings.update(options)
    return create_app(**settings)


__all__ = [
    "DEFAULT_SEED",
    "SANDBOX_AGENT_ID",
    "SANDBOX_CALLBACK_TOKEN",
    "SANDBOX_CORP_ID",
    "SANDBOX_ENCODING_AES_KEY",
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
    "create_app",
    "demo_customer_companies",
    "demo_departments",
    "demo_directory",
    "demo_external_contacts",
    "make_sandbox",
]
