"""Kingdee K/3 Cloud settings: the ``HUB_KINGDEE__*`` variables (or ``[kingdee]`` in hub.toml).

A real data centre needs ``base_url`` (site root plus virtual directory, e.g.
``https://erp.example.com/k3cloud/``), the account set id (``acct_id``), the integration
user, and the third-party app's ``app_id`` and ``app_secret`` (erp-apis.md §1.2).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr

from hub.contracts import ConnectorSettings

# Writes in flight at once against one data centre, across every dispatcher. A GUESS:
# erp-apis.md gives no number (Kingdee documents no rate limit; overload shows as timeouts
# and HTTP 500, §1.3), so this is conservative; the sandbox enforces the same default.
DEFAULT_MAX_CONCURRENT_CALLS = 4


class KingdeeSettings(ConnectorSettings):
    """Kingdee K/3 Cloud WebAPI connection and read/write policy."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("acct_id", "username", "app_id", "app_secret")

    acct_id: str | None = None
    username: str | None = None
    app_id: str | None = None
    app_secret: SecretStr | None = None
    lcid: int = 2052  # language of returned texts (2052: simplified Chinese)
    org_num: int = 0
    auth_mode: Literal["signed", "session"] = "signed"  # signed X-Kd headers (official SDK) | session cookie
    timeout_s: float = Field(default=30.0, gt=0)
    page_size: int = Field(default=2000, ge=1, le=10000)
    overlap_s: int = Field(default=300, ge=0)
    submit_and_audit: bool = True  # after Save: Submit + Audit (per-tenant policy)
    max_concurrent_calls: int = Field(default=DEFAULT_MAX_CONCURRENT_CALLS, ge=1, le=64)  # guess, see above
    sync_cron: str = "*/15 * * * *"
