"""Callback crypto shared by WeCom and DingTalk (the WXBizMsgCrypt scheme).

Both platforms sign and encrypt their event callbacks the same way, byte for byte
(reference/messaging-apis.md §1.5 and §2.4: wechatpy's WeCom code decrypts DingTalk's
official vector). Only two things differ, and they are parameters here:

- the **receive id** appended to every plaintext: the corp id for a WeCom self-built
  app, the AppKey (or corp id / suite key) for DingTalk;
- the **timestamp unit** on the query string: seconds for WeCom, milliseconds for
  DingTalk.

The scheme (reference §1.5)::

    key        = base64decode(EncodingAESKey + "=")      # 32 bytes, AES-256
    iv         = key[:16]
    signature  = hex(sha1("".join(sorted([token, timestamp, nonce, encrypt]))))
    plaintext  = random16 || uint32_be(len(msg)) || msg || receive_id
    encrypt    = base64(AES-256-CBC(PKCS#7 pad to a multiple of 32 bytes (1..32), plaintext))

Decryption is stricter than the vendors' SDKs (sdk-quirks.md: wechatpy does not
range-check the padding byte): the pad byte must be 1..32 and every pad byte equal,
the length prefix must fit, and the trailing receive id must match exactly. Every
failure raises a :class:`CallbackCryptoError` subclass whose message never contains
key material or plaintext.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

TimestampUnit = Literal["s", "ms"]

# WXBizMsgCrypt pads to 32 bytes although AES blocks are 16 (reference §1.5 step 3).
PAD_BLOCK = 32
RANDOM_PREFIX_LEN = 16
_LENGTH_PREFIX = struct.Struct(">I")
MAX_TIMESTAMP_DIGITS = 13


class CallbackCryptoError(ValueError):
    """A callback could not be authenticated or decrypted."""


class SignatureMismatchError(CallbackCryptoError):
    """msg_signature does not match sha1(sorted(token, timestamp, nonce, encrypt))."""


class MalformedCiphertextError(CallbackCryptoError):
    """The ciphertext is not base64, not block-aligned, or its plaintext is truncated."""


class BadPaddingError(CallbackCryptoError):
    """The PKCS#7 padding is out of the 1..32 range or inconsistent."""


class ReceiveIdMismatchError(CallbackCryptoError):
    """The plaintext was encrypted for another corp/app (trailing receive id differs)."""


def compute_signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """Return the hex SHA-1 signature over the sorted, concatenated four strings."""
    parts = sorted(part.encode("utf-8") for part in (token, timestamp, nonce, encrypt))
    return hashlib.sha1(b"".join(parts)).hexdigest()


def decode_aes_key(encoding_aes_key: str) -> bytes:
    """Turn the 43-character EncodingAESKey from the admin console into 32 key bytes."""
    if len(encoding_aes_key) != 43:
        raise ValueError("EncodingAESKey must be 43 characters")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error as exc:
        raise ValueError("EncodingAESKey is not valid base64") from exc
    if len(key) != 32:
        raise ValueError("EncodingAESKey must decode to 32 bytes")
    return key


@dataclass(frozen=True)
class SignedCiphertext:
    """An encrypted payload with the query parameters that authenticate it."""

    encrypt: str
    signature: str
    timestamp: str
    nonce: str


