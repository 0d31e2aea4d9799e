"""What every signed chat-platform callback receiver does the same way, written once.

WeCom and DingTalk push signed, encrypted events to the hub (WXBizMsgCrypt, see
:mod:`connectors.kit.crypto`); their envelopes differ (WeCom: XML and a GET URL check;
DingTalk: JSON and an encrypted ``success`` reply), the hostile-input rules do not:

- every refusal is a :class:`Refusal` (HTTP status, a reason in the audit's vocabulary,
  what was wrong but never a value), answered as plain text with the connection closed,
  and reported to the hub's ``on_rejected`` hook with :func:`request_details`;
- the query string is bounded, each parameter given once and shape-checked before any
  work (:func:`one_parameter`, :func:`check_shape`); the body is read as it streams and
  cut off past a limit (:func:`read_body`);
- the request's timestamp must be within the replay window; an accepted request's
  signature is remembered by the hub's replay guard until its timestamp goes stale, and
  forgotten when handling it failed so that the platform's own retry gets through
  (:meth:`SignedReceiver.hand_over`);
- signature checks, decryption, parsing and the hooks run in worker threads, at most
  ``CallbackLimits.workers`` at a time per receiver, so the web server's event loop stays free.

A platform's receiver subclasses :class:`SignedReceiver` and implements :meth:`handle`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote_plus

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.datastructures import QueryParams
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response

from connectors.kit.crypto import (
    BadPaddingError,
    CallbackCrypto,
    CallbackCryptoError,
    ReceiveIdMismatchError,
    SignatureMismatchError,
)
from hub.contracts import CallbackHooks

logger = logging.getLogger(__name__)
T = TypeVar("T")

SIGNATURE = re.compile(r"[0-9a-fA-F]{40}")
# Nonces are short on both platforms (WeCom ``1372623149``, DingTalk ``380320111`` in the
# vendors' samples); 64 printable characters is our generous bound, not a documented one.
NONCE = re.compile(r"[!-~]{1,64}")
BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_SHOWN = 64  # characters of a refused parameter kept in the rejection details


@dataclass(frozen=True)
class CallbackLimits:
    """How much a callback request may carry, and how many are checked at once."""

    max_query_bytes: int = 2048
    max_body_bytes: int = 1 << 20  # events are a few KB
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


def one_parameter(params: QueryParams, name: str) -> str | None:
    """Query parameter ``name``; :class:`Refusal` when it is given more than once."""
    values = params.getlist(name)
    if len(values) > 1:
        raise Refusal(400, "duplicate_parameter", f"{name} given {len(values)} times")
    return values[0] if values else None


def check_shape(reason: str, name: str, value: str, pattern: re.Pattern[str], shape: str) -> None:
    """:class:`Refusal` (400, ``reason``) unless ``value`` is entirely of ``pattern``'s shape."""
    if not pattern.fullmatch(value):
        raise Refusal(400, reason, f"{name} must be {shape} (got {len(value)} characters)")


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


def crypto_reason(exc: CallbackCryptoError) -> str:
    """The audit's reason for a request that failed authentication or decryption."""
    if isinstance(exc, SignatureMismatchError):
        return "bad_signature"
    if isinstance(exc, BadPaddingError):
        return "bad_padding"
    if isinstance(exc, ReceiveIdMismatchError):
        return "wrong_receive_id"
    return "undecryptable"


def request_details(request: Request, names: tuple[str, ...] = ("timestamp", "nonce")) -> dict[str, str]:
    """What the rejection audit keeps of a refused request: method, source address and
    short prefixes of the named query parameters (read from the raw query's first KBs:
    a refused query string may be too long to parse whole)."""
    raw = request.scope.get("query_string", b"")[: 4 * 1024].decode("latin-1")
    wanted = "|".join(re.escape(name) for name in names)
    found: dict[str, str] = {}
    for name, value in re.findall(rf"(?:^|&)({wanted})=([^&]*)", raw):
        found[name] = unquote_plus(value[: 3 * _SHOWN])[:_SHOWN]
    return {"method": request.method, "client": request.client.host if request.client else "",
            **{name: found.get(name, "") for name in names}}


