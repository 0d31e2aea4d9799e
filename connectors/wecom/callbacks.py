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
protects, and no request can hold the server's event loop (the shared rules are the
kit's, :mod:`connectors.kit.callbacks`):

- the query string is at most 2 KB and each parameter's shape is checked first:
  ``msg_signature`` 40 hex digits (a SHA-1), ``timestamp`` 1..10 digits (seconds),
  ``nonce`` 1..64 printable ASCII characters, ``echostr`` base64 of at most 1 KB, no
  parameter twice. WeCom's nonces are short (``1372623149`` in the reference); the 64 is
  our guess at a generous bound, not a documented one;
- the body is read as it streams and reading stops past 1 MB (413): memory stays flat
  whatever is uploaded; a declared Content-Length over the limit is refused before
  reading anything, and every refusal closes the connection, so the rest of a refused
  body is never read;
- XML (the envelope and the decrypted event) is parsed incrementally by defusedxml's
  hardened parser and refused past 16 levels of nesting or 5,000 elements; a DTD,
  entity declaration or external reference is refused outright (billion laughs, XXE);
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
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse as defused_iterparse
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from connectors.kit.callbacks import (
    BASE64,
    NONCE,
    SIGNATURE,
    CallbackLimits,
    Refusal,
    SignedReceiver,
    check_shape,
    one_parameter,
)
from connectors.kit.crypto import wecom_crypto
from hub.contracts import CallbackHooks

_TIMESTAMP = re.compile(r"[0-9]{1,10}")


@dataclass(frozen=True)
class WeComCallbackLimits(CallbackLimits):
    """The kit's limits plus WeCom's own: the URL check's echostr and the XML documents."""

    max_echostr_chars: int = 1024
    max_xml_depth: int = 16
    max_xml_elements: int = 5000


class _XmlError(ValueError):
    pass


# ---------------------------------------------------------------------------- XML


def parse_xml(text: str | bytes, *, max_depth: int = 16, max_elements: int = 5000) -> dict[str, Any]:
    """Parse a WeCom XML document into a dict (child tag → text, nested → dict, repeated → list).

    The parser is defusedxml's (``forbid_dtd``, ``forbid_entities``, ``forbid_external``):
    WeCom never sends a DTD, so any DTD, entity declaration or external reference is
    refused before it can expand (billion laughs) or reach out (XXE). Deciding this in the
    parser rather than by searching the text means a chat message that merely *mentions*
    ``<!DOCTYPE html>`` inside its CDATA is taken, not refused. The document is parsed
    incrementally and refused as soon as it nests deeper than ``max_depth`` or holds more
    than ``max_elements`` elements, so a hostile one costs little.
    """
    try:
        # WeCom sends UTF-8. Checked here, and the parser is given text (it then ignores
        # any declared encoding), so nothing can hide in UTF-16 from the parser's checks.
        document = text.decode("utf-8") if isinstance(text, bytes) else text
    except UnicodeDecodeError as exc:
        raise _XmlError("not UTF-8") from exc
    root: ET.Element | None = None
    depth = elements = 0
    try:
        # iterparse reads the document 16 KB at a time and yields as it goes
        for event, element in defused_iterparse(io.StringIO(document), events=("start", "end"), forbid_dtd=True,
                                                forbid_entities=True, forbid_external=True):
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
    except DefusedXmlException as exc:
        raise _XmlError(f"DTD, entity declaration or external reference refused ({type(exc).__name__})") from exc
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


# ---------------------------------------------------------------------------- query


@dataclass(frozen=True)
class SignedQuery:
    """The query parameters of a callback, each of a valid shape."""

    signature: str
    timestamp: str
    nonce: str
    echostr: str | None = None


