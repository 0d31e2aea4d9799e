"""The CRM's registry entry: webhooks back to the CRM, delivered through the outbox.

The CRM has no inbound streams here: it pushes customers, orders, tasks and leads through
the hub's API (``hub serve``). What the hub sends back are signed webhooks (writer
``webhook``, outbox kind ``crm.webhook``). The sandbox (``connectors.crm.sandbox``) is a
receiver that verifies signatures and records what it got, loaded only in sandbox mode.
"""

from __future__ import annotations

from connectors.crm.client import WebhookClient
from connectors.crm.settings import CrmSettings
from connectors.crm.writers import WebhookWriter
from hub.calls import CallObserver
from hub.contracts import CallLimits, ConnectorSpec

SYSTEM = "crm"


def make_client(settings: CrmSettings, observer: CallObserver) -> WebhookClient:
    """A client for the configured receiver (the runtime checked the settings are complete)."""
    assert settings.base_url and settings.secrets()
    return WebhookClient(url=settings.base_url, secrets=settings.secrets(), timeout=settings.timeout_s,
                         observer=observer)


def make_webhook_writer(client: WebhookClient, settings: CrmSettings) -> WebhookWriter:
    """The ``crm.webhook`` writer."""
    return WebhookWriter(client)


def call_limits(settings: CrmSettings) -> CallLimits:
    """Deliveries in flight at once against the receiver (``max_concurrent_deliveries``)."""
    return CallLimits(concurrency=settings.max_concurrent_deliveries, per_call=True)


CONNECTOR: ConnectorSpec[CrmSettings, WebhookClient] = ConnectorSpec(
    system=SYSTEM,
    title="CRM (webhooks back)",
    settings_model=CrmSettings,
    make_client=make_client,
    writers={"webhook": make_webhook_writer},
    sandbox="connectors.crm.sandbox",
    limits=call_limits,
    inbound_note="the CRM writes into the hub through the API of `hub serve` (see /docs)",
)
