"""Sealing and opening personal values, and their blind index (pure: no I/O).

A sealed value is ``v1:<kid>:<base64url(nonce ‖ ciphertext ‖ tag)>``: AES-256-GCM with a
random 96-bit nonce, the associated data ``v1|<kid>|<table>.<column>``, so a value copied
into another column (or under another key id) fails authentication. Values that are not
in this format are plaintext written before encryption was switched on (or by a writer not
converted yet): :meth:`Vault.open` returns them as they are, and ``hub keys status`` /
``hub doctor`` count them until ``hub keys encrypt-existing`` seals them.

The blind index is HMAC-SHA256 over ``<kind>|<normalised value>`` with the index key:
equal normalised mobiles give equal hashes in every table (a contact's mobile matches a
user's), and nothing about the value can be read from it without the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.errors import VaultError
from hub.identity import normalize_email, normalize_mobile

VERSION = "v1"
FORMAT_PREFIX = f"{VERSION}:"
NONCE_BYTES = 12
KEY_BYTES = 32

# What a blind index normalises before hashing, per kind of value.
INDEX_KINDS: Mapping[str, Callable[[str | None], str | None]] = {
    "mobile": normalize_mobile,
    "email": normalize_email,
}


@dataclass(frozen=True)
class PersonalColumn:
    """A column holding a personal value sealed at rest; ``hash_column`` its blind index
    (of kind ``kind``), None where nothing matches on it."""

    table: str
    column: str
    kind: str | None = None
    hash_column: str | None = None
    key: str = "id"  # the table's primary key, for batched re-encryption


# Every sealed column of the canonical store (rotation, status and doctor walk this list).
PERSONAL_COLUMNS: tuple[PersonalColumn, ...] = (
    PersonalColumn("contact", "mobile", "mobile", "mobile_hash"),
    PersonalColumn("contact", "email", "email", "email_hash"),
    PersonalColumn("internal_user", "mobile", "mobile", "mobile_hash"),
    PersonalColumn("internal_user", "email", "email", "email_hash"),
    PersonalColumn("lead", "mobile", "mobile", "mobile_hash"),
    PersonalColumn("lead", "email", "email", "email_hash"),
    # a rejected source record, kept whole for `hub quarantine retry` (its jsonb copy is masked)
    PersonalColumn("quarantine", "payload_text"),
)


def is_sealed(stored: str | None) -> bool:
    """True when ``stored`` is in the vault's format (else plaintext or None)."""
    return stored is not None and stored.startswith(FORMAT_PREFIX)


def key_id_of(stored: str | None) -> str | None:
    """The key id a sealed value names; None for plaintext or None."""
    if not is_sealed(stored):
        return None
    assert stored is not None
    kid, sep, _ = stored[len(FORMAT_PREFIX):].partition(":")
    return kid if sep else None


def _aad(kid: str, table: str, column: str) -> bytes:
    return f"{VERSION}|{kid}|{table}.{column}".encode()


