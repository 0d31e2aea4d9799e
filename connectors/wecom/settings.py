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

    base_url: str | None = Field(default=None, description="https://qyapi.weixin.qq.com (or a private gateway)")
    corp_id: str | None = Field(default=None, description="corp id (企业ID)")
    secret: SecretStr | None = Field(default=None, description="the self-built app's secret")
    agent_id: int | None = Field(default=None, description="the self-built app's AgentId")
    timeout_s: float = Field(default=15.0, gt=0, description="seconds to wait for a reply")
    duplicate_check_interval_s: int = Field(default=1800, ge=60, le=14400,
                                            description="WeCom's duplicate-suppression window for reminders")
    callback_token: SecretStr | None = Field(default=None, description="callback Token (接收消息 settings)")
    callback_aes_key: SecretStr | None = Field(default=None, description="callback EncodingAESKey")
    sync_cron: str = Field(default="30 2 * * *", description="cron of wecom_inbound (the directory: nightly)")