class SignedReceiver:
    """The shared half of a platform's callback receiver (see the module docstring).

    Subclasses implement :meth:`handle` (parse the platform's envelope, verify, decrypt,
    hand over, answer) and may name the query parameters kept in rejection details.
    """

    detail_parameters: tuple[str, ...] = ("timestamp", "nonce")

    def __init__(self, crypto: CallbackCrypto, hooks: CallbackHooks, window_s: float,
                 now: Callable[[], float], limits: CallbackLimits) -> None:
        self.crypto = crypto
        self.hooks = hooks
        self.window_s = window_s
        self.now = now
        self.limits = limits
        self.workers = CapacityLimiter(limits.workers)

    async def endpoint(self, request: Request) -> Response:
        """Bound the query string, then :meth:`handle`; a refusal is reported and answered."""
        try:
            if len(request.scope.get("query_string", b"")) > self.limits.max_query_bytes:
                raise Refusal(400, "query_too_long", f"query string over {self.limits.max_query_bytes} bytes")
            return await self.handle(request)
        except Refusal as refusal:
            details = request_details(request, self.detail_parameters)
            await anyio.to_thread.run_sync(self.report, refusal, details, limiter=self.workers)
            return refusal.response()

    async def handle(self, request: Request) -> Response:
        """Check and take one request; raise :class:`Refusal` to refuse it."""
        raise NotImplementedError

    async def in_worker(self, function: Callable[..., T], *args: Any) -> T:
        """Run blocking ``function(*args)`` in a worker thread (bounded per receiver)."""
        return await anyio.to_thread.run_sync(function, *args, limiter=self.workers)

    async def body(self, request: Request) -> bytes:
        """The request body within ``limits.max_body_bytes``."""
        return await read_body(request, self.limits.max_body_bytes)

    def check_time(self, timestamp: str) -> float:
        """The request's send time in seconds; :class:`Refusal` when it is outside the window."""
        try:
            sent_at = self.crypto.timestamp_to_seconds(timestamp)
        except ValueError as exc:
            raise Refusal(400, "bad_timestamp") from exc
        if abs(self.now() - sent_at) > self.window_s:
            raise Refusal(403, "stale_timestamp")
        return sent_at

    def decrypt(self, signature: str, timestamp: str, nonce: str, encrypt: str) -> str:
        """Verify and decrypt; a crypto failure is a 403 :class:`Refusal` with its reason."""
        try:
            return self.crypto.verify_and_decrypt(signature, timestamp, nonce, encrypt)
        except CallbackCryptoError as exc:
            raise Refusal(403, crypto_reason(exc)) from exc

    def hand_over(self, fingerprint: str, sent_at: float, event: dict[str, Any]) -> bool:
        """Refuse a replay (403), else give ``event`` to ``on_event``; False when that failed
        (the fingerprint is then forgotten, so the platform's retry of this request is taken)."""
        if not self.hooks.replay_guard.first_time(fingerprint, self.now(), sent_at + self.window_s):
            raise Refusal(403, "replayed")
        try:
            self.hooks.on_event(event)
        except Exception:
            self.hooks.replay_guard.forget(fingerprint)
            logger.exception("on_event failed; answering 500 so that the platform retries")
            return False
        return True

    def report(self, refusal: Refusal, details: dict[str, str]) -> None:
        """Tell ``on_rejected``; its failure must not turn a refusal into a 500."""
        if refusal.problem:
            details["problem"] = refusal.problem
        try:
            self.hooks.on_rejected(refusal.reason, details)
        except Exception:
            logger.exception("on_rejected hook failed for %s", refusal.reason)


__all__ = [
    "BASE64",
    "NONCE",
    "SIGNATURE",
    "CallbackLimits",
    "Refusal",
    "SignedReceiver",
    "check_shape",
    "crypto_reason",
    "one_parameter",
    "read_body",
    "request_details",
]
