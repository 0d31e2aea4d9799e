"""Receiver for WeCom's encrypted event callbacks (URL verification and events).

Protocol (reference/messaging-apis.md §1.5; crypto in :mod:`connectors.kit.crypto`):

- ``GET ?msg_signature&timestamp&nonce&echostr`` when the callback URL is saved: verify
  the signature over ``echostr``, decrypt it, answer the bare plaintext (no quotes, BOM
  or newline) within 1 s.
- ``POST`` with the same query (no echostr) and body
  ``<xml><ToUserName/><AgentID/><Encrypt/></xml>``: verify the signature over
  ``Encrypt``, decrypt (padding 1..32 and receive id = corp id checked), parse the
  plaintext XML and hand it to ``on_event``; answer an empty 200 (an ack) within 5 s,
  else WeCom retries up to 3 times.

On top of the vendor's checks this receiver refuses replays: the timestamp (seconds)
must be within ``replay_window_s`` of now, and a request identical to one already
accepted inside the window (same ``msg_signature``, which covers timestamp, nonce and
ciphertext) is refused too. A replay of an accepted event loses nothing — it was already
handled — and if ``on_event`` fails, the signature is forgotten so that WeCom's own retry
is accepted.

Refusals answer 400 (malformed request) or 403 (forged, undecryptable, stale or
replayed) and call ``on_rejected(reason, details)``, which the hub wires to the audit.
``on_event`` runs in a worker thread; keep it short (enqueue, don't process) to stay
inside WeCom's 5 s.
"""

from __future__ import annotations

import logging
import time
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from connectors.kit.crypto import (
    BadPaddingError,
    CallbackCryptoError,
    ReceiveIdMismatchError,
    SignatureMismatchError,
    wecom_crypto,
)

logger = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], None]
RejectionHandler = Callable[[str, Mapping[str, str]], None]

MAX_BODY_BYTES = 1 << 20  # events are a few KB; refuse anything absurd before parsing
MAX_REMEMBERED = 100_000


class _XmlError(ValueError):
    pass


def parse_xml(text: str | bytes) -> dict[str, Any]:
    """Parse a WeCom XML document into a dict (child tag → text, nested → dict, repeated → list).

    DTDs and entities are refused outright: WeCom never sends them, and refusing them
    rules out entity-expansion attacks without a third-party parser.
    """
    raw = text.encode("utf-8") if isinstance(text, str) else text
    if b"<!DOCTYPE" in raw.upper() or b"<!ENTITY" in raw.upper():
        raise _XmlError("DTD or entity declarations are not accepted")
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise _XmlError("malformed XML") from exc
    value = _element_value(root)
    return value if isinstance(value, dict) else {}


def _element_value(element: ET.Element) -> Any:
    children = list(element)
    if not children:
        return element.text or ""
    out: dict[str, Any] = {}
    for child in children:
        value = _element_value(child)
        if child.tag in out:
            existing = out[child.tag]
            out[child.tag] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            out[child.tag] = value
    return out


def _crypto_reason(exc: CallbackCryptoError) -> str:
    if isinstance(exc, SignatureMismatchError):
        return "bad_signature"
    if isinstance(exc, BadPaddingError):
        return "bad_padding"
    if isinstance(exc, ReceiveIdMismatchError):
        return "wrong_receive_id"
    return "undecryptable"


class _ReplayMemory:
    """Signatures accepted within the replay window (insertion-ordered, pruned by age)."""

    def __init__(self, window_s: float) -> None:
        self._window = window_s
        self._seen: OrderedDict[str, float] = OrderedDict()

    def _prune(self, now: float) -> None:
        while self._seen:
            signature, seen_at = next(iter(self._seen.items()))
            if now - seen_at <= self._window and len(self._seen) <= MAX_REMEMBERED:
                break
            self._seen.pop(signature)

    def seen(self, signature: str, now: float) -> bool:
        self._prune(now)
        return signature in self._seen

    def remember(self, signature: str, now: float) -> None:
        self._seen[signature] = now

    def forget(self, signature: str) -> None:
        self._seen.pop(signature, None)


