"""Where the vault's keys come from: the environment, or (sandbox mode only) a key file.

``HUB_VAULT__KEYS``: comma-separated ``<key id>:<base64 of 32 random bytes>``, the
**first is current** (seals new values); the others only open what they sealed, until
``hub keys rotate`` has re-sealed everything and they can be dropped. Key ids are 1-16
letters, digits, ``_`` or ``-``. ``HUB_VAULT__INDEX_KEY``: base64 of 32+ random bytes, the
blind index key (kept when the encryption keys rotate: the hashes do not change).
``hub keys generate`` prints a fresh key line.

Outside sandbox mode a missing key is a one-line :class:`~hub.errors.ConfigError`. In
sandbox mode (``hub demo``, the tests) with no keys set, keys are generated once and kept
in ``HUB_HOME/vault-keys.json``, created with mode 0600 (``hub demo`` says so): demo data
only, never a production key.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
from pathlib import Path

from hub.errors import ConfigError, VaultError
from hub.settings import Settings
from hub.vault.cipher import KEY_BYTES, Vault

KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
SANDBOX_KEY_FILE = "vault-keys.json"


def generate_key() -> str:
    """A new random key, base64 (32 bytes)."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def _decode(text: str, variable: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip().replace("-", "+").replace("_", "/") + "=" * (-len(text.strip()) % 4),
                                validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{variable}: {what} is not base64") from None


def parse_keys(text: str, variable: str = "HUB_VAULT__KEYS") -> tuple[dict[str, bytes], str]:
    """``kid:base64,…`` → ({kid: key}, current kid). Errors name the variable and the key id,
    never a key."""
    keys: dict[str, bytes] = {}
    current = None
    for number, part in enumerate(p.strip() for p in text.split(",") if p.strip()):
        kid, sep, encoded = part.partition(":")
        kid = kid.strip()
        if not sep or not KEY_ID.match(kid):
            raise ConfigError(f"{variable}: entry {number + 1} is not <key id>:<base64 key> (key ids: 1-16 letters, "
                              "digits, _ or -)")
        if kid in keys:
            raise ConfigError(f"{variable}: key id {kid!r} is listed twice")
        key = _decode(encoded, variable, f"key {kid!r}")
        if len(key) != KEY_BYTES:
            raise ConfigError(f"{variable}: key {kid!r} has {len(key)} bytes, expected {KEY_BYTES} (AES-256)")
        keys[kid] = key
        current = current or kid
    if current is None:
        raise ConfigError(f"{variable} is empty: set it to <key id>:<base64 of 32 bytes> (`hub keys generate`)")
    return keys, current


def sandbox_key_file(home: Path) -> Path:
    """Where sandbox mode keeps its generated keys."""
    return home / SANDBOX_KEY_FILE


def _sandbox_keys(home: Path) -> tuple[str, str, Path]:
    """The sandbox key file's keys, creating the file (0600) on first use."""
    path = sandbox_key_file(home)
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        content = json.dumps({"keys": f"demo1:{generate_key()}", "index_key": generate_key()})
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process of the same demo made it first: use theirs
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(content)
    data = json.loads(path.read_text())
    return str(data["keys"]), str(data["index_key"]), path


def load_vault(settings: Settings) -> Vault:
    """The vault the settings describe (see the module docstring)."""
    section = settings.vault
    keys_text = section.keys.get_secret_value() if section.keys else ""
    index_text = section.index_key.get_secret_value() if section.index_key else ""
    origin = "environment"
    if not keys_text and not index_text and settings.sandbox:
        keys_text, index_text, path = _sandbox_keys(settings.home)
        origin = str(path)
    missing = [name for name, value in (("HUB_VAULT__KEYS", keys_text), ("HUB_VAULT__INDEX_KEY", index_text))
               if not value]
    if missing:
        raise ConfigError(f"personal data is encrypted at rest: set {' and '.join(missing)} "
                          "(`hub keys generate` makes a key)")
    keys, current = parse_keys(keys_text)
    index_key = _decode(index_text, "HUB_VAULT__INDEX_KEY", "the index key")
    try:
        return Vault(keys, current, index_key, origin)
    except VaultError as exc:
        raise ConfigError(f"HUB_VAULT__INDEX_KEY: {exc}") from None
