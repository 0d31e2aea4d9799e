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
accepted (same ``msg_signature``, which covers timestamp, nonce and ciphertext) is
refused until its timestamp goes stale. The memory of accepted signatures is the hub's
``replay_guard`` (Postgres: shared by every web process, kept across restarts). A replay
of an accepted event loses nothing — it was already handled — and if ``on_event``
fails, the signature is forgotten so that WeCom's own retry is accepted.

Anyone can send anything to this URL, so every limit is checked before the work it
protects, and no request can hold the server's event loop:

- the query string is at most 2 KB and each parameter's shape is checked first:
  ``msg_signature`` 40 hex digits (a SHA-1), ``timestamp`` 1..10 digits (seconds),
  ``nonce`` 1..64 printable ASCII characters, ``echostr`` base64 of at most 1 KB, no
  parameter twice. WeCom's nonces are short (``1372623149`` in the reference); the 64 is
  our guess at a generous bound, not a documented one;
- the body is read as it streams and reading stops past 1 MB (413): memory stays flat
  whatever is uploaded; a declared Content-Length over the limit is refused before
  reading anything, and every refusal closes the connection, so the rest of a refused
  body is never read;
- XML (the envelope and the decrypted event) is parsed incrementally and refused past
  16 levels of nesting or 5,000 elements; DTDs and entities are refused outright;
- signature, decryption, parsing, the replay guard and both hooks run in worker
  threads, at most ``workers`` at a time per receiver, so the pages and ``/healthz``
  keep answering while a request is checked.

