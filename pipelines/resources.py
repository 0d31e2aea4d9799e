"""The hub as Dagster resources: database, connectors, and the runtime that joins them.

Each connector is a ``ConfigurableResource`` (secrets via ``EnvVar``); which endpoint a
connector talks to is configuration: no ``base_url`` means the in-process sandbox. The
:class:`HubResource` turns them into ``hub.settings.Settings`` and opens a
``hub.runtime.HubRuntime`` per step, so assets run exactly the code the CLI runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import SecretStr

from hub.runtime import HubRuntime
from hub.settings import KingdeeSettings, Settings, WeComSettings


class DatabaseResource(ConfigurableResource):
    """Postgres for the canonical store. ``url`` unset: the embedded server under ``home``."""

    url: str | None = None
    schema_name: str = "public"
    home: str | None = None


class KingdeeResource(ConfigurableResource):
    """Kingdee K/3 Cloud WebAPI; ``base_url`` unset: the sandbox."""

    base_url: str | None = None
    acct_id: str | None = None
    username: str | None = None
    app_id: str | None = None
    app_secret: str | None = None
    submit_and_audit: bool = True
    page_size: int = 2000

    def settings(self) -> KingdeeSettings:
        """As hub settings (the secret wrapped again)."""
        return KingdeeSettings(
            base_url=self.base_url, acct_id=self.acct_id, username=self.username, app_id=self.app_id,
            app_secret=SecretStr(self.app_secret) if self.app_secret else None,
            submit_and_audit=self.submit_and_audit, page_size=self.page_size,
        )


class WeComResource(ConfigurableResource):
    """WeCom server API; ``base_url`` unset: the sandbox."""

    base_url: str | None = None
    corp_id: str | None = None
    secret: str | None = None
    agent_id: int | None = None

    def settings(self) -> WeComSettings:
        """As hub settings (the secret wrapped again)."""
        return WeComSettings(base_url=self.base_url, corp_id=self.corp_id,
                             secret=SecretStr(self.secret) if self.secret else None, agent_id=self.agent_id)


class HubResource(ConfigurableResource):
    """Everything a hub step needs; ``runtime()`` opens it for the duration of a step."""

    database: DatabaseResource
    kingdee: KingdeeResource
    wecom: WeComResource

    def hub_settings(self) -> Settings:
        """The equivalent ``hub.settings.Settings`` (environment fills what is not set here)."""
        base = Settings()
        update: dict[str, object] = {
            "database_schema": self.database.schema_name,
            "kingdee": self.kingdee.settings(),
            "wecom": self.wecom.settings(),
        }
        if self.database.url:
            update["database_url"] = SecretStr(self.database.url)
        if self.database.home:
            update["home"] = Path(self.database.home)
        return base.model_copy(update=update)

    @contextmanager
    def runtime(self, actor: str) -> Iterator[HubRuntime]:
        """A runtime over the current schema (a stale schema fails the step with the fix)."""
        with HubRuntime.open(self.hub_settings(), actor=f"dagster:{actor}") as runtime:
            yield runtime
