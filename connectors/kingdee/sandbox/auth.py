"""Authentication of the K/3 Cloud sandbox: test credentials, sessions, signature checks.

Two ways in (reference ``erp-apis.md`` §1.2, §3.3–§3.4):

- **Signed headers** (third-party authorisation, what the official SDK sends): every request
  carries ``X-Kd-Appkey``/``X-Kd-Appdata``/``X-Kd-Signature``; the sandbox verifies
  ``X-Kd-Signature`` always and ``X-Api-Signature`` only in strict mode (on-prem servers
  evidently do not enforce it, [UNC]). A request without a session id gets a new session
  (``Set-Cookie: kdservice-sessionid=…``).
- **Session login** (``ValidateUser``, ``LoginByAppSecret``, ``LoginBySign``): the reply
  issues the session cookies; later calls send the id as cookie or ``kdservice-sessionid``
  header.

A session id that is unknown or idle too long (≈20 min [UNC]) is "lost": the caller gets
HTTP 200 ``IsSuccess: false, MsgCode: 1``. For signed-header callers the reference notes a
community report that a stale id fails even with valid signatures ([UNC], §4.2); the
sandbox's ``stale_signed_session`` switch chooses between that ("fail") and silently issuing
a new session ("renew", the default).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Literal

from connectors.kingdee import signing

StaleSignedPolicy = Literal["renew", "fail"]


@dataclass(frozen=True)
class SandboxCredentials:
    """The one data centre, user and registered third-party app the sandbox knows.

    These are test credentials of a local emulator, not secrets of any real system.
    """

    acct_id: str = "66f0a1b2c3d4e5f6a7b8c9d0"
    data_center_name: str = "沙箱数据中心"
    username: str = "hub_api"
    password: str = "Kd@sandbox-2024"
    # AppID is "<clientId>_<32 base64 chars>"; the second half feeds the gateway signature key.
    app_id: str = "236915_Ra8tQ0mJ4F4nY3zS8iGlDkDwMa9kq5y1"
    app_secret: str = "3f9c2e7a1b5d4c8e9f0a6b7c2d1e3f4a"
    lcid: int = 2052


SANDBOX_CREDENTIALS = SandboxCredentials()


@dataclass
class Session:
    """One server-side login context."""

    sid: str
    asp_session: str
    username: str
    via: str  # "signed" | "ValidateUser" | "LoginByAppSecret" | "LoginBySign"
    last_used: float = field(default_factory=time.monotonic)


class SessionStore:
    """Live sessions by id, with idle expiry; thread-safe."""

    def __init__(self, idle_timeout_s: float = 20 * 60) -> None:
        self.idle_timeout_s = idle_timeout_s
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.issued = 0

    def create(self, username: str, via: str) -> Session:
        """Issue a new session (random ids, like ASP.NET's)."""
        session = Session(secrets.token_hex(16), secrets.token_hex(12), username, via)
        with self._lock:
            self._sessions[session.sid] = session
            self.issued += 1
        return session

    def touch(self, sid: str) -> Session | None:
        """The live session with this id (refreshing its idle timer), or None if lost."""
        now = time.monotonic()
        with self._lock:
            session = self._sessions.get(sid)
            if session is None:
                return None
            if now - session.last_used > self.idle_timeout_s:
                del self._sessions[sid]
                return None
            session.last_used = now
            return session

    def drop(self, sid: str) -> None:
        """Log one session out."""
        with self._lock:
            self._sessions.pop(sid, None)

    def drop_all(self) -> int:
        """Expire every session (fault ``auth_expired`` / admin endpoint); returns how many."""
        with self._lock:
            count = len(self._sessions)
            self._sessions.clear()
            return count

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)


@dataclass(frozen=True)
class SignatureCheck:
    """Outcome of verifying signed headers: ok, the user they name, or why not."""

    ok: bool
    username: str = ""
    reason: str = ""


def has_signed_headers(headers: dict[str, str]) -> bool:
    """True when the request uses third-party authorisation (headers are lower-cased keys)."""
    return "x-kd-appkey" in headers or "x-kd-signature" in headers


def verify_signed_headers(
    headers: dict[str, str], path: str, credentials: SandboxCredentials, *, strict: bool,
    max_skew_s: float = 15 * 60,
) -> SignatureCheck:
    """Check ``X-Kd-Signature`` (and in strict mode ``X-Api-Signature`` plus the timestamp).

    ``headers`` has lower-case keys. The reason text is for the reply and never echoes a
    secret.
    """
    app_key = headers.get("x-kd-appkey", "")
    if app_key != credentials.app_id:
        return SignatureCheck(False, reason="应用ID(AppID)不存在或未授权")
    try:
        plain = base64.b64decode(headers.get("x-kd-appdata", ""), validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return SignatureCheck(False, reason="X-Kd-Appdata 格式不正确")
    parts = plain.split(",")
    if len(parts) != 4:
        return SignatureCheck(False, reason="X-Kd-Appdata 格式不正确")
    acct_id, username = parts[0], parts[1]
    expected = signing.kd_signature(credentials.app_id, credentials.app_secret, plain)
    if not hmac.compare_digest(expected, headers.get("x-kd-signature", "")):
        return SignatureCheck(False, reason="签名验证失败，请检查应用ID和应用密钥")
    if acct_id != credentials.acct_id:
        return SignatureCheck(False, reason=f"数据中心“{acct_id}”不存在")
    if username != credentials.username:
        return SignatureCheck(False, reason=f"用户“{username}”不存在或未授权该应用")
    if strict:
        timestamp = headers.get("x-api-timestamp", "")
        nonce = headers.get("x-api-nonce", "")
        if not timestamp.isdigit():
            return SignatureCheck(False, reason="x-api-timestamp 缺失")
        stamp = int(timestamp)
        seconds = stamp / 1000 if stamp > 10**11 else stamp  # the C# SDK sends milliseconds
        if abs(time.time() - seconds) > max_skew_s:
            return SignatureCheck(False, reason="请求已过期(x-api-timestamp)")
        expected_api = signing.api_signature(path, nonce, timestamp, credentials.app_id)
        if not hmac.compare_digest(expected_api, headers.get("x-api-signature", "")):
            return SignatureCheck(False, reason="网关签名(X-Api-Signature)验证失败")
    return SignatureCheck(True, username=username)


def check_login_sign(
    credentials: SandboxCredentials, acct_id: str, username: str, app_id: str, timestamp: str, sign: str,
) -> bool:
    """Verify a ``LoginBySign`` signature (SHA-256 over the sorted five strings)."""
    expected = signing.login_sign(acct_id, username, app_id, credentials.app_secret, timestamp)
    return (
        acct_id == credentials.acct_id and username == credentials.username
        and app_id == credentials.app_id and hmac.compare_digest(expected, sign.lower())
    )


__all__ = [
    "SANDBOX_CREDENTIALS",
    "SandboxCredentials",
    "Session",
    "SessionStore",
    "SignatureCheck",
    "StaleSignedPolicy",
    "check_login_sign",
    "has_signed_headers",
    "verify_signed_headers",
]
