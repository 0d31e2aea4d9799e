"""Signatures of the K/3 Cloud WebAPI "third-party authorisation" scheme, as pure functions.

The official Python SDK (``kingdee-cdp-webapi-sdk`` 8.2.0, ``core/webapi_client.py``
``BuildHeader`` and ``util/encode_util.py``, ``util/hmac_util.py``) signs every request
with two headers (reference ``erp-apis.md`` §1.2 (C), [SRC]):

- ``X-Kd-Signature`` = B64HEX(HMAC-SHA256(key=AppSecret, msg=AppID + plain appdata)), where
  appdata is ``"{acctId},{userName},{lcid},{orgNum}"``. This is the one servers verify.
- ``X-Api-Signature`` = B64HEX(HMAC-SHA256(key=derivedSecret, msg="POST\\n" + enc(path) +
  "\\n\\nx-api-nonce:" + nonce + "\\nx-api-timestamp:" + ts + "\\n")), the gateway signature.

``B64HEX`` is base64 of the *lower-case hex text* of the digest (88 characters), not base64 of
the raw digest. ``derivedSecret`` is base64(base64decode(second half of the AppID) XOR a fixed
ASCII mask); the SDK stores the mask rot13-obfuscated with random filler digits
(``generate_code``/``extend_byte_array``), which de-obfuscates to the constant below.

Both the client (to sign) and the sandbox (to verify) use these functions; the contract test
with the official SDK checks them against the vendor's own implementation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from urllib.parse import quote

# rot13("0054s397p6234378o09pn7q3r5qropr7") with the SDK's random filler digits removed.
DEFAULT_XOR_MASK = "0054f397c6234378b09ca7d3e5debce7"

SIGNED_HEADER_NAMES = "x-api-timestamp,x-api-nonce"


def b64hex_hmac_sha256(message: str, key: str) -> str:
    """HMAC-SHA256 → lower-case hex text → base64 of that text (the SDK's ``HmacSHA256``)."""
    digest_hex = hmac.new(key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()
    return base64.b64encode(digest_hex.encode("ascii")).decode("ascii")


def app_data(acct_id: str, username: str, lcid: int, org_num: int) -> str:
    """Plain-text appdata the SDK base64-encodes into ``X-Kd-Appdata``."""
    return f"{acct_id},{username},{lcid},{org_num}"


def kd_signature(app_id: str, app_secret: str, plain_app_data: str) -> str:
    """``X-Kd-Signature``: B64HEX(HMAC-SHA256(AppSecret, AppID + appdata))."""
    return b64hex_hmac_sha256(app_id + plain_app_data, app_secret)


def split_app_id(app_id: str) -> tuple[str, str]:
    """Split ``<clientId>_<32 chars>``; a malformed AppID yields empty parts, as in the SDK."""
    parts = app_id.split("_")
    if len(parts) != 2:
        return "", ""
    return parts[0], parts[1]


def derived_secret(app_id_secret_half: str, xor_mask: str = DEFAULT_XOR_MASK) -> str:
    """Gateway key: base64(base64decode(half) XOR mask); '' when the half is not 32 base64 chars.

    The SDK's own base64 decoder returns nothing for input whose length is not a multiple of
    4 or that contains characters outside the alphabet, which then yields an empty key.
    """
    if len(app_id_secret_half) != 32:
        return ""
    try:
        raw = base64.b64decode(app_id_secret_half, validate=True)
    except (binascii.Error, ValueError):
        return ""
    mask = xor_mask.encode("utf-8")
    mixed = bytes(b ^ mask[i] for i, b in enumerate(raw))
    return base64.b64encode(mixed).decode("ascii")


def encode_path(path: str) -> str:
    """Percent-encode the URL path including ``/`` (the SDK: ``quote(path).replace('/', '%2F')``)."""
    return quote(path, safe="")


def api_signature(path: str, nonce: str, timestamp: str, app_id: str, xor_mask: str = DEFAULT_XOR_MASK) -> str:
    """``X-Api-Signature`` for a POST to ``path`` (URL path after the host)."""
    _, half = split_app_id(app_id)
    key = derived_secret(half, xor_mask)
    message = (
        "POST\n" + encode_path(path) + "\n\nx-api-nonce:" + nonce + "\nx-api-timestamp:" + timestamp + "\n"
    )
    return b64hex_hmac_sha256(message, key)


def signed_headers(
    *, path: str, acct_id: str, username: str, app_id: str, app_secret: str, lcid: int, org_num: int,
    timestamp: str,
) -> dict[str, str]:
    """All signature headers the official SDK sends, for one request to ``path``.

    The Python SDK uses the same value (Unix seconds) for timestamp and nonce; so do we, so
    that a server that is strict about the SDK's behaviour accepts us too.
    """
    client_id, _ = split_app_id(app_id)
    plain = app_data(acct_id, username, lcid, org_num)
    return {
        "X-Api-ClientID": client_id,
        "X-Api-Auth-Version": "2.0",
        "x-api-timestamp": timestamp,
        "x-api-nonce": timestamp,
        "x-api-signheaders": SIGNED_HEADER_NAMES,
        "X-Api-Signature": api_signature(path, timestamp, timestamp, app_id),
        "X-Kd-Appkey": app_id,
        "X-Kd-Appdata": base64.b64encode(plain.encode("utf-8")).decode("ascii"),
        "X-Kd-Signature": kd_signature(app_id, app_secret, plain),
    }


def login_sign(acct_id: str, username: str, app_id: str, app_secret: str, timestamp: str) -> str:
    """``LoginBySign`` sign: SHA-256 hex of the five strings sorted and concatenated (§1.2 (B))."""
    joined = "".join(sorted([acct_id, username, app_id, app_secret, timestamp]))
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()


__all__ = [
    "DEFAULT_XOR_MASK",
    "api_signature",
    "app_data",
    "b64hex_hmac_sha256",
    "derived_secret",
    "encode_path",
    "kd_signature",
    "login_sign",
    "signed_headers",
    "split_app_id",
]
