"""The CRM sandbox: a webhook receiver that verifies signatures and records deliveries.

:mod:`.receiver` is the Starlette app (``create_app(secrets=…)``). The hub points its CRM
settings at ``<url>/webhooks`` with :data:`SANDBOX_SECRET` (:func:`client_settings`).
"""

from pydantic import SecretStr

from connectors.crm.sandbox.receiver import SANDBOX_SECRET, WEBHOOK_PATH, Delivery, ReceiverState, create_app
from connectors.crm.settings import CrmSettings
from connectors.kit.sandbox import serve_in_thread
from hub.contracts import SandboxSpec


def client_settings(url: str, base: CrmSettings) -> CrmSettings:
    """``base`` pointed at a receiver serving at ``url``, with the receiver's secret."""
    return base.model_copy(update={"base_url": url.rstrip("/") + WEBHOOK_PATH,
                                   "signing_secret": SecretStr(SANDBOX_SECRET)})


SANDBOX: SandboxSpec[CrmSettings] = SandboxSpec(create_app=create_app, serve=serve_in_thread,
                                                client_settings=client_settings)

__all__ = ["SANDBOX", "SANDBOX_SECRET", "WEBHOOK_PATH", "Delivery", "ReceiverState", "client_settings", "create_app"]