Refusals answer 400 (malformed request), 413 (body too large) or 403 (forged,
undecryptable, stale or replayed), with the reason (and what was wrong, never a value)
as the body, and call ``on_rejected(reason, details)``, which the hub wires to the
audit. ``details`` holds ``method``, ``client`` (the source address), short prefixes of
``timestamp`` and ``nonce``, and ``problem`` when there is more to say than the reason.
"""

from __future__ import annotations

import io
import logging
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from connectors.kit.crypto import (
    BadPaddingError,
    CallbackCrypto,
    CallbackCryptoError,
    ReceiveIdMismatchError,
    SignatureMismatchError,
    wecom_crypto,
)
from hub.contracts import CallbackHooks

logger = logging.getLogger(__name__)

_SIGNATURE = re.compile(r"[0-9a-fA-F]{40}")
_TIMESTAMP = re.compile(r"[0-9]{1,10}")
_NONCE = re.compile(r"[!-~]{1,64}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_DECLARATION = re.compile(r"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_SHOWN = 64  # characters of a refused parameter kept in the rejection details


@dataclass(frozen=True)
class CallbackLimits:
    """How much a callback request may carry (see the module docstring)."""

    max_query_bytes: int = 2048
    max_body_bytes: int = 1 << 20  # events are a few KB
    max_echostr_chars: int = 1024
    max_xml_depth: int = 16
    max_xml_elements: int = 5000
    workers: int = 4  # concurrent requests being checked, per receiver


class Refusal(Exception):
    """A request refused: HTTP status, reason (the audit's vocabulary) and what was wrong."""

    def __init__(self, status: int, reason: str, problem: str = "") -> None:
        super().__init__(f"{reason}: {problem}" if problem else reason)
        self.status = status
        self.reason = reason
        self.problem = problem

    def response(self) -> Response:
        """The answer: the reason (and problem) as plain text, and the connection closed,
        so that whatever is left of a refused request's body is never read."""
        return PlainTextResponse(str(self), status_code=self.status, headers={"Connection": "close"})


class _XmlError(ValueError):
    pass


# ---------------------------------------------------------------------------- XML


def parse_xml(text: str | bytes, *, max_depth: int = 16, max_elements: int = 5000) -> dict[str, Any]:
    """Parse a WeCom XML document into a dict (child tag → text, nested → dict, repeated → list).

    DTDs and entities are refused outright: WeCom never sends them, and refusing them
    rules out entity-expansion attacks without a third-party parser. The document is
    parsed incrementally and refused as soon as it nests deeper than ``max_depth`` or
    holds more than ``max_elements`` elements, so a hostile one costs little.
    """
    try:
        # WeCom sends UTF-8. Checked here, and the parser is given text (it then ignores
        # any declared encoding), so a DTD cannot hide in UTF-16 from the check below.
        document = text.decode("utf-8") if isinstance(text, bytes) else text
    except UnicodeDecodeError as exc:
        raise _XmlError("not UTF-8") from exc
    if _DECLARATION.search(document):
        raise _XmlError("DTD or entity declarations are not accepted")
    root: ET.Element | None = None
    depth = elements = 0
    try:
        # iterparse reads the document 16 KB at a time and yields as it goes
        for event, element in ET.iterparse(io.StringIO(document), events=("start", "end")):
            if event == "end":
                depth -= 1
                continue
            depth += 1
            elements += 1
            root = element if root is None else root
            if depth > max_depth:
                raise _XmlError(f"nested deeper than {max_depth} levels")
            if elements > max_elements:
                raise _XmlError(f"more than {max_elements} elements")
    except ET.ParseError as exc:
        raise _XmlError("malformed XML") from exc
    if root is None:
        raise _XmlError("empty document")
    value = _element_value(root)
    return value if isinstance(value, dict) else {}


def _element_value(element: ET.Element) -> Any:
    children = list(element)
    if not children:
        return element.text or ""
    out: dict[str, Any] = {}
    for child in children:
        value = _element_value(child)
        existing = out.get(child.tag)
        if existing is None:
            out[child.tag] = value
        elif isinstance(existing, list):
            existing.append(value)  # values are str or dict, so a list here is a repeat list
        else:
            out[child.tag] = [existing, value]
    return out


# ---------------------------------------------------------------------------- query and body


@dataclass(frozen=True)
class SignedQuery:
    """The query parameters of a callback, each of a valid shape."""

    signature: str
    timestamp: str
    nonce: str
    echostr: str | None = None


def _one(params: QueryParams, name: str) -> str | None:
    values = params.getlist(name)
    if len(values) > 1:
        raise Refusal(400, "duplicate_parameter", f"{name} given {len(values)} times")
    return values[0] if values else None


def _shaped(reason: str, name: str, value: str, pattern: re.Pattern[str], shape: str) -> None:
    if not pattern.fullmatch(value):
        raise Refusal(400, reason, f"{name} must be {shape} (got {len(value)} characters)")


def read_query(params: QueryParams, *, echo: bool, limits: CallbackLimits) -> SignedQuery:
    """The signed query of a URL check (``echo``) or event, shape-checked; raises :class:`Refusal`."""
    signature, timestamp, nonce = _one(params, "msg_signature"), _one(params, "timestamp"), _one(params, "nonce")
    echostr = _one(params, "echostr") if echo else None
    if not (signature and timestamp and nonce and (echostr or not echo)):
        raise Refusal(400, "missing_parameters")
    _shaped("bad_timestamp", "timestamp", timestamp, _TIMESTAMP, "1..10 digits")
    _shaped("bad_nonce", "nonce", nonce, _NONCE, "1..64 printable ASCII characters")
    _shaped("malformed_signature", "msg_signature", signature, _SIGNATURE, "40 hexadecimal digits")
    if echostr is not None:
        # Starlette has URL-decoded the query (step 5: "URL-decode first"). Form decoding
        # turns an unescaped '+' into a space; base64 has no spaces, so undo that.
        echostr = echostr.replace(" ", "+")
        if len(echostr) > limits.max_echostr_chars:
            raise Refusal(400, "malformed_echostr", f"echostr is {len(echostr)} characters, at most "
                                                    f"{limits.max_echostr_chars}")
        _shaped("malformed_echostr", "echostr", echostr, _BASE64, "base64")
    return SignedQuery(signature, timestamp, nonce, echostr)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, read as it streams; :class:`Refusal` (413) as soon as it passes ``limit``.

    A declared Content-Length over the limit is refused before reading anything; a
    chunked upload is cut off at the first chunk past it (nothing more is read).
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit() and len(declared) <= 18):
            raise Refusal(400, "bad_content_length")
        if int(declared) > limit:
            raise Refusal(413, "body_too_large", f"{declared} bytes declared, at most {limit}")
    body = bytearray()
    try:
        async for chunk in request.stream():
            if len(body) + len(chunk) > limit:
                raise Refusal(413, "body_too_large", f"more than {limit} bytes")
            body += chunk
    except ClientDisconnect as exc:
        raise Refusal(400, "client_disconnected") from exc
    return bytes(body)


def _crypto_reason(exc: CallbackCryptoError) -> str:
    if isinstance(exc, SignatureMismatchError):
        return "bad_signature"
    if isinstance(exc, BadPaddingError):
        return "bad_padding"
    if isinstance(exc, ReceiveIdMismatchError):
        return "wrong_receive_id"
    return "undecryptable"


# ---------------------------------------------------------------------------- the receiver


