"""Re-encrypting what is stored: ``hub keys rotate``, ``hub keys encrypt-existing``, ``hub keys status``.

Rotation without downtime: a reader opens a value with whichever key its id names, so while
a pass runs, values under the old key and the new one are both readable (the old key stays
in ``HUB_VAULT__KEYS``, after the new current one, until the pass has finished). A pass walks
each sealed column in primary-key order, ``batch_rows`` rows per short transaction (the rows
it rewrites are locked only for that batch), re-sealing every value not under the current
key and filling its blind index. Writers meanwhile seal with the current key already, so
nothing they write needs a second pass. Interrupted, the next pass picks up what is left;
a pass over a fully rotated store changes nothing (idempotent). ``encrypt-existing`` is
the same walk over plaintext values only (rows from before encryption, or from a writer
not converted yet). Each pass is audited with its counts, never with a value.

Status needs no key: it counts, per table and column, rows per key id and plaintext rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.audit import write_audit
from hub.database import Database
from hub.vault.cipher import FORMAT_PREFIX, INDEX_KINDS, PERSONAL_COLUMNS, PersonalColumn, Vault


@dataclass
class ColumnStatus:
    """What one sealed column holds: rows per key id, plaintext rows, rows lacking their hash."""

    table: str
    column: str
    by_key: dict[str, int] = field(default_factory=dict)
    plaintext: int = 0
    missing_hash: int = 0

    @property
    def label(self) -> str:
        return f"{self.table}.{self.column}"


def column_status(conn: Connection) -> list[ColumnStatus]:
    """Per sealed column: rows per key id and plaintext rows left (no key needed)."""
    found = []
    for pc in PERSONAL_COLUMNS:
        status = ColumnStatus(pc.table, pc.column)
        col = f'"{pc.column}"'
        rows = conn.execute(sa.text(
            f"SELECT CASE WHEN left({col}, :n) = :prefix THEN split_part({col}, ':', 2) END AS kid, count(*) "
            f"FROM {pc.table} WHERE {col} IS NOT NULL GROUP BY 1"),
            {"n": len(FORMAT_PREFIX), "prefix": FORMAT_PREFIX}).all()
        for kid, count in rows:
            if kid is None:
                status.plaintext = int(count)
            else:
                status.by_key[str(kid)] = int(count)
        if pc.hash_column:
            status.missing_hash = int(conn.execute(sa.text(
                f"SELECT count(*) FROM {pc.table} WHERE {col} IS NOT NULL AND {pc.hash_column} IS NULL")).scalar_one())
        found.append(status)
    return found


def plaintext_left(conn: Connection) -> dict[str, int]:
    """``table.column`` → plaintext rows, for the columns that still have any."""
    return {s.label: s.plaintext for s in column_status(conn) if s.plaintext}


@dataclass
class PassCounts:
    """What one re-encryption pass did, per column."""

    resealed: dict[str, int] = field(default_factory=dict)
    batches: int = 0

    @property
    def total(self) -> int:
        return sum(self.resealed.values())


Progress = Callable[[str, int], None]  # (table.column, rows re-sealed so far in that column)


def _pending_condition(pc: PersonalColumn, vault: Vault, only_plaintext: bool) -> tuple[str, dict[str, object]]:
    col = f'"{pc.column}"'
    if only_plaintext:
        return f"left({col}, :n) <> :prefix", {"n": len(FORMAT_PREFIX), "prefix": FORMAT_PREFIX}
    current = f"{FORMAT_PREFIX}{vault.current}:"
    condition = f"left({col}, :n) <> :prefix"
    if pc.hash_column:  # a sealed value whose blind index is missing is finished here too
        condition = f"({condition} OR {pc.hash_column} IS NULL)"
    return condition, {"n": len(current), "prefix": current}


def reencrypt(db: Database, vault: Vault, *, only_plaintext: bool = False, batch_rows: int = 500,
              progress: Progress | None = None, actor: str = "keys") -> PassCounts:
    """Re-seal every value not under the current key (``only_plaintext``: every plaintext
    value) in batches of ``batch_rows`` rows, one short transaction each; see the module
    docstring. Returns the counts (also audited)."""
    counts = PassCounts()
    for pc in PERSONAL_COLUMNS:
        label = f"{pc.table}.{pc.column}"
        done = 0
        after = 0
        condition, params = _pending_condition(pc, vault, only_plaintext)
        normalise = INDEX_KINDS[pc.kind] if pc.kind else None
        while True:
            with db.begin() as conn:
                rows = conn.execute(sa.text(
                    f'SELECT {pc.key}, "{pc.column}" FROM {pc.table} WHERE {pc.key} > :after '
                    f'AND "{pc.column}" IS NOT NULL AND {condition} ORDER BY {pc.key} LIMIT :limit FOR UPDATE'),
                    {**params, "after": after, "limit": batch_rows}).all()
                if not rows:
                    break
                for row_id, stored in rows:
                    plain = vault.open(pc.table, pc.column, stored)
                    assert plain is not None
                    if normalise is not None:
                        plain = normalise(plain) or plain
                    values: dict[str, object] = {"v": vault.seal(pc.table, pc.column, plain), "id": row_id}
                    sets = f'"{pc.column}" = :v'
                    if pc.hash_column and pc.kind:
                        values["h"] = vault.blind_index(pc.kind, plain)
                        sets += f", {pc.hash_column} = :h"
                    conn.execute(sa.text(f"UPDATE {pc.table} SET {sets} WHERE {pc.key} = :id"), values)
                after = rows[-1][0]
                done += len(rows)
                counts.batches += 1
            if progress is not None:
                progress(label, done)
        if done:
            counts.resealed[label] = done
    with db.begin() as conn:
        write_audit(conn, actor=actor, system="hub",
                    operation="keys:encrypt-existing" if only_plaintext else "keys:rotate", outcome="ok",
                    detail={"current_key": vault.current, "resealed": counts.resealed, "batches": counts.batches})
    return counts
