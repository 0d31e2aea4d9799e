"""`hub keys`: the vault's keys (personal data encrypted at rest, :mod:`hub.vault`).

- ``hub keys generate``: a new random key, as a ``HUB_VAULT__KEYS`` entry (shown once);
- ``hub keys status``: per sealed column, rows per key id and plaintext rows left;
- ``hub keys rotate``: re-seal everything under the current key (first in ``HUB_VAULT__KEYS``),
  in batches, while the hub keeps running; resumable and idempotent;
- ``hub keys encrypt-existing``: seal the plaintext rows (written before encryption).
"""

from __future__ import annotations

import secrets
from typing import Annotated

import typer

from hub.cli.base import FAILED, app, console, fail, failures_as_one_line, new_app, print_json, runtime
from hub.cli.tables import Column, print_table

keys_app = new_app("Keys of the personal data encrypted at rest.")
app.add_typer(keys_app, name="keys")

STATUS_COLUMNS = (Column("column"), Column("rows per key", "text"), Column("plaintext", "amount"),
                  Column("without hash", "amount"))


@keys_app.command("generate")
def keys_generate(
    key_id: Annotated[str, typer.Option("--id", help="Key id (1-16 letters, digits, _ or -); default: random.")] = "",
) -> None:
    """Print new keys as shell exports (shown once): a new installation takes both; to rotate,
    put the new entry first in the existing HUB_VAULT__KEYS and keep the index key."""
    from hub.vault import generate_key
    from hub.vault.keys import KEY_ID

    kid = key_id or f"k{secrets.token_hex(3)}"
    if not KEY_ID.match(kid):
        raise fail(f"key id {kid!r}: 1-16 letters, digits, _ or -", FAILED)
    console.print("# a new installation takes both; to rotate, put the new entry first in the existing "
                  "HUB_VAULT__KEYS and keep the index key", highlight=False, soft_wrap=True)
    console.print(f"export HUB_VAULT__KEYS={kid}:{generate_key()}", highlight=False, soft_wrap=True)
    console.print(f"export HUB_VAULT__INDEX_KEY={generate_key()}", highlight=False, soft_wrap=True)


@keys_app.command("status")
def keys_status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Per sealed column: rows per key id, plaintext rows left, rows without their blind index."""
    from hub.vault.rotation import column_status

    with failures_as_one_line(), runtime() as hub, hub.db.begin() as conn:
        found = column_status(conn)
    if as_json:
        print_json([{"column": s.label, "by_key": s.by_key, "plaintext": s.plaintext,
                     "missing_hash": s.missing_hash} for s in found])
        return
    print_table(console, STATUS_COLUMNS, [
        [s.label, ", ".join(f"{k}: {n}" for k, n in sorted(s.by_key.items())) or "—", str(s.plaintext),
         str(s.missing_hash)] for s in found])


def _run_pass(only_plaintext: bool, batch_rows: int | None) -> None:
    from hub.vault.rotation import reencrypt

    with failures_as_one_line(), runtime() as hub:
        vault = hub.db.vault
        size = batch_rows or hub.settings.vault.batch_rows

        def progress(label: str, done: int) -> None:
            console.print(f"{label}: {done} row(s) re-sealed", highlight=False)

        what = "plaintext values" if only_plaintext else f"values not under key {vault.current}"
        console.print(f"sealing {what}, {size} rows per transaction")
        counts = reencrypt(hub.db, vault, only_plaintext=only_plaintext, batch_rows=size, progress=progress,
                           actor="cli")
    console.print(f"done: {counts.total} value(s) re-sealed in {counts.batches} batch(es); "
                  f"every value is now under key {vault.current}" if not only_plaintext else
                  f"done: {counts.total} plaintext value(s) sealed in {counts.batches} batch(es)")


BatchOption = Annotated[int | None, typer.Option("--batch", min=1, max=100_000,
                                                 help="Rows per transaction (default HUB_VAULT__BATCH_ROWS).")]


@keys_app.command("rotate")
def keys_rotate(batch: BatchOption = None) -> None:
    """Re-seal every value under the current key (the first of HUB_VAULT__KEYS), in short batches,
    without downtime; keep the old key listed until this has finished. Resumable, idempotent."""
    _run_pass(False, batch)


@keys_app.command("encrypt-existing")
def keys_encrypt_existing(batch: BatchOption = None) -> None:
    """Seal plaintext mobiles, e-mails and quarantined records (rows from before encryption)."""
    _run_pass(True, batch)
