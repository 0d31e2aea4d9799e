"""Kingdee K/3 Cloud settings: the ``HUB_KINGDEE__*`` variables (or ``[kingdee]`` in hub.toml).

A real data centre needs ``base_url`` (site root plus virtual directory, e.g.
``https://erp.example.com/k3cloud/``), the account set id (``acct_id``), the integration
user, and the third-party app's ``app_id`` and ``app_secret`` (erp-apis.md §1.2).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr

from hub.contracts import ConnectorSettings

# Calls in flight at once (hub.outbox.slots: a slot per HTTP exchange) against one data centre, across every dispatcher. A GUESS:
# erp-apis.md gives no number (Kingdee documents no rate limit; overload shows as timeouts
# and HTTP 500, §1.3), so this is conservative; the sandbox enforces the same default.
DEFAULT_MAX_CONCURRENT_CALLS = 4


class KingdeeSettings(ConnectorSettings):
    """Kingdee K/3 Cloud WebAPI connection and read/write policy."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("acct_id", "username", "app_id", "app_secret")

    base_url: str | None = Field(default=None, description="site root plus virtual directory, …/k3cloud/")
    acct_id: str | None = Field(default=None, description="account set (data centre) id")
    username: str | None = Field(default=None, description="integration user")
    app_id: str | None = Field(default=None, description="third-party app id (clientId_…)")
    app_secret: SecretStr | None = Field(default=None, description="third-party app secret")
    lcid: int = Field(default=2052, description="language of returned texts (2052: simplified Chinese)")
    org_num: int = Field(default=0, description="organisation number signed into requests")
    auth_mode: Literal["signed", "session"] = Field(
        default="signed", description="signed (X-Kd headers, as the official SDK) or session (login cookie)")
    timeout_s: float = Field(default=30.0, gt=0, description="seconds to wait for a reply")
    page_size: int = Field(default=2000, ge=1, le=10000, description="rows per query page (server caps at 2000)")
    overlap_s: int = Field(default=300, ge=0, description="seconds re-read before the cursor (late commits)")
    submit_and_audit: bool = Field(default=True, description="take pushed orders through Submit and Audit")
    max_concurrent_calls: int = Field(default=DEFAULT_MAX_CONCURRENT_CALLS, ge=1, le=64,
                                      description="calls in flight at once (a slot per HTTP exchange), all dispatchers together (a guess)")
    sync_cron: str = Field(default="*/15 * * * *", description="cron of kingdee_inbound")
