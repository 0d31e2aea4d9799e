"""WeCom's side of the callback protocol, for tests and the demo (reference §1.5, §3.6).

:class:`CallbackDriver` does what WeCom's servers do to a callback URL:

- :meth:`CallbackDriver.verify_url` — ``GET ?msg_signature&timestamp&nonce&echostr`` when
  an admin saves the URL; passes only if the answer is exactly the decrypted echostr
  (no quotes, BOM or newline) within 1 s.
- :meth:`CallbackDriver.push` — ``POST`` an encrypted XML event; an HTTP 200 within 5 s
  is an ack, anything else (or a timeout) is retried up to 3 times. Whether WeCom's
  retries reuse the original timestamp/nonce is not documented; the driver resends the
  identical request (guess), the harder case for a receiver that refuses replays.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from connectors.kit.crypto import CallbackCrypto, wecom_crypto
from connectors.kit.http import OwnsHttpClient
from connectors.wecom.sandbox.credentials import (
    SANDBOX_AGENT_ID,
    SANDBOX_CALLBACK_TOKEN,
    SANDBOX_CORP_ID,
    SANDBOX_ENCODING_AES_KEY,
)

ECHO_DEADLINE_S = 1.0  # the URL check must be answered within 1 s
EVENT_DEADLINE_S = 5.0  # events within 5 s, else WeCom retries
EVENT_RETRIES = 3


def _cdata(value: str) -> str:
    # "]]>" cannot appear inside CDATA; split it across two sections, as XML writers do.
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _element(name: str, value: Any) -> str:
    if isinstance(value, Mapping):
        return f"<{name}>" + "".join(_element(k, v) for k, v in value.items()) + f"</{name}>"
    if isinstance(value, list):  # a repeated element (SpRecord, Details in sys_approval_change)
        return "".join(_element(name, item) for item in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"<{name}>{value}</{name}>"
    return f"<{name}>{_cdata(str(value))}</{name}>"


def event_xml(fields: Mapping[str, Any]) -> str:
    """Plaintext event XML in WeCom's style: strings as CDATA, integers bare, a mapping as
    nested elements and a list as the element repeated (``ApprovalInfo``, §2.5)."""
    return "<xml>" + "".join(_element(k, v) for k, v in fields.items()) + "</xml>"


@dataclass
class Delivery:
    """What happened to one pushed event: HTTP statuses (or "timeout"/"error") per attempt."""

    statuses: list[int | str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        """True when some attempt got an HTTP 200."""
        return 200 in self.statuses

    @property
    def attempts(self) -> int:
        """How many requests were sent (1 + retries)."""
        return len(self.statuses)


class CallbackDriver(OwnsHttpClient):
    """Pushes signed, encrypted WeCom callbacks to ``url`` (the receiver's full URL)."""

    def __init__(
        self,
        url: str,
        *,
        token: str = SANDBOX_CALLBACK_TOKEN,
        encoding_aes_key: str = SANDBOX_ENCODING_AES_KEY,
        corp_id: str = SANDBOX_CORP_ID,
        agent_id: int = SANDBOX_AGENT_ID,
        retries: int = EVENT_RETRIES,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self.corp_id = corp_id
        self.agent_id = agent_id
        self.retries = retries
        self._clock = clock
        self._crypto: CallbackCrypto = wecom_crypto(token, encoding_aes_key, corp_id)
        self._http = httpx.Client(transport=transport)

    def verify_url(self) -> bool:
        """Run WeCom's URL check; True when the receiver echoes the exact plaintext in time."""
        echo = str(secrets.randbelow(10**19))
        sealed = self._crypto.seal(echo, nonce=secrets.token_hex(5), timestamp=self._crypto.now_timestamp(self._clock()))
        try:
            reply = self._http.get(self.url, timeout=ECHO_DEADLINE_S, params={
                "msg_signature": sealed.signature, "timestamp": sealed.timestamp, "nonce": sealed.nonce,
                "echostr": sealed.encrypt,
            })
        except httpx.HTTPError:
            return False
        return reply.status_code == 200 and reply.content == echo.encode("utf-8")

    def seal(self, fields: Mapping[str, Any]) -> tuple[dict[str, str], bytes]:
        """The query and body WeCom would POST for one event (``fields`` without
        ToUserName/AgentID, added here): fresh nonce, timestamp now on the driver's clock."""
        plaintext = event_xml({"ToUserName": self.corp_id, **fields, "AgentID": self.agent_id})
        sealed = self._crypto.seal(plaintext, nonce=secrets.token_hex(5),
                                   timestamp=self._crypto.now_timestamp(self._clock()))
        body = (f"<xml><ToUserName>{_cdata(self.corp_id)}</ToUserName><AgentID>{_cdata(str(self.agent_id))}</AgentID>"
                f"<Encrypt>{_cdata(sealed.encrypt)}</Encrypt></xml>")
        params = {"msg_signature": sealed.signature, "timestamp": sealed.timestamp, "nonce": sealed.nonce}
        return params, body.encode("utf-8")

    def push(self, fields: Mapping[str, Any]) -> Delivery:
        """POST one event (see :meth:`seal`), retrying like WeCom on non-200 answers and timeouts."""
        params, body = self.seal(fields)
        delivery = Delivery()
        for _ in range(1 + self.retries):
            try:
                reply = self._http.post(self.url, params=params, content=body,
                                        headers={"Content-Type": "text/xml"}, timeout=EVENT_DEADLINE_S)
                delivery.statuses.append(reply.status_code)
                if reply.status_code == 200:
                    break
            except httpx.TimeoutException:
                delivery.statuses.append("timeout")
            except httpx.HTTPError:
                delivery.statuses.append("error")
        return delivery

    def external_contact_event(
        self, change_type: str, userid: str, external_userid: str, *, state: str = "", welcome_code: str = "",
    ) -> Delivery:
        """Push a ``change_external_contact`` event (§1.5 step 7)."""
        fields: dict[str, str | int] = {
            "FromUserName": "sys", "CreateTime": int(self._clock()), "MsgType": "event",
            "Event": "change_external_contact", "ChangeType": change_type, "UserID": userid,
            "ExternalUserID": external_userid,
        }
        if state:
            fields["State"] = state
        if welcome_code:
            fields["WelcomeCode"] = welcome_code
        return self.push(fields)


__all__ = ["CallbackDriver", "Delivery", "event_xml"]
