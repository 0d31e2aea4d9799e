"""A CRM's webhook receiver as a Starlette app: verifies every signature, records what it got.

What a careful receiver does (README "Webhooks back to the CRM"), so the demo and the tests
see the hub's deliveries the way a CRM would:

1. ``POST /webhooks``: the raw body is verified against ``X-Hub-Signature`` with the secrets
   the receiver holds (:func:`connectors.crm.signing.verify`, 5-minute window); a missing or
   wrong signature is HTTP 401 and recorded under ``rejected``;
2. the delivery is de-duplicated by ``X-Hub-Delivery``: a redelivery is answered 200 again
   (``"duplicate": true``) and counted, but the event is accepted once;
3. faults (``connectors.kit.sandbox.FaultPlan``, operation ``webhook``): ``latency``;
   ``http_500`` → HTTP 500, nothing recorded; ``timeout`` → sleeps ``timeout_s``, nothing
   recorded; ``rate_limit`` → HTTP 429 with ``Retry-After: 1``; ``busy`` → HTTP 503;
   ``auth_expired`` → HTTP 401 (as if the secret were rotated away); ``drop_response`` → the
   delivery is accepted, then HTTP 504 with an empty body (the hub cannot tell it arrived).

Admin endpoints (not part of any CRM) live under ``/__sandbox__/``: ``deliveries`` (what was
accepted, in arrival order, and the counts), ``faults``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.crm.events import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER
from connectors.crm.signing import DEFAULT_TOLERANCE_S, SignatureError, verify
from connectors.kit.sandbox import FaultPlan
from connectors.kit.sandbox.admin import admin_faults, with_admin_index
from connectors.kit.sandbox.gate import ServingGate

WEBHOOK_PATH = "/webhooks"
SANDBOX_SECRET = "sandbox-webhook-signing-secret"  # the sandbox receiver's own key, not a real one


@dataclass
class Delivery:
    """One accepted event, as the receiver first saw it."""

    delivery_id: str
    event_type: str
    event: dict[str, Any]
    signatures: int  # v1 values on the request (2 during a secret rotation)


@dataclass
class ReceiverState:
    """What the receiver got. Handlers run on the server's event loop; tests read from their
    own thread, hence the lock."""

    secrets: list[str]
    tolerance_s: float = DEFAULT_TOLERANCE_S
    accepted: list[Delivery] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    arrivals: int = 0  # verified requests, redeliveries included
    duplicates: int = 0
    rejected: list[str] = field(default_factory=list)  # reasons, in order
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accept(self, delivery_id: str, event_type: str, body: bytes, signatures: int) -> bool:
        """Record a verified delivery; False when its delivery id was seen before."""
        with self.lock:
            self.arrivals += 1
            if delivery_id in self.seen:
                self.duplicates += 1
                return False
            self.seen.add(delivery_id)
            self.accepted.append(Delivery(delivery_id, event_type, json.loads(body), signatures))
            return True

    def refuse(self, reason: str) -> None:
        """Record a refused request."""
        with self.lock:
            self.rejected.append(reason)

    def snapshot(self) -> dict[str, Any]:
        """The admin view: accepted events in arrival order and the counts."""
        with self.lock:
            return {"accepted": [{"delivery_id": d.delivery_id, "event_type": d.event_type, "event": d.event,
                                  "signatures": d.signatures} for d in self.accepted],
                    "arrivals": self.arrivals, "duplicates": self.duplicates, "rejected": list(self.rejected)}


def _receiver(request: Request) -> tuple[ReceiverState, FaultPlan, ServingGate]:
    return request.app.state.receiver, request.app.state.faults, request.app.state.gate


async def _webhook(request: Request) -> Response:
    """POST: one signed delivery."""
    state, faults, gate = _receiver(request)
    body = await request.body()
    fault = faults.next_fault("webhook")
    if fault == "http_500":
        return Response("internal error", status_code=500)
    if fault == "timeout":
        await asyncio.sleep(faults.timeout_s)
        return Response(b"", status_code=504)
    if fault == "rate_limit":
        return JSONResponse({"error": "slow down"}, status_code=429, headers={"Retry-After": "1"})
    if fault == "busy":
        return JSONResponse({"error": "busy"}, status_code=503)
    if fault == "auth_expired":
        return JSONResponse({"error": "signature refused"}, status_code=401)
    admitted_at = gate.admit()
    assert admitted_at is not None  # the gate has no limit
    try:
        if fault == "latency":
            await asyncio.sleep(max(faults.latency_ms, 0) / 1000)
        header = request.headers.get(SIGNATURE_HEADER)
        try:
            verify(header, body, state.secrets, now=time.time(), tolerance_s=state.tolerance_s)
        except SignatureError as exc:
            state.refuse(str(exc))
            return JSONResponse({"error": str(exc)}, status_code=401)
        delivery_id = request.headers.get(DELIVERY_HEADER, "")
        event_type = request.headers.get(EVENT_HEADER, "")
        if not delivery_id or not event_type:
            state.refuse("missing X-Hub-Delivery or X-Hub-Event")
            return JSONResponse({"error": "missing X-Hub-Delivery or X-Hub-Event"}, status_code=400)
        try:
            first = state.accept(delivery_id, event_type, body, (header or "").count("v1="))
        except ValueError:
            state.refuse("body is not JSON")
            return JSONResponse({"error": "body is not JSON"}, status_code=400)
    finally:
        gate.done(admitted_at)
    if fault == "drop_response":
        return Response(b"", status_code=504)  # accepted, but the reply is lost on the way
    return JSONResponse({"received": delivery_id, "duplicate": not first})


async def _admin_deliveries(request: Request) -> Response:
    """GET: accepted events in arrival order, arrivals, duplicates, refusals and peak concurrency."""
    state, _, gate = _receiver(request)
    return JSONResponse({**state.snapshot(), **gate.describe()})


def create_app(*, secrets: Sequence[str] = (SANDBOX_SECRET,), faults: FaultPlan | None = None,
               tolerance_s: float = DEFAULT_TOLERANCE_S, **_options: Any) -> Starlette:
    """The receiver app; ``secrets`` are the keys it accepts (two during a rotation)."""
    routes = [
        Route(WEBHOOK_PATH, _webhook, methods=["POST"]),
        Route("/__sandbox__/deliveries", _admin_deliveries, methods=["GET"]),
        Route("/__sandbox__/faults", admin_faults, methods=["GET", "POST"]),
    ]
    app = Starlette(routes=with_admin_index("CRM webhook receiver", routes))
    app.state.receiver = ReceiverState(list(secrets), tolerance_s)
    app.state.faults = faults or FaultPlan()
    app.state.gate = ServingGate(limit=None)
    return app


__all__ = ["SANDBOX_SECRET", "WEBHOOK_PATH", "Delivery", "ReceiverState", "create_app"]