class CallbackCrypto:
    """Sign, verify, encrypt and decrypt callback payloads for one app.

    ``receive_id`` is the corp id (WeCom self-built app) or AppKey (DingTalk event
    subscription); ``timestamp_unit`` is ``"s"`` for WeCom and ``"ms"`` for DingTalk.
    ``random_prefix`` lets tests reproduce known-answer vectors; production leaves it
    at ``os.urandom``.
    """

    def __init__(
        self,
        token: str,
        encoding_aes_key: str,
        receive_id: str,
        *,
        timestamp_unit: TimestampUnit = "s",
        random_prefix: Callable[[], bytes] = lambda: os.urandom(RANDOM_PREFIX_LEN),
    ) -> None:
        if not token:
            raise ValueError("callback token must not be empty")
        if not receive_id:
            raise ValueError("receive id must not be empty")
        self._token = token
        self._key = decode_aes_key(encoding_aes_key)
        self.receive_id = receive_id
        self.timestamp_unit: TimestampUnit = timestamp_unit
        self._random_prefix = random_prefix

    # -- signatures ---------------------------------------------------------------

    def sign(self, timestamp: str, nonce: str, encrypt: str) -> str:
        """Signature the platform would put in ``msg_signature`` for these values."""
        return compute_signature(self._token, timestamp, nonce, encrypt)

    def verify_signature(self, signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        """Raise :class:`SignatureMismatchError` unless ``signature`` is right.

        Compared in constant time so that a forger learns nothing from response timing.
        """
        expected = self.sign(timestamp, nonce, encrypt)
        if not hmac.compare_digest(expected, signature.strip().lower()):
            raise SignatureMismatchError("msg_signature does not match")

    # -- cipher -------------------------------------------------------------------

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    def encrypt(self, message: str | bytes) -> str:
        """Encrypt ``message`` for this receive id; returns the base64 ``Encrypt`` value."""
        body = message.encode("utf-8") if isinstance(message, str) else message
        prefix = self._random_prefix()
        if len(prefix) != RANDOM_PREFIX_LEN:
            raise ValueError("random prefix must be 16 bytes")
        plain = prefix + _LENGTH_PREFIX.pack(len(body)) + body + self.receive_id.encode("utf-8")
        pad = PAD_BLOCK - len(plain) % PAD_BLOCK  # 1..32; a full block when aligned
        plain += bytes([pad]) * pad
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")

    def decrypt_bytes(self, encrypt: str) -> bytes:
        """Decrypt an ``Encrypt`` value, check padding and receive id, return the message."""
        try:
            raw = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedCiphertextError("ciphertext is not base64") from exc
        if not raw or len(raw) % 16:
            raise MalformedCiphertextError("ciphertext is not a whole number of AES blocks")
        decryptor = self._cipher().decryptor()
        plain = decryptor.update(raw) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= PAD_BLOCK or pad > len(plain):
            raise BadPaddingError("padding byte out of range 1..32")
        if plain[-pad:] != bytes([pad]) * pad:
            raise BadPaddingError("padding bytes are inconsistent")
        content = plain[RANDOM_PREFIX_LEN:-pad]
        if len(content) < _LENGTH_PREFIX.size:
            raise MalformedCiphertextError("plaintext shorter than its length prefix")
        (length,) = _LENGTH_PREFIX.unpack(content[: _LENGTH_PREFIX.size])
        message_end = _LENGTH_PREFIX.size + length
        if message_end > len(content):
            raise MalformedCiphertextError("declared message length exceeds the plaintext")
        receive_id = content[message_end:]
        if not hmac.compare_digest(receive_id, self.receive_id.encode("utf-8")):
            raise ReceiveIdMismatchError("plaintext is addressed to another receive id")
        return content[_LENGTH_PREFIX.size:message_end]

    def decrypt(self, encrypt: str) -> str:
        """Like :meth:`decrypt_bytes`, decoded as UTF-8 (XML for WeCom, JSON for DingTalk)."""
        try:
            return self.decrypt_bytes(encrypt).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedCiphertextError("plaintext is not UTF-8") from exc

    def verify_and_decrypt(self, signature: str, timestamp: str, nonce: str, encrypt: str) -> str:
        """Verify the signature first (cheap, and no decryption oracle), then decrypt."""
        self.verify_signature(signature, timestamp, nonce, encrypt)
        return self.decrypt(encrypt)

    # -- replies and timestamps ---------------------------------------------------

    def now_timestamp(self, now: float | None = None) -> str:
        """Current time as the platform writes it on the query string (s or ms)."""
        seconds = time.time() if now is None else now
        return str(int(seconds * 1000)) if self.timestamp_unit == "ms" else str(int(seconds))

    def timestamp_to_seconds(self, timestamp: str) -> float:
        """Parse a query-string timestamp in this platform's unit.

        ValueError unless it is 1..13 ASCII digits (13 digits of milliseconds reach the
        year 2286): a 400-digit "timestamp" is malformed, not an overflow.
        """
        digits = timestamp.strip()
        if not (0 < len(digits) <= MAX_TIMESTAMP_DIGITS and digits.isascii() and digits.isdigit()):
            raise ValueError("timestamp must be 1..13 digits")
        value = int(digits)
        return value / 1000.0 if self.timestamp_unit == "ms" else float(value)

    def seal(self, message: str | bytes, *, nonce: str, timestamp: str | None = None) -> SignedCiphertext:
        """Encrypt and sign ``message`` (passive replies, DingTalk's ``success`` ack, tests)."""
        ts = timestamp if timestamp is not None else self.now_timestamp()
        encrypt = self.encrypt(message)
        return SignedCiphertext(encrypt=encrypt, signature=self.sign(ts, nonce, encrypt), timestamp=ts, nonce=nonce)


def wecom_crypto(token: str, encoding_aes_key: str, corp_id: str) -> CallbackCrypto:
    """WeCom self-built app: receive id = corp id, timestamps in seconds (reference §1.5)."""
    return CallbackCrypto(token, encoding_aes_key, corp_id, timestamp_unit="s")


def dingtalk_crypto(token: str, encoding_aes_key: str, owner_key: str) -> CallbackCrypto:
    """DingTalk event subscription: receive id = AppKey (or corp id / suite key),
    timestamps in milliseconds (reference §2.4)."""
    return CallbackCrypto(token, encoding_aes_key, owner_key, timestamp_unit="ms")


__all__ = [
    "PAD_BLOCK",
    "BadPaddingError",
    "CallbackCrypto",
    "CallbackCryptoError",
    "MalformedCiphertextError",
    "ReceiveIdMismatchError",
    "SignatureMismatchError",
    "SignedCiphertext",
    "TimestampUnit",
    "compute_signature",
    "decode_aes_key",
    "dingtalk_crypto",
    "wecom_crypto",
]
