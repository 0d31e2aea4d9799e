"""DingTalk settings: the ``HUB_DINGTALK__*`` variables (or ``[dingtalk]`` in hub.toml).

DingTalk serves two API generations from two hosts (messaging-apis.md §2.1, "§" below):
``base_url`` is oapi (``https://oapi.dingtalk.com``: tokens, work notices, the
directory), ``api_base_url`` is v1.0 (``https://api.dingtalk.com``: to-dos). A real
tenant needs both, the internal app's AppKey and AppSecret, its AgentId (work notices),
and the unionId of the account the hub creates to-dos as (``operator_union_id``: the
to-dos' creator and the ``operatorId`` of every to-do call). To receive event callbacks:
the subscription's token and aes_key from the developer console (§2.4).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from hub.contracts import ConnectorSettings

OAPI_BASE_URL = "https://oapi.dingtalk.com"
API_BASE_URL = "https://api.dingtalk.com"
LOGIN_URL = "https://login.dingtalk.com"  # browser login outside the app (messaging-apis.md §6)
# Calls in flight at once (hub.outbox.slots: a slot per HTTP exchange) against one app, across every dispatcher. A GUESS from the
# per-app QPS of the standard edition (20/s, §2.3 [3p]): a write makes 2-3 calls of
# ~100 ms each, so 4 in flight stay under 20 calls a second. The sandbox enforces both.
DEFAULT_MAX_CONCURRENT_CALLS = 4
# Calls per second per app: 20 on the standard edition (40 professional, 60 exclusive;
# §2.3 [3p]); the client paces itself to it, the sandbox enforces it (90018).
DEFAULT_MAX_QPS = 20.0
# Work notices: ≤500 per user per app per day (§2.2 [doc]); over-limit sends are
# accepted and silently dropped.
DEFAULT_NOTICES_PER_USER_PER_DAY = 500


# The JSAPI script DingTalk's docs load for dd.getAuthCode; the exact version is our choice
# (a guess at a current 3.x: any 3.x offers runtime.permission.requestAuthCode).
DEFAULT_JSAPI_URL = "https://g.alicdn.com/dingding/dingtalk-jsapi/3.0.25/dingtalk.open.js"


class DingTalkSettings(ConnectorSettings):
    """DingTalk internal app: both API hosts, credentials, the to-do operator, callbacks."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("api_base_url", "app_key", "app_secret", "agent_id", "operator_union_id")

    base_url: str | None = Field(default=None, description=f"oapi host ({OAPI_BASE_URL})")
    api_base_url: str | None = Field(default=None, description=f"v1.0 API host ({API_BASE_URL})")
    app_key: str | None = Field(default=None, description="the internal app's AppKey (Client ID)")
    app_secret: SecretStr | None = Field(default=None, description="the internal app's AppSecret")
    agent_id: int | None = Field(default=None, description="the app's AgentId (work notices)")
    operator_union_id: str | None = Field(
        default=None, description="unionId of the account the hub creates and updates to-dos as")
    timeout_s: float = Field(default=15.0, gt=0, description="seconds to wait for a reply")
    max_concurrent_calls: int = Field(default=DEFAULT_MAX_CONCURRENT_CALLS, ge=1, le=64,
                                      description="calls in flight at once (a slot per HTTP exchange), all dispatchers together (a guess)")
    max_qps: float = Field(default=DEFAULT_MAX_QPS, gt=0, le=1000,
                           description="API calls per second per process (the app's edition: 20, 40 or 60)")
    notices_per_user_per_day: int = Field(default=DEFAULT_NOTICES_PER_USER_PER_DAY, ge=1,
                                          description="work notices per user per day (DingTalk: 500)")
    poll_todo_completions: bool | None = Field(
        default=None, description="poll for to-dos completed in DingTalk (default: when callbacks are off)")
    callback_token: SecretStr | None = Field(default=None, description="event subscription token")
    callback_aes_key: SecretStr | None = Field(default=None, description="event subscription aes_key (43 chars)")
    sync_cron: str = Field(default="30 2 * * *", description="cron of dingtalk_inbound (the directory: nightly)")
    corp_id: str | None = Field(default=None, description="CorpId (dd.getAuthCode asks for it to sign people in)")
    jsapi_url: str = Field(default=DEFAULT_JSAPI_URL,
                           description="DingTalk JSAPI script the sign-in page loads to get a 免登 code")
    login_url: str = Field(default=LOGIN_URL,
                           description="host of DingTalk's browser (QR) login page (oauth2/auth) for sign-in")
    web_login: bool = Field(default=False, description="offer DingTalk QR login on the hub's sign-in page "
                                                        "(/auth/dingtalk/start?web=1)")
    approval_process_code: str | None = Field(
        default=None, pattern=r"^PROC-[A-Za-z0-9-]{1,90}$",
        description="processCode of the OA template CRM orders are approved with (unset: no DingTalk approvals)")
    approval_key_control: str = Field(default="CRM单号", min_length=1, max_length=50,
                                      description="label of that template's text control holding the CRM order key")

    def callbacks_configured(self) -> bool:
        """True when DingTalk can push events to the hub (token, aes_key and AppKey set)."""
        return bool(self.callback_token and self.callback_aes_key and self.app_key)

    def polls_todo_completions(self) -> bool:
        """Whether the to-do poll runs: as configured, else exactly when callbacks are off."""
        if self.poll_todo_completions is not None:
            return self.poll_todo_completions
        return not self.callbacks_configured()


__all__ = [
    "API_BASE_URL",
    "DEFAULT_MAX_CONCURRENT_CALLS",
    "DEFAULT_MAX_QPS",
    "DEFAULT_NOTICES_PER_USER_PER_DAY",
    "LOGIN_URL",
    "OAPI_BASE_URL",
    "DingTalkSettings",
]
