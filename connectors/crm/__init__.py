"""The CRM: signed webhooks back to it, through the outbox.

Reading order: :mod:`.events` (what can be delivered, header names) → :mod:`.signing`
(HMAC-SHA256 over ``timestamp.body``, verification) → :mod:`.client` (one signed POST) →
:mod:`.writers` (one delivery per outbox row). :mod:`.sandbox` is a receiver that verifies
every signature and records what it got; it is imported on demand, not from here.
"""

from connectors.crm.client import WebhookClient
from connectors.crm.signing import SignatureError, signature_header, verify
from connectors.crm.writers import WebhookWriter

__all__ = ["SignatureError", "WebhookClient", "WebhookWriter", "signature_header", "verify"]
