"""The hub as Dagster resources: database, connectors, and the runtime that joins them.

Each connector is a ``ConfigurableResource`` (secrets via ``EnvVar``); which endpoint a
connector talks to is configuration: no ``base_url`` means a sandbox, by default one
started in process for the run, or the one already running at ``sandbox_urls[system]``
(the demo and the tests share one sandbox across several runs that way). The
:class:`HubResource` turns them into ``hub.settings.Settings`` and opens one
``hub.runtime.HubRuntime`` per run, shared by the run's steps and checks, so that a
check reconciles against the very sandbox its asset read, and assets run exactly the
code the CLI runs. Settings these resources do not name (timeouts, language id, the
reminder thresholds, ...) come from the environment, as for the CLI.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import Config, ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr, SecretStr

from hub.runtime import HubRuntime
from hub.settings import KingdeeSettings, OutboxSettings, Settings, WeComSettings


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

    def settings(self, base: KingdeeSettings | None = None) -> KingdeeSettings:
        """As hub settings over ``base`` (the secret wrapped again; other fields kept)."""
        return (base or KingdeeSettings()).model_copy(update={
            "base_url": self.base_url, "acct_id": self.acct_id, "username": self.username, "app_id": self.app_id,
            "app_secret": SecretStr(self.app_secret) if self.app_secret else None,
            "submit_and_audit": self.submit_and_audit, "page_size": self.page_size,
        })


class WeComResource(ConfigurableResource):
    """WeCom server API; ``base_url`` unset: the sandbox."""

    base_url: str | None = None
    corp_id: str | None = None
    secret: str | None = None
    agent_id: int | None = None

    def settings(self, base: WeComSettings | None = None) -> WeComSettings:
        """As hub settings over ``base`` (the secret wrapped again; other fields kept)."""
        return (base or WeComSettings()).model_copy(update={
            "base_url": self.base_url, "corp_id": self.corp_id,
            "secret": SecretStr(self.secret) if self.secret else None, "agent_id": self.agent_id,
        })


class OutboxConfig(Config):
    """How dispatch retries; unset fields come from the environment (``HUB_OUTBOX__*``)."""

    max_attempts: int | None = None
    backoff_initial_s: float | None = None
    backoff_max_s: float | None = None

    def settings(self, base: OutboxSettings) -> OutboxSettings:
        """``base`` with the fields set here."""
        return base.model_copy(update={k: v for k, v in self.model_dump().items() if v is not None})


class HubResource(ConfigurableResource):
    """Everything a hub step needs; ``runtime()`` hands out the run's runtime."""

    database: DatabaseResource
    kingdee: KingdeeResource
    wecom: WeComResource
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    sandbox_urls: dict[str, str] = Field(
        default_factory=dict,
        description="Sandboxes already running, by system (demo, tests); a system without base_url and not "
                    "listed here gets a sandbox started in process for the run.")

    _runtime: HubRuntime | None = PrivateAttr(default=None)

    @classmethod
    def from_settings(cls, settings: Settings, *, sandbox_urls: dict[str, str] | None = None) -> "HubResource":
        """The resource equivalent of ``settings`` (for in-process runs: the demo, tests)."""
        k, w, o = settings.kingdee, settings.wecom, settings.outbox
        return cls(
            database=DatabaseResource(
                url=settings.database_url.get_secret_value() if settings.database_url else None,
                schema_name=settings.database_schema, home=str(settings.home)),
            kingdee=KingdeeResource(
                base_url=k.base_url, acct_id=k.acct_id, username=k.username, app_id=k.app_id,
                app_secret=k.app_secret.get_secret_value() if k.app_secret else None,
                submit_and_audit=k.submit_and_audit, page_size=k.page_size),
            wecom=WeComResource(base_url=w.base_url, corp_id=w.corp_id, agent_id=w.agent_id,
                                secret=w.secret.get_secret_value() if w.secret else None),
            outbox=OutboxConfig(max_attempts=o.max_attempts, backoff_initial_s=o.backoff_initial_s,
                                backoff_max_s=o.backoff_max_s),
            sandbox_urls=dict(sandbox_urls or {}),
        )

    def hub_settings(self) -> Settings:
        """The equivalent ``hub.settings.Settings`` (environment fills what is not set here)."""
        base = Settings()
        update: dict[str, object] = {
            "database_schema": self.database.schema_name,
            "kingdee": self.kingdee.settings(base.kingdee),
            "wecom": self.wecom.settings(base.wecom),
            "outbox": self.outbox.settings(base.outbox),
        }
        if self.database.url:
            update["database_url"] = SecretStr(self.database.url)
        if self.database.home:
            update["home"] = Path(self.database.home)
        return base.model_copy(update=update)

    def open_runtime(self, actor: str) -> HubRuntime:
        """A new runtime over the current schema (a stale schema fails with the fix)."""
        return HubRuntime.open(self.hub_settings(), actor=actor, sandbox_urls=self.sandbox_urls)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Open the run's runtime: one database engine and one set of clients and sandboxes."""
        run = context.dagster_run
        self._runtime = self.open_runtime(f"dagster:{run.job_name}:{run.run_id[:8]}" if run else "dagster")

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        """Close the run's runtime (stops the sandboxes it started)."""
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None

    @contextmanager
    def runtime(self, actor: str) -> Iterator[HubRuntime]:
        """The run's runtime; outside a run (a bare resource) a runtime for this block."""
        if self._runtime is not None:
            yield self._runtime
            return
        with self.open_runtime(f"dagster:{actor}") as runtime:
            yield runtime

