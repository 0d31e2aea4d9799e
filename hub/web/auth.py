"""From a request to a :class:`~hub.access.Principal`, and the FastAPI dependencies that
guard every page and endpoint.

Two credentials are accepted:

- ``Authorization: Bearer hub_tok_…`` — an API token (``hub token create``): not
  revoked, not expired; its role, and its user when it acts for one;
- the ``hub_session`` cookie — a signed-in browser (password, WeCom or DingTalk sign-in):
  not revoked, not expired.

Only hashes are looked up (:mod:`hub.access.secrets`); a credential that is malformed,
unknown, expired or revoked is the same 401 with no hint which. API routes answer 401
with ``WWW-Authenticate: Bearer``; pages redirect to the sign-in page instead
(:func:`wants_html`).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, HTTPException, Request

from hub.access import Capability, Principal, Role
from hub.access.secrets import API_TOKEN_PREFIX, SESSION_PREFIX, token_hash
from hub.database import Database

SESSION_COOKIE = "hub_session"
MAX_CREDENTIAL_CHARS = 200

_TOKEN = sa.text("""
    UPDATE api_token t SET last_used_at = now()
    WHERE token_hash = :hash AND revoked_at IS NULL AND expires_at > now()
    RETURNING t.id, t.role, t.user_id, t.label,
              (SELECT name FROM internal_user u WHERE u.id = t.user_id) AS user_name
""")
_SESSION = sa.text("""
    SELECT s.id, s.role, s.user_id, s.via,
           COALESCE((SELECT name FROM internal_user u WHERE u.id = s.user_id),
                    (SELECT username FROM app_login l WHERE l.id = s.login_id)) AS user_name
    FROM web_session s
    WHERE s.token_hash = :hash AND s.revoked_at IS NULL AND s.expires_at > now()
""")


class NotSignedIn(HTTPException):
    """No valid credential: 401 (the app turns it into a sign-in redirect for pages)."""

    def __init__(self) -> None:
        super().__init__(401, "sign-in required: a valid API token or session",
                         headers={"WWW-Authenticate": 'Bearer realm="hub"'})


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def principal_from_request(db: Database, request: Request) -> Principal | None:
    """The principal the request's credential names, or None when it has no valid one."""
    token = _bearer(request)
    with db.engine.begin() as conn:
        if token is not None:
            if not token.startswith(API_TOKEN_PREFIX) or len(token) > MAX_CREDENTIAL_CHARS:
                return None
            row = conn.execute(_TOKEN, {"hash": token_hash(token)}).first()
            if row is None:
                return None
            return Principal(role=Role(row.role), user_id=row.user_id, name=row.user_name or row.label,
                             via="token", ref=f"token:{row.id}")
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie or not cookie.startswith(SESSION_PREFIX) or len(cookie) > MAX_CREDENTIAL_CHARS:
            return None
        row = conn.execute(_SESSION, {"hash": token_hash(cookie)}).first()
        if row is None:
            return None
        return Principal(role=Role(row.role), user_id=row.user_id, name=row.user_name or f"session {row.id}",
                         via=row.via, ref=f"session:{row.id}")


def current_principal(request: Request) -> Principal:
    """FastAPI dependency: the request's principal, or 401."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    principal = principal_from_request(request.app.state.db, request)
    if principal is None:
        raise NotSignedIn()
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require(capability: Capability) -> Any:
    """FastAPI dependency factory: the principal, when its role carries ``capability``; else 403."""

    def dependency(principal: CurrentPrincipal) -> Principal:
        if not principal.can(capability):
            raise HTTPException(403, f"your role ({principal.role.value}) may not {capability.value.replace('_', ' ')}")
        return principal

    return Depends(dependency)


def wants_html(request: Request) -> bool:
    """Whether the request is a page view (redirect to sign-in) rather than an API call."""
    path = request.url.path
    return not path.startswith(("/api/", "/openapi", "/healthz", "/callbacks/"))


def session_expiry(hours: float) -> dt.datetime:
    """When a session started now expires."""
    return dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)
