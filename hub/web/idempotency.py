"""Idempotent writes: a client's ``Idempotency-Key`` header gets the first answer again.

The key is claimed in the same transaction as the write (``INSERT … ON CONFLICT DO
NOTHING`` on (principal, key)): while the first request runs, a second one with the same
key waits on the row and then reads the committed answer; if the first one fails, its
transaction rolls back with the claim, and the key is free again. A repeat whose body
differs from the first (compared by SHA-256 of method, path and body) is refused with
422: the key names one request, not a slot to overwrite.

Keys are per principal (``Principal.ref``): two clients cannot read each other's answers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from fastapi import HTTPException
from sqlalchemy.engine import Connection

from hub.access import Principal

HEADER = "Idempotency-Key"
MAX_KEY_CHARS = 200
REPLAYED_HEADER = "Idempotent-Replayed"

_CLAIM = sa.text("""
    INSERT INTO idempotency_key (principal, key, request_hash, method, path, status_code, response)
    VALUES (:principal, :key, :hash, :method, :path, 0, '{}'::jsonb)
    ON CONFLICT (principal, key) DO NOTHING
    RETURNING key
""")
_STORED = sa.text("""
    SELECT request_hash, status_code, response FROM idempotency_key WHERE principal = :principal AND key = :key
""")
_ANSWER = sa.text("""
    UPDATE idempotency_key SET status_code = :status, response = CAST(:response AS jsonb)
    WHERE principal = :principal AND key = :key
""")


@dataclass(frozen=True)
class Answer:
    """A write's answer: HTTP status and JSON body; ``replayed`` when it is a stored one."""

    status_code: int
    body: Any
    replayed: bool = False


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests "the same" for one key."""
    return hashlib.sha256(b"\0".join([method.upper().encode(), path.encode(), body])).hexdigest()


def check_key(key: str | None) -> str | None:
    """The header's value, validated (printable ASCII, at most 200 characters), or None."""
    if key is None:
        return None
    if not key or len(key) > MAX_KEY_CHARS or not all(33 <= ord(ch) < 127 for ch in key):
        raise HTTPException(422, f"{HEADER} must be 1–{MAX_KEY_CHARS} printable ASCII characters")
    return key


def run_once(conn: Connection, principal: Principal, key: str | None, *, method: str, path: str,
             body: bytes, write: Callable[[Connection], Answer]) -> Answer:
    """Run ``write`` on ``conn`` (the caller's transaction), at most once per key.

    With no key the write just runs. The caller commits: the claim and the write land
    together or not at all.
    """
    if key is None:
        return write(conn)
    fingerprint = request_fingerprint(method, path, body)
    params = {"principal": principal.ref, "key": key}
    claimed = conn.execute(_CLAIM, {**params, "hash": fingerprint, "method": method.upper(),
                                    "path": path[:500]}).first()
    if claimed is None:
        stored = conn.execute(_STORED, params).one()
        if stored.request_hash != fingerprint:
            raise HTTPException(422, f"{HEADER} {key!r} was used for a different request")
        return Answer(stored.status_code, stored.response.get("body"), replayed=True)
    answer = write(conn)
    conn.execute(_ANSWER, {**params, "status": answer.status_code,
                           "response": json.dumps({"body": answer.body}, ensure_ascii=False, default=str)})
    return answer
