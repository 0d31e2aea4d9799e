"""Webhook signatures: HMAC-SHA256 over ``<timestamp>.<body>``, as in README "Webhooks back to the CRM".

The signed bytes are the decimal Unix timestamp (seconds, ASCII), one full stop, and the
request body exactly as sent (UTF-8 JSON bytes, not re-serialised). The header is::

    X-Hub-Signature: t=1764230400,v1=<64 hex digits>[,v1=<64 hex digits>…]

one ``v1`` per signing secret in use: during a secret rotation the hub signs with the new
and the previous secret, and a receiver accepts the request when *any* ``v1`` matches *any*
secret it holds. The same scheme as Stripe's ``Stripe-Signature`` (timestamp, then ``v1``
values); pure functions, no I/O, used by the hub's writer and by the sandbox receiver.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

DEFAULT_TOLERANCE_S = 300  # a signature older (or newer) than this is refused: replay window
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class SignatureError(ValueError):
    """A delivery whose signature does not verify; the message says why (never a secret)."""


def signed_bytes(timestamp: int, body: bytes) -> bytes:
    """What is signed: ``b"<timestamp>." + body``."""
    return str(int(timestamp)).encode("ascii") + b"." + body


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of :func:`signed_bytes` under ``secret`` (UTF-8)."""
    return hmac.new(secret.encode("utf-8"), signed_bytes(timestamp, body), hashlib.sha256).hexdigest()


def signature_header(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """``t=<timestamp>,v1=<sig>`` with one ``v1`` per secret, in the order given."""
    if not secrets:
        raise ValueError("at least one signing secret is needed")
    return ",".join([f"t={int(timestamp)}", *(f"v1={signature(s, timestamp, body)}" for s in secrets)])


def parse_header(header: str) -> tuple[int, list[str]]:
    """The timestamp and the ``v1`` signatures of a header (unknown schemes are ignored)."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError("malformed signature header (expected t=…,v1=…)")
        if name == "t":
            if not value.isdigit() or timestamp is not None:
                raise SignatureError("malformed signature header: bad or repeated t=")
            timestamp = int(value)
        elif name == "v1" and _HEX64.match(value):
            signatures.append(value)
    if timestamp is None:
        raise SignatureError("signature header has no timestamp (t=)")
    if not signatures:
        raise SignatureError("signature header has no v1 signature")
    return timestamp, signatures


def verify(header: str | None, body: bytes, secrets: Sequence[str], *, now: float,
           tolerance_s: float = DEFAULT_TOLERANCE_S) -> int:
    """Check a delivery; returns its timestamp, or raises :class:`SignatureError`.

    Steps: parse ``t`` and every ``v1``; refuse a timestamp more than ``tolerance_s`` away
    from ``now``; compute the expected signature under each secret held and accept when one
    equals one ``v1`` (constant-time comparison).
    """
    if not header:
        raise SignatureError("no signature header")
    timestamp, signatures = parse_header(header)
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError(f"timestamp outside the {tolerance_s:g} s window (replayed or clock skew)")
    expected = [signature(secret, timestamp, body) for secret in secrets]
    if not any(hmac.compare_digest(e, s) for e in expected for s in signatures):
        raise SignatureError("no signature matches a known secret")
    return timestamp


__all__ = ["DEFAULT_TOLERANCE_S", "SignatureError", "parse_header", "signature", "signature_header", "signed_bytes",
           "verify"]
