"""Credentials for tests: an API token of a given role, made the way ``hub token create`` stores it."""

from __future__ import annotations

import sqlalchemy as sa

from hub.access import Role
from hub.access.secrets import API_TOKEN_PREFIX, new_token, token_hash
from hub.database import Database


def issue_token(db: Database, role: Role | str, *, user_id: int | None = None, label: str = "test",
                expires_in_s: float = 3600.0) -> str:
    """A valid bearer token for ``role`` (acting as ``user_id`` when given); the text, shown once."""
    token = new_token(API_TOKEN_PREFIX)
    with db.engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO api_token (token_hash, prefix, label, role, user_id, expires_at) "
            "VALUES (:h, :p, :l, :r, :u, now() + make_interval(secs => :s))"),
            {"h": token_hash(token), "p": token[:12], "l": label, "r": Role(role).value, "u": user_id,
             "s": expires_in_s})
    return token


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}
