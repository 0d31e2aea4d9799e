"""WeCom settings: the ``HUB_WECOM__*`` variables (or ``[wecom]`` in hub.toml).

A real tenant needs ``base_url`` (``https://qyapi.weixin.qq.com``, or a private gateway),
the corp id, the self-built app's secret and agent id (messaging-apis.md §1.1), and, to
receive event callbacks, the callback token and EncodingAESKey set in the admin console
(§1.5).
"""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator

from hub.contracts import ConnectorSettings, RateWindow

# Calls in flight at once (hub.outbox.slots: a slot per HTTP exchange) against one app, across every dispatcher. A GUESS: §1.3 quotes
# about five concurrent calls for some externalcontact APIs (45033) and no number for
# message/send; the sandbox enforces the same default.
DEFAULT_MAX_CONCURRENT_CALLS = 5
# Per app per member: at most 30 messages a minute and 1,000 an hour; WeCom drops the
# excess silently (§1.4, [doc]). "<limit>/<seconds>" pairs, comma-separated.
DEFAULT_MEMBER_MESSAGE_LIMITS = "30/60,1000/3600"
_LIMIT = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*$")


def parse_rate_windows(text: str) -> tuple[RateWindow, ...]:
    """``"30/60,1000/3600"`` → at most 30 in any 60 s and 1,000 in any 3,600 s."""
    windows = []
    for part in text.split(","):
        match = _LIMIT.match(part)
        if match is None or int(match.group(1)) < 1 or float(match.group(2)) <= 0:
            raise ValueError(f"{part.strip()!r} is not '<limit>/<seconds>' (e.g. '30/60,1000/3600')")
        windows.append(RateWindow(seconds=float(match.group(2)), limit=int(match.group(1))))
    return tuple(windows)


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
    max_concurrent_calls: int = Field(default=DEFAULT_MAX_CONCURRENT_CALLS, ge=1, le=64,
                                      description="calls in flight at once (a slot per HTTP exchange), all dispatchers together (a guess)")
    member_message_limits: str = Field(
        default=DEFAULT_MEMBER_MESSAGE_LIMITS,
        description="messages per member per window, as count/seconds pairs (WeCom: 30/min, 1000/h)")
    callback_token: SecretStr | None = Field(default=None, description="callback Token (接收消息 settings)")
    callback_aes_key: SecretStr | None = Field(default=None, description="callback EncodingAESKey")
    sync_cron: str = Field(default="30 2 * * *", description="cron of wecom_inbound (the directory: nightly)")
    oauth_url: str = Field(default="https://open.weixin.qq.com",
                           description="host of WeCom's in-app OAuth page (connect/oauth2/authorize) for sign-in")
    web_login_url: str = Field(default="https://login.work.weixin.qq.com",
                               description="host of WeCom's web (QR) login page (wwlogin/sso/login)")
    web_login: bool = Field(default=False, description="offer WeCom QR login on the hub's sign-in page")
    approval_template_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_-]{8,64}$",
        description="template_id of the OA template CRM orders are approved with (unset: no WeCom approvals)")
    approval_key_control: str = Field(default="CRM单号", min_length=1, max_length=64,
                                      description="title (or control id) of that template's text control holding "
                                                  "the CRM order key")

    @field_validator("member_message_limits")
    @classmethod
    def _windows(cls, value: str) -> str:
        parse_rate_windows(value)
        return value