def read_query(params: QueryParams, *, echo: bool, limits: WeComCallbackLimits) -> SignedQuery:
    """The signed query of a URL check (``echo``) or event, shape-checked; raises :class:`Refusal`."""
    signature, timestamp = one_parameter(params, "msg_signature"), one_parameter(params, "timestamp")
    nonce = one_parameter(params, "nonce")
    echostr = one_parameter(params, "echostr") if echo else None
    if not (signature and timestamp and nonce and (echostr or not echo)):
        raise Refusal(400, "missing_parameters")
    check_shape("bad_timestamp", "timestamp", timestamp, _TIMESTAMP, "1..10 digits")
    check_shape("bad_nonce", "nonce", nonce, NONCE, "1..64 printable ASCII characters")
    check_shape("malformed_signature", "msg_signature", signature, SIGNATURE, "40 hexadecimal digits")
    if echostr is not None:
        # Starlette has URL-decoded the query (step 5: "URL-decode first"). Form decoding
        # turns an unescaped '+' into a space; base64 has no spaces, so undo that.
        echostr = echostr.replace(" ", "+")
        if len(echostr) > limits.max_echostr_chars:
            raise Refusal(400, "malformed_echostr", f"echostr is {len(echostr)} characters, at most "
                                                    f"{limits.max_echostr_chars}")
        check_shape("malformed_echostr", "echostr", echostr, BASE64, "base64")
    return SignedQuery(signature, timestamp, nonce, echostr)


# ---------------------------------------------------------------------------- the receiver


class _Receiver(SignedReceiver):
    """The checks and hand-over of one WeCom app's callbacks (blocking parts run in threads)."""

    limits: WeComCallbackLimits

    async def handle(self, request: Request) -> Response:
        """Check the request, then verify the URL (GET) or take the event (POST)."""
        query = read_query(request.query_params, echo=request.method == "GET", limits=self.limits)
        sent_at = self.check_time(query.timestamp)
        if request.method == "GET":
            return await self.in_worker(self.verify_url, query)
        body = await self.body(request)
        return await self.in_worker(self.receive_event, query, sent_at, body)

    def verify_url(self, query: SignedQuery) -> Response:
        """The URL check: the bare decrypted echostr."""
        assert query.echostr is not None  # read_query(echo=True) guarantees it
        return PlainTextResponse(self.decrypt(query.signature, query.timestamp, query.nonce, query.echostr))

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
        if not BASE64.fullmatch(encrypt):
            raise Refusal(400, "malformed_encrypt", "Encrypt is not base64")
        plaintext = self.decrypt(query.signature, query.timestamp, query.nonce, encrypt)
        try:
            event = parse_xml(plaintext, max_depth=self.limits.max_xml_depth,
                              max_elements=self.limits.max_xml_elements)
        except _XmlError as exc:
            raise Refusal(400, "malformed_event", str(exc)) from exc
        if not self.hand_over(query.signature.lower(), sent_at, event):
            return Response(status_code=500)  # WeCom retries
        return Response(status_code=200)  # empty body = ack (§1.5)


def create_callback_app(
    *,
    token: str,
    encoding_aes_key: str,
    receive_id: str,
    hooks: CallbackHooks,
    replay_window_s: float = 300,
    now: Callable[[], float] = time.time,
    path: str = "/",
    limits: WeComCallbackLimits | None = None,
) -> Starlette:
    """Build the callback ASGI app for one WeCom app.

    ``token`` and ``encoding_aes_key`` are the callback settings from the admin console;
    ``receive_id`` is the corp id (self-built apps). ``hooks.on_event`` receives the
    decrypted event as a dict (``ToUserName, FromUserName, CreateTime, MsgType, Event,
    ...``) in a worker thread; keep it short (enqueue, don't process) to stay inside
    WeCom's 5 s.
    """
    receiver = _Receiver(wecom_crypto(token, encoding_aes_key, receive_id), hooks, replay_window_s, now,
                         limits or WeComCallbackLimits())
    return Starlette(routes=[Route(path, receiver.endpoint, methods=["GET", "POST"])])


__all__ = ["SignedQuery", "WeComCallbackLimits", "create_callback_app", "parse_xml", "read_query"]
