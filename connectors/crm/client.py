"""The only place that speaks HTTP to the CRM: signed webhook deliveries to its receiver.

One POST per delivery: the event's JSON body exactly as stored, signed afresh per attempt
(``connectors.crm.signing``: a new timestamp, the same body and the same delivery id), with
``X-Hub-Event`` and ``X-Hub-Delivery``. The reply's status is classified by the kit
(``connectors.kit.http``): 2xx delivered, 5xx/408/timeouts retried, 429 and 503 with
Retry-After rate-limited, other 4xx refused (a receiver that rejects the signature answers
401: a configuration matter, replayable once fixed). Redirects are not followed.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import httpx

from connectors.crm.events import DELIVERY_HEADER, EVENT_HEADER, PING, SIGNATURE_HEADER
from connectors.crm.signing import signature_header
from connectors.kit.http import CallContext, OwnsHttpClient, raise_for_status, send
from hub.calls import CallObserver, CallTimer, ignore_call

SYSTEM = "crm"


class WebhookClient(OwnsHttpClient):
    """Delivers signed events to one receiver URL."""

    def __init__(self, *, url: str, secrets: list[str], timeout: float = 10.0, observer: CallObserver = ignore_call,
                 clock: Callable[[], float] = time.time, transport: httpx.BaseTransport | None = None) -> None:
        if not secrets:
            raise ValueError("a webhook client needs a signing secret")
        self._url = httpx.URL(url)  # parsed once: httpx parses a string URL again on every request
        self._secrets = list(secrets)
        self._observer = observer
        self._clock = clock
        self._http = httpx.Client(timeout=timeout, follow_redirects=False, transport=transport)

    def deliver(self, *, delivery_id: str, event_type: str, body: str, key: str | None = None) -> int:
        """POST one event; returns the receiver's 2xx status or raises the kit's error."""
        data = body.encode("utf-8")
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            SIGNATURE_HEADER: signature_header(self._secrets, int(self._clock()), data),
            EVENT_HEADER: event_type,
            DELIVERY_HEADER: delivery_id,
            "User-Agent": "crm-erp-hub-webhooks/1",
        }
        request = self._http.build_request("POST", self._url, content=data, headers=headers)
        call = CallContext(SYSTEM, f"webhook:{event_type}", key=key, external_id=delivery_id)

        def read(response: httpx.Response, timer: CallTimer) -> int:
            raise_for_status(response, call)
            return response.status_code

        return send(self._http, request, call, self._observer, read)

    def check(self) -> None:
        """Send a signed ``ping`` (receivers answer 2xx to it; a refused signature is an error)."""
        delivery_id = f"ping-{uuid.uuid4()}"
        body = json.dumps({"id": delivery_id, "type": PING, "occurred_at": int(self._clock())})
        self.deliver(delivery_id=delivery_id, event_type=PING, body=body)


__all__ = ["WebhookClient"]
