"""Sign-in codes as a chat platform hands them out: single-use, short-lived, per app.

Both WeCom (网页授权 ``code``) and DingTalk (免登 ``authCode``) identify the person who
opened a page inside the app with a code the app's server exchanges, with the app's own
access token, for the person's userid (reference/messaging-apis.md §6). A sandbox keeps
its codes in a :class:`CodeBook`: :meth:`CodeBook.issue` stands in for the app giving a
code to a page, :meth:`CodeBook.redeem` is the exchange. What the vendors document: a
code lives about five minutes and works once. What they do not, and is modelled here as
the safe guess: a code issued to one app is refused when exchanged with another app's
token (it reads as unknown), and an unknown, used or expired code is one error.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

CODE_TTL_S = 300.0  # "about five minutes" (§6)


class Refusal(StrEnum):
    """Why an exchange was refused (the vendor answers each with the same error code)."""

    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"
    FOREIGN = "foreign"  # issued to another app


@dataclass
class _Code:
    userid: str
    app: str
    expires_at: float
    used: bool = False


class CodeRefused(Exception):
    """The exchange failed; ``reason`` says why (tests read it, the wire does not show it)."""

    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason.value)
        self.reason = reason


class CodeBook:
    """Codes issued and redeemed, thread-safe; ``clock`` lets tests move time."""

    def __init__(self, clock: Callable[[], float], ttl_s: float = CODE_TTL_S) -> None:
        self._clock = clock
        self.ttl_s = ttl_s
        self._codes: dict[str, _Code] = {}
        self._lock = threading.Lock()
        self.issued = 0
        self.redeemed = 0
        self.refused: dict[str, int] = {r.value: 0 for r in Refusal}

    def issue(self, userid: str, app: str) -> str:
        """A fresh code for ``userid`` of ``app`` (32 URL-safe characters, like the vendors')."""
        code = secrets.token_hex(16)
        with self._lock:
            now = self._clock()
            for old, entry in list(self._codes.items()):  # forget codes a day past expiry
                if entry.expires_at < now - 86400:
                    del self._codes[old]
            self._codes[code] = _Code(userid=userid, app=app, expires_at=now + self.ttl_s)
            self.issued += 1
        return code

    def redeem(self, code: str | None, app: str) -> str:
        """The userid of ``code`` exchanged by ``app``; CodeRefused when unknown, used, expired
        or issued to another app. A refused foreign exchange does not burn the code."""
        with self._lock:
            entry = self._codes.get(code or "")
            reason: Refusal | None = None
            if entry is None:
                reason = Refusal.UNKNOWN
            elif entry.app != app:
                reason = Refusal.FOREIGN
            elif entry.used:
                reason = Refusal.USED
            elif entry.expires_at <= self._clock():
                reason = Refusal.EXPIRED
            if reason is not None or entry is None:
                self.refused[(reason or Refusal.UNKNOWN).value] += 1
                raise CodeRefused(reason or Refusal.UNKNOWN)
            entry.used = True
            self.redeemed += 1
            return entry.userid

    def summary(self) -> dict[str, object]:
        """Counts for the sandbox's state page."""
        with self._lock:
            return {"issued": self.issued, "redeemed": self.redeemed, "refused": dict(self.refused)}