def create_callback_app(
    *,
    token: str,
    encoding_aes_key: str,
    receive_id: str,
    on_event: EventHandler,
    on_rejected: RejectionHandler | None = None,
    replay_window_s: float = 300,
    now: Callable[[], float] = time.time,
    path: str = "/",
) -> Starlette:
    """Build the callback ASGI app for one WeCom app.

    ``token`` and ``encoding_aes_key`` are the callback settings from the admin console;
    ``receive_id`` is the corp id (self-built apps). ``on_event`` receives the decrypted
    event as a dict (``ToUserName, FromUserName, CreateTime, MsgType, Event, ...``).
    """
    crypto = wecom_crypto(token, encoding_aes_key, receive_id)
    memory = _ReplayMemory(replay_window_s)

    def reject(request: Request, status: int, reason: str) -> Response:
        details = {
            "method": request.method,
            "client": request.client.host if request.client else "",
            "timestamp": request.query_params.get("timestamp", ""),
            "nonce": request.query_params.get("nonce", ""),
        }
        if on_rejected is not None:
            try:
                on_rejected(reason, details)
            except Exception:  # the hook must not turn a refusal into a 500
                logger.exception("on_rejected hook failed for %s", reason)
        return PlainTextResponse(reason, status_code=status)

    def check_time(request: Request, timestamp: str) -> Response | None:
        try:
            sent_at = crypto.timestamp_to_seconds(timestamp)
        except ValueError:
            return reject(request, 400, "bad_timestamp")
        if abs(now() - sent_at) > replay_window_s:
            return reject(request, 403, "stale_timestamp")
        return None

    async def verify_url(request: Request) -> Response:
        params = request.query_params
        signature, timestamp, nonce = params.get("msg_signature"), params.get("timestamp"), params.get("nonce")
        echostr = params.get("echostr")
        if not (signature and timestamp and nonce and echostr):
            return reject(request, 400, "missing_parameters")
        # Starlette has URL-decoded the query (step 5: "URL-decode first"). Form decoding
        # turns an unescaped '+' into a space; base64 has no spaces, so undo that.
        echostr = echostr.replace(" ", "+")
        refused = check_time(request, timestamp)
        if refused is not None:
            return refused
        try:
            plaintext = crypto.verify_and_decrypt(signature, timestamp, nonce, echostr)
        except CallbackCryptoError as exc:
            return reject(request, 403, _crypto_reason(exc))
        return PlainTextResponse(plaintext)

    async def receive_event(request: Request) -> Response:
        params = request.query_params
        signature, timestamp, nonce = params.get("msg_signature"), params.get("timestamp"), params.get("nonce")
        if not (signature and timestamp and nonce):
            return reject(request, 400, "missing_parameters")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return reject(request, 400, "body_too_large")
        try:
            envelope = parse_xml(body)
        except _XmlError:
            return reject(request, 400, "malformed_body")
        encrypt = envelope.get("Encrypt")
        if not isinstance(encrypt, str) or not encrypt.strip():
            return reject(request, 400, "missing_encrypt")
        refused = check_time(request, timestamp)
        if refused is not None:
            return refused
        if memory.seen(signature, now()):
            return reject(request, 403, "replayed")
        try:
            plaintext = crypto.verify_and_decrypt(signature, timestamp, nonce, encrypt.strip())
        except CallbackCryptoError as exc:
            return reject(request, 403, _crypto_reason(exc))
        try:
            event = parse_xml(plaintext)
        except _XmlError:
            return reject(request, 400, "malformed_event")
        memory.remember(signature, now())
        try:
            await run_in_threadpool(on_event, event)
        except Exception:
            # Forget the signature so WeCom's retry of this very request is accepted.
            memory.forget(signature)
            logger.exception("on_event failed; answering 500 so that WeCom retries")
            return Response(status_code=500)
        return Response(status_code=200)  # empty body = ack (§1.5)

    async def endpoint(request: Request) -> Response:
        if request.method == "GET":
            return await verify_url(request)
        return await receive_event(request)

    return Starlette(routes=[Route(path, endpoint, methods=["GET", "POST"])])


__all__ = ["EventHandler", "RejectionHandler", "create_callback_app", "parse_xml"]
