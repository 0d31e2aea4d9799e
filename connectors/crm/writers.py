"""Outbound effect on the CRM: one webhook delivery per outbox row (kind ``crm.webhook``).

The payload is ``{"event_id", "type", "body"}``, written when the event was handed to the
outbox (``hub.rules.webhooks``): the body is the exact JSON text delivered on every attempt,
and ``event_id`` the ``X-Hub-Delivery`` header. A receiver cannot be asked whether it got a
delivery, so when an earlier attempt's outcome is unknown (timeout, dropped reply) the writer
simply delivers again with the same delivery id: receivers de-duplicate by it (README).
"""

from __future__ import annotations

from typing import Any

from connectors.crm.client import WebhookClient
from hub.contracts import Attempt, WriteResult
from hub.errors import PermanentError


class WebhookWriter:
    """Delivers one stored event to the CRM's receiver."""

    system = "crm"
    operation = "webhook"

    def __init__(self, client: WebhookClient) -> None:
        self._client = client

    def apply(self, key: str, payload: dict[str, Any], attempt: Attempt) -> WriteResult:
        """POST the event (again, with the same delivery id, when an attempt's fate is unknown)."""
        event_id, event_type, body = payload.get("event_id"), payload.get("type"), payload.get("body")
        if not (isinstance(event_id, str) and isinstance(event_type, str) and isinstance(body, str)):
            raise PermanentError("webhook row lacks event_id, type or body", system=self.system,
                                 operation=self.operation, code="payload")
        status = self._client.deliver(delivery_id=event_id, event_type=event_type, body=body, key=key)
        return WriteResult(external_id=event_id, status=f"HTTP {status}",
                           detail={"redelivered": attempt.outcome_unknown})


__all__ = ["WebhookWriter"]
