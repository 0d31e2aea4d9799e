"""The vault: personal data encrypted at rest, with a blind index to match it exactly.

Personal values (contact, user and lead mobiles and e-mails; quarantined source records)
are stored sealed with AES-256-GCM (``cryptography``), one random 96-bit nonce per value,
the ciphertext bound by its associated data to its ``table.column`` and key id: a value
copied into another column, or a bit flipped, fails to open with :class:`VaultError`
instead of reading as garbage. Beside each sealed mobile/e-mail sits a keyed hash of its
normalised form (HMAC-SHA256 with a key of its own, the *blind index*, ``mobile_hash`` /
``email_hash``), so identity resolution and search by a full mobile still match exactly.

Stored format, versioned and self-describing (:mod:`hub.vault.cipher`)::

    v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>

Keys come from the environment only (:mod:`hub.vault.keys`): ``HUB_VAULT__KEYS`` is a
comma-separated list of ``<key id>:<base64 of 32 bytes>``, the first one current (new
values are sealed with it; the others still open what they sealed), and
``HUB_VAULT__INDEX_KEY`` the blind index key. Outside sandbox mode a missing key is a
one-line ConfigError; in sandbox mode (``hub demo``, tests) keys are generated once into
``HUB_HOME/vault-keys.json`` (mode 0600). ``hub keys rotate`` re-encrypts under the current
key in short batches while everything keeps running (:mod:`hub.vault.rotation`).

What a writer or matcher calls (the contract for every code path touching these columns):

- ``vault.protect(table, mobile=..., email=...)`` → the column values to store:
  ``{"mobile": sealed, "mobile_hash": index, "email": sealed, "email_hash": index}``;
- ``vault.blind_index("mobile", raw)`` / ``vault.blind_index("email", raw)`` → the value to
  compare ``mobile_hash`` / ``email_hash`` with (normalises first; None for no value);
- ``vault.reveal(table, column, stored)`` → the plaintext for display (masking per role is
  the pages' business); ``vault.seal`` / ``vault.open`` for other columns.

``vault_for(conn)`` finds the vault of the database a connection belongs to.
"""

from hub.vault.binding import bind, bind_unless_bound, vault_for, vault_of_engine
from hub.vault.cipher import (
    FORMAT_PREFIX,
    INDEX_KINDS,
    PERSONAL_COLUMNS,
    PersonalColumn,
    Vault,
    VaultError,
    is_sealed,
    key_id_of,
)
from hub.vault.keys import generate_key, load_vault, sandbox_key_file

__all__ = [
    "FORMAT_PREFIX",
    "INDEX_KINDS",
    "PERSONAL_COLUMNS",
    "PersonalColumn",
    "Vault",
    "VaultError",
    "bind",
    "bind_unless_bound",
    "generate_key",
    "is_sealed",
    "key_id_of",
    "load_vault",
    "sandbox_key_file",
    "vault_for",
    "vault_of_engine",
]
