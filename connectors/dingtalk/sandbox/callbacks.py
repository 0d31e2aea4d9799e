"""DingTalk's side of the event subscription, for tests and the demo (reference §2.4, §3).

:class:`CallbackDriver` does what DingTalk's servers do to a registered URL: ``POST
?signature&timestamp(ms)&nonce`` with ``{"encrypt": …}`` (receive id = AppKey), and count
the push as delivered only when the answer is the encrypted word ``success``, correctly
signed, within 1500 ms. :meth:`CallbackDriver.register` is the ``check_url`` push of
saving the URL in the developer console. Whether DingTalk retries a failed push, and how,
is not in the reference: the driver does not.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from connectors.dingtalk.sandbox.credentials import (
    SANDBOX_APP_KEY,
    SANDBOX_CALLBACK_AES_KEY,
    SANDBOX_CALLBACK_TOKEN,
)
from connectors.kit.crypto import CallbackCrypto, CallbackCryptoError, dingtalk_crypto
from connectors.kit.http import OwnsHttpClient

REPLY_DEADLINE_S = 1.5  # §2.4: answer within 1500 ms
ACK = "success"


@dataclass(frozen=True)
class Push:
    """One push and DingTalk's verdict: HTTP status (or "timeout"/"error") and whether the
    reply was a valid encrypted ``success``."""

    status: int | str
    acknowledged: bool
    reply: Any = None


class CallbackDriver(OwnsHttpClient):
    """Pushes signed, encrypted DingTalk events to ``url`` (the receiver's full URL)."""

    def __init__(
        self, url: str, *, token: str = SANDBOX_CALLBACK_TOKEN, aes_key: str = SANDBOX_CALLBACK_AES_KEY,
        app_key: str = SANDBOX_APP_KEY, clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self._clock = clock
        self._crypto: CallbackCrypto = dingtalk_crypto(token, aes_key, app_key)
        self._http = httpx.Client(transport=transport, trust_env=False)

    def seal(self, event: Mapping[str, Any]) -> tuple[dict[str, str], bytes]:
        """The query and body DingTalk would POST for ``event`` (fresh nonce, now in ms)."""
        sealed = self._crypto.seal(json.dumps(dict(event), ensure_ascii=False), nonce=secrets.token_hex(4),
                                   timestamp=self._crypto.now_timestamp(self._clock()))
        params = {"signature": sealed.signature, "timestamp": sealed.timestamp, "nonce": sealed.nonce}
        return params, json.dumps({"encrypt": sealed.encrypt}).encode("utf-8")

    def post(self, params: Mapping[str, str], body: bytes) -> Push:
        """POST one sealed push and judge the answer as DingTalk does."""
        try:
            reply = self._http.post(self.url, params=dict(params), content=body,
                                    headers={"Content-Type": "application/json"}, timeout=REPLY_DEADLINE_S)
        except httpx.TimeoutException:
            return Push("timeout", False)
        except httpx.HTTPError:
            return Push("error", False)
        return Push(reply.status_code, reply.status_code == 200 and self.acknowledges(reply), reply)

    def acknowledges(self, reply: httpx.Response) -> bool:
        """True when ``reply`` is ``{msg_signature, timeStamp, nonce, encrypt}`` of "success"."""
        try:
            data = reply.json()
            plaintext = self._crypto.verify_and_decrypt(str(data["msg_signature"]), str(data["timeStamp"]),
                                                        str(data["nonce"]), str(data["encrypt"]))
        except (ValueError, KeyError, TypeError, CallbackCryptoError):
            return False
        return plaintext == ACK

    def push(self, event: Mapping[str, Any]) -> Push:
        """Seal and POST one event."""
        return self.post(*self.seal(event))

    def register(self) -> Push:
        """The ``check_url`` push sent when the URL is saved (§2.4)."""
        return self.push({"EventType": "check_url"})


__all__ = ["ACK", "CallbackDriver", "Push"]
