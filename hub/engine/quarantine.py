"""Quarantine: source records the hub could not accept, kept whole with the reason.

Nothing is ever dropped: a record that fails mapping, validation or reference
resolution lands here with the raw payload and its source reference (system, stream,
external key), is counted in the run, and can be retried after the cause is fixed
(``hub quarantine retry``), which runs it through the same mapping and upsert again.

Whatever arrives fits: the reference is ``text`` of any length, the record is kept as its
exact JSON text (``payload_text``, what a retry reads) and as ``jsonb`` for people and
queries (``payload``), in which what jsonb cannot hold is made visible: U+0000 as ␀, a lone
surrogate as its ``\\uXXXX`` escape, NaN and infinities as text. Reasons and references
pass through the same cleaning, so storing a rejection never fails on its contents.

A rejected record may carry personal data (a contact's mobile): its exact text is stored
sealed by the vault (``hub.vault``, what a retry opens), and the jsonb copy and the reason
have mainland mobiles and e-mail addresses masked as in the audit (138****5678).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Connection

from canonical_model.records import describe_validation
from canonical_model.storable import UNSTORABLE_CHARACTER
from hub.audit import mask_personal_data
from hub.engine.bulk import content_hash
from hub.vault import Vault, vault_for


@dataclass(frozen=True)
class Rejected:
    """One record that could not be accepted, and why."""

    source_ref: str | None
    reason: str
    payload: Any  # the record as read: normally a dict, but whatever the source sent


def describe_error(exc: Exception) -> str:
    """A one-line, human-readable reason for a mapping/validation failure."""
    if isinstance(exc, ValidationError):
        return describe_validation(exc)
    return str(exc) or type(exc).__name__


def visible(text: str) -> str:
    """``text`` with the characters Postgres text cannot hold made visible (␀, ``\\udXXX``)."""
    if UNSTORABLE_CHARACTER.search(text) is None:
        return text
    return UNSTORABLE_CHARACTER.sub(lambda m: "␀" if m.group() == "\x00" else f"\\u{ord(m.group()):04x}", text)


def _readable(value: Any) -> Any:
    """A JSON value jsonb can hold, as close to ``value`` as that allows, personal data masked."""
    if isinstance(value, str):
        return mask_personal_data(visible(value))
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value).replace("inf", "Infinity").replace("nan", "NaN")
    if isinstance(value, int):
        return value if abs(value) < 10**4000 else f"a {len(format(value, 'x'))}-hex-digit integer"
    if isinstance(value, dict):
        return {mask_personal_data(visible(str(k))): _readable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_readable(v) for v in value]
    return visible(str(value))


def readable_json(payload: Any) -> str:
    """The jsonb copy of a rejected record (see the module docstring)."""
    return json.dumps(_readable(payload), ensure_ascii=False)


def exact_json(payload: Any) -> str:
    """The record's exact JSON text (Python's JSON: NaN and Infinity included), storable as
    ``text``: lone surrogates, which UTF-8 cannot carry, force ASCII escapes throughout.

    Exact for whatever JSON can carry; a Python string holding a high and a low surrogate
    side by side (which no JSON text decodes to) comes back as the character they encode."""
    try:
        text = json.dumps(payload, ensure_ascii=False, default=str)
    except ValueError:  # an integer too long for Python to print: keep what can be kept
        return readable_json(payload)
    if UNSTORABLE_CHARACTER.search(text) is not None:  # NUL is always escaped by json, so: a surrogate
        return json.dumps(payload, ensure_ascii=True, default=str)
    return text


def store_rejected(conn: Connection, system: str, stream: str, run_id: int | None, rejected: list[Rejected]) -> None:
    """Insert quarantine rows for ``rejected`` in the caller's transaction."""
    if not rejected:
        return
    vault = vault_for(conn)
    # A record that is still bad on the next sync is the same quarantine row, not a new
    # one: (system, stream, payload hash) is unique among open rows.
    conn.execute(
        sa.text(
            "INSERT INTO quarantine (system, stream, source_ref, reason, payload, payload_text, payload_hash, "
            "run_id) VALUES (:system, :stream, :source_ref, :reason, CAST(:payload AS jsonb), :payload_text, :hash, "
            ":run_id) ON CONFLICT (system, stream, payload_hash) WHERE status = 'open' DO UPDATE SET "
            "reason = EXCLUDED.reason, run_id = EXCLUDED.run_id, attempts = quarantine.attempts + 1"
        ),
        [
            {
                "system": system, "stream": stream,
                "source_ref": None if r.source_ref is None else visible(r.source_ref),
                "reason": mask_personal_data(visible(r.reason)), "payload": readable_json(r.payload),
                "payload_text": vault.seal("quarantine", "payload_text", exact_json(r.payload)), "run_id": run_id,
                "hash": content_hash(r.payload, "quarantine"),
            }
            for r in rejected
        ],
    )


def open_rows(conn: Connection, system: str | None = None, stream: str | None = None, limit: int = 100,
              offset: int = 0) -> list[Any]:
    """Open quarantine rows, newest first, optionally for one system/stream (``offset`` of them skipped)."""
    return list(conn.execute(
        sa.text(
            "SELECT id, system, stream, source_ref, reason, payload, payload_text, attempts, created_at FROM quarantine "
            "WHERE status = 'open' AND (CAST(:system AS text) IS NULL OR system = :system) "
            "AND (CAST(:stream AS text) IS NULL OR stream = :stream) ORDER BY id DESC LIMIT :limit OFFSET :offset"
        ),
        {"system": system, "stream": stream, "limit": limit, "offset": offset},
    ))


def stored_record(payload: Any, payload_text: str | None, vault: Vault) -> Any:
    """The record a quarantine row holds: its exact JSON text (opened by the vault) when
    kept (rows from before that column have only the jsonb copy)."""
    text = vault.open("quarantine", "payload_text", payload_text)
    return payload if text is None else json.loads(text)
