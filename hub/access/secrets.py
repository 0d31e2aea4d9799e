"""Bearer and session tokens: random, shown once, stored only as their SHA-256.

A token is 32 random bytes (URL-safe text) behind a prefix that says what it is
(``hub_tok_`` for API tokens, ``hub_ses_`` for sessions), so a token pasted into a
log or a ticket is recognisable and the log redaction can find it. A fast hash is
right here (unlike passwords): the token has 256 bits of entropy, nothing to guess.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

API_TOKEN_PREFIX = "hub_tok_"
SESSION_PREFIX = "hub_ses_"


def new_token(prefix: str) -> str:
    """A fresh random token text with ``prefix``."""
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The stored form of ``token``: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two texts."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))
