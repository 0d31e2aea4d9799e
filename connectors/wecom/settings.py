"""WeCom settings: the ``HUB_WECOM__*`` variables (or ``[wecom]`` in hub.toml).

A real tenant needs ``base_url`` (``https://qyapi.weixin.qq.com``, or a private gateway),
the corp id, the self-built app's secret and agent id (messaging-apis.md §1.1), and, to
receive event callbacks, the callback token and EncodingAESKey set in the admin console
(§1.5).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from hub.contracts import ConnectorSettings


class WeComSettings(ConnectorSettings):
    """WeCom server API connection, message policy and callback credentials."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("corp_id", "secret", "agent_id")

    corp_id: str | None = None
    secret: SecretStr | None = None
    agent_id: int | None = None
    timeout_s: float = Field(default=15.0, gt=0)
    duplicate_check_interval_s: int = Field(default=1800, ge=60, le=14400)
    callback_token: SecretStr | None = None
    callback_aes_key: SecretStr | None = None
    sync_cron: str = "30 2 * * *"  # the directory changes slowly: nightly