class _Receiver:
    """The checks and hand-over of one WeCom app's callbacks (blocking parts run in threads)."""

    def __init__(self, crypto: CallbackCrypto, hooks: CallbackHooks, window_s: float,
                 now: Callable[[], float], limits: CallbackLimits) -> None:
        self.crypto = crypto
        self.hooks = hooks
        self.window_s = window_s
        self.now = now
        self.limits = limits
        self.workers = CapacityLimiter(limits.workers)

    async def endpoint(self, request: Request) -> Response:
        """Check the request, then verify the URL (GET) or take the event (POST)."""
        try:
            if len(request.scope.get("query_string", b"")) > self.limits.max_query_bytes:
                raise Refusal(400, "query_too_long", f"query string over {self.limits.max_query_bytes} bytes")
            query = read_query(request.query_params, echo=request.method == "GET", limits=self.limits)
            sent_at = self.check_time(query.timestamp)
            if request.method == "GET":
                return await anyio.to_thread.run_sync(self.verify_url, query, limiter=self.workers)
            body = await read_body(request, self.limits.max_body_bytes)
            return await anyio.to_thread.run_sync(self.receive_event, query, sent_at, body, limiter=self.workers)
        except Refusal as refusal:
            await anyio.to_thread.run_sync(self.report, refusal, _request_details(request), limiter=self.workers)
            return refusal.response()

    def check_time(self, timestamp: str) -> float:
        """The request's send time in seconds; :class:`Refusal` when it is outside the window."""
        try:
            sent_at = self.crypto.timestamp_to_seconds(timestamp)
        except ValueError as exc:
            raise Refusal(400, "bad_timestamp") from exc
        if abs(self.now() - sent_at) > self.window_s:
            raise Refusal(403, "stale_timestamp")
        return sent_at

    def verify_url(self, query: SignedQuery) -> Response:
        """The URL check: the bare decrypted echostr."""
        assert query.echostr is not None  # read_query(echo=True) guarantees it
        try:
            plaintext = self.crypto.verify_and_decrypt(query.signature, query.timestamp, query.nonce, query.echostr)
        except CallbackCryptoError as exc:
            raise Refusal(403, _crypto_reason(exc)) from exc
        return PlainTextResponse(plaintext)

    def receive_event(self, query: SignedQuery, sent_at: float, body: bytes) -> Response:
        """Open the envelope, verify, decrypt, parse, refuse replays, hand the event over."""
        try:
            envelope = parse_xml(body, max_depth=2, max_elements=16)
        except _XmlError as exc:
            raise Refusal(400, "malformed_body", str(exc)) from exc
        encrypt = envelope.get("Encrypt")
        if not isinstance(encrypt, str) or not encrypt.strip():
            raise Refusal(400, "missing_encrypt")
        encrypt = encrypt.strip()
        if not _BASE64.fullmatch(encrypt):
            raise Refusal(400, "malformed_encrypt", "Encrypt is not base64")
        try:
            plaintext = self.crypto.verify_and_decrypt(query.signature, query.timestamp, query.nonce, encrypt)
        except CallbackCryptoError as exc:
            raise Refusal(403, _crypto_reason(exc)) from exc
        try:
            event = parse_xml(plaintext, max_depth=self.limits.max_xml_depth,
                              max_elements=self.limits.max_xml_elements)
        except _XmlError as exc:
            raise Refusal(400, "malformed_event", str(exc)) from exc
        fingerprint = query.signature.lower()
        if not self.hooks.replay_guard.first_time(fingerprint, self.now(), sent_at + self.window_s):
            raise Refusal(403, "replayed")
        try:
            self.hooks.on_event(event)
        except Exception:
            # Forget the signature so WeCom's retry of this very request is accepted.
            self.hooks.replay_guard.forget(fingerprint)
            logger.exception("on_event failed; answering 500 so that WeCom retries")
            return Response(status_code=500)
        return Response(status_code=200)  # empty body = ack (§1.5)

    def report(self, refusal: Refusal, details: dict[str, str]) -> None:
        """Tell ``on_rejected``; its failure must not turn a refusal into a 500."""
        if refusal.problem:
            details["problem"] = refusal.problem
        try:
            self.hooks.on_rejected(refusal.reason, details)
        except Exception:
            logger.exception("on_rejected hook failed for %s", refusal.reason)


def _request_details(request: Request) -> dict[str, str]:
    # From the raw query's first KBs: a refused query string may be too long to parse whole.
    raw = request.scope.get("query_string", b"")[: 4 * 1024].decode("latin-1")
    found = {name: unquote_plus(value[: 3 * _SHOWN])[:_SHOWN]
             for name, value in re.findall(r"(?:^|&)(timestamp|nonce)=([^&]*)", raw)}
    return {
        "method": request.method,
        "client": request.client.host if request.client else "",
        "timestamp": found.get("timestamp", ""),
        "nonce": found.get("nonce", ""),
    }


def create_callback_app(
    *,
    token: str,
    encoding_aes_key: str,
    receive_id: str,
    hooks: CallbackHooks,
    replay_window_s: float = 300,
    now: Callable[[], float] = time.time,
    path: str = "/",
    limits: CallbackLimits | None = None,
) -> Starlette:
    """Build the callback ASGI app for one WeCom app.

    ``token`` and ``encoding_aes_key`` are the callback settings from the admin console;
    ``receive_id`` is the corp id (self-built apps). ``hooks.on_event`` receives the
    decrypted event as a dict (``ToUserName, FromUserName, CreateTime, MsgType, Event,
    ...``) in a worker thread; keep it short (enqueue, don't process) to stay inside
    WeCom's 5 s.
    """
    receiver = _Receiver(wecom_crypto(token, encoding_aes_key, receive_id), hooks, replay_window_s, now,
                         limits or CallbackLimits())
    return Starlette(routes=[Route(path, receiver.endpoint, methods=["GET", "POST"])])


__all__ = ["CallbackLimits", "Refusal", "SignedQuery", "create_callback_app", "parse_xml", "read_body",
           "read_query"]