@dataclass(frozen=True)
class Vault:
    """Keys by id (``current`` seals), the index key; see the module docstring.

    ``repr`` shows key ids only.
    """

    keys: Mapping[str, bytes] = field(repr=False)
    current: str
    index_key: bytes = field(repr=False)
    origin: str = "environment"  # or the sandbox key file's path: what `hub doctor` says
    # one cipher object per key, made once (making one per value costs more than sealing it)
    _ciphers: dict[str, AESGCM] = field(init=False, repr=False, compare=False, default_factory=dict)
    _index: list[Any] = field(init=False, repr=False, compare=False, default_factory=list)  # keyed HMAC, copied

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise VaultError(f"current key id {self.current!r} is not among the keys")
        for kid, key in self.keys.items():
            if len(key) != KEY_BYTES:
                raise VaultError(f"key {kid!r} has {len(key)} bytes, expected {KEY_BYTES} (AES-256)")
            self._ciphers[kid] = AESGCM(key)
        self._index.append(hmac.new(self.index_key, digestmod=hashlib.sha256))
        if len(self.index_key) < KEY_BYTES:
            raise VaultError(f"the blind index key has {len(self.index_key)} bytes, expected at least {KEY_BYTES}")

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id, the current one first."""
        return (self.current, *(k for k in self.keys if k != self.current))

    # -- sealing ---------------------------------------------------------------------------

    def seal(self, table: str, column: str, plaintext: str | None) -> str | None:
        """``plaintext`` sealed for ``table.column`` under the current key (None stays None)."""
        if plaintext is None:
            return None
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.current].encrypt(nonce, plaintext.encode(), _aad(self.current, table, column))
        body = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{FORMAT_PREFIX}{self.current}:{body}"

    def open(self, table: str, column: str, stored: str | None) -> str | None:
        """The plaintext of a value stored in ``table.column``: sealed values are opened with
        the key their id names (any key the vault holds, so readers work mid-rotation);
        plaintext (not yet encrypted) is returned as it is. Raises :class:`VaultError` when
        a sealed value does not authenticate (tampered, moved, or an unknown key id)."""
        if stored is None or not is_sealed(stored):
            return stored
        kid, sep, body = stored[len(FORMAT_PREFIX):].partition(":")
        where = f"{table}.{column}"
        if not sep or kid not in self.keys:
            raise VaultError(f"{where}: a value sealed with key id {kid!r}, which HUB_VAULT__KEYS does not hold")
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            raise VaultError(f"{where}: a sealed value (key {kid!r}) is not valid base64: damaged") from None
        if len(raw) < NONCE_BYTES + 16:
            raise VaultError(f"{where}: a sealed value (key {kid!r}) is too short: damaged")
        try:
            plain = self._ciphers[kid].decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(kid, table, column))
        except InvalidTag:
            raise VaultError(f"{where}: a sealed value (key {kid!r}) fails authentication: tampered with, or "
                             "copied from another column") from None
        return plain.decode()

    def reveal(self, table: str, column: str, stored: str | None) -> str | None:
        """The value for display (pages mask it per role): :meth:`open` by another name, so
        the call sites that show personal data are easy to find."""
        return self.open(table, column, stored)

    def reseal(self, table: str, column: str, stored: str | None) -> str | None:
        """``stored`` under the current key (plaintext sealed; already current: unchanged)."""
        if stored is None or key_id_of(stored) == self.current:
            return stored
        return self.seal(table, column, self.open(table, column, stored))

    # -- blind index -----------------------------------------------------------------------

    def blind_index(self, kind: str, raw: str | None) -> str | None:
        """The keyed hash of ``raw`` normalised as a ``kind`` ("mobile" or "email"); None when
        there is nothing to index. Compare it with the ``<kind>_hash`` columns."""
        return self._index_of(kind, INDEX_KINDS[kind](raw))

    def _index_of(self, kind: str, normalised: str | None) -> str | None:
        if not normalised:
            return None
        mac = self._index[0].copy()
        mac.update(f"{kind}|{normalised}".encode())
        return str(mac.hexdigest())

    def protect(self, table: str, **values: str | None) -> dict[str, str | None]:
        """The stored columns for personal values of a row of ``table``: each of ``mobile`` /
        ``email`` normalised, sealed, and its blind index beside it::

            vault.protect("contact", mobile="+86 138 0013 8000", email="Li@Corp.cn")
            # {"mobile": "v1:k1:…", "mobile_hash": "9f…", "email": "v1:k1:…", "email_hash": "3a…"}
        """
        out: dict[str, str | None] = {}
        for kind, raw in values.items():
            if kind not in INDEX_KINDS:
                raise ValueError(f"{kind!r} is not a personal value the vault indexes ({', '.join(INDEX_KINDS)})")
            normalised = INDEX_KINDS[kind](raw)
            out[kind] = self.seal(table, kind, normalised)
            out[f"{kind}_hash"] = self._index_of(kind, normalised)
        return out
