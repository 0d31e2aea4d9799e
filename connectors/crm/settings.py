"""CRM settings: the ``HUB_CRM__*`` variables (or ``[crm]`` in hub.toml), for webhooks back to the CRM.

The CRM writes into the hub through its API; the hub tells the CRM what changed by signed
webhooks to one endpoint, ``base_url`` (the CRM's receiver, ``https://…``), signed with
``signing_secret`` (and, during a rotation, ``previous_signing_secret`` as well). Webhooks
are off while neither is set; half a configuration is an error, as for every connector.

Plain ``http://`` is refused unless the host is this machine (a receiver beside the hub, the
sandbox) or ``allow_http`` says the network in between is trusted: the payloads name
customers and amounts.
"""

from __future__ import annotations

import ipaddress
from typing import ClassVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from connectors.crm.events import EVENT_TYPES
from hub.contracts import ConnectorSettings


class CrmSettings(ConnectorSettings):
    """The CRM's webhook endpoint, its secrets and which events it receives."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("signing_secret",)

    base_url: str | None = Field(None, description="the CRM's webhook receiver URL (https://…); unset: no webhooks")
    signing_secret: SecretStr | None = Field(None, description="HMAC-SHA256 key the webhooks are signed with")
    previous_signing_secret: SecretStr | None = Field(
        None, description="during a secret rotation, the old key: deliveries carry a v1= for each")
    events: str = Field(default=",".join(EVENT_TYPES), description="event types delivered, comma-separated")
    timeout_s: float = Field(default=10.0, gt=0, description="seconds to wait for the receiver's reply")
    max_concurrent_deliveries: int = Field(default=4, ge=1, le=64,
                                           description="webhook requests in flight at once (a slot per HTTP exchange), all dispatchers")
    allow_http: bool = Field(default=False, description="allow a plain http:// receiver on another host")
    sync_cron: str = Field(default="*/15 * * * *", description="unused: the CRM has no inbound streams")

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: str) -> str:
        wanted = [part.strip() for part in value.split(",") if part.strip()]
        unknown = [name for name in wanted if name not in EVENT_TYPES]
        if unknown:
            raise ValueError(f"unknown event {unknown[0]!r} (known: {', '.join(EVENT_TYPES)})")
        return ",".join(dict.fromkeys(wanted))

    @model_validator(mode="after")
    def _secure_url(self) -> CrmSettings:
        if self.base_url is None:
            return self
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("HUB_CRM__BASE_URL must be an http(s)://host/… URL")
        if parts.scheme == "http" and not self.allow_http and not _loopback(parts.hostname):
            raise ValueError("HUB_CRM__BASE_URL is plain http:// to another host: refused (webhooks carry customer "
                             "data); use https://, or set HUB_CRM__ALLOW_HTTP=1 for a trusted network")
        return self

    def event_types(self) -> tuple[str, ...]:
        """The subscribed event types."""
        return tuple(part for part in self.events.split(",") if part)

    def secrets(self) -> list[str]:
        """The signing secrets in use, the current one first."""
        return [s.get_secret_value() for s in (self.signing_secret, self.previous_signing_secret)
                if s is not None and s.get_secret_value()]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


__all__ = ["CrmSettings"]
