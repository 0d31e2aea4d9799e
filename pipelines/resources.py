"""The hub as Dagster resources: database, connectors, and the runtime that joins them.

Each connector's resource is generated from its settings model (the one in
``connectors/<system>/settings.py``): the same fields, every one optional (unset means
"as the environment and ``hub.toml`` say"), secrets as plain strings fed through
``EnvVar`` so the UI never shows them. :class:`HubResource` turns the resources back
into ``hub.settings.Settings`` (each connector section validated by its own model) and
opens one ``hub.runtime.HubRuntime`` per run, shared by the run's steps and checks, so
that a check reconciles against the very sandbox its asset read, and assets run
exactly the code the CLI runs.

Sandbox mode is configuration too (``sandbox``): with it, a connector without
``base_url`` talks to the sandbox already running at ``sandbox_urls[system]`` (the demo
and the tests share one sandbox across runs that way), else to one started for the run.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster import Config, ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr, SecretStr, create_model

from hub.contracts import ConnectorSettings
from hub.registry import connector, systems
from hub.runtime import HubRuntime
from hub.settings import ENV_PREFIX, OutboxSettings, Settings, unwrap_optional


class DatabaseResource(ConfigurableResource):
    """Postgres for the canonical store. ``url`` unset: the embedded server under ``home``."""

    url: str | None = None
    schema_name: str = "public"
    home: str | None = None


class ConnectorResource(ConfigurableResource):
    """Base of the generated per-connector resources (see :func:`connector_resource_class`)."""

    def values(self) -> dict[str, Any]:
        """The fields set on this resource (unset ones are left to the environment)."""
        return {name: value for name, value in self.__dict__.items()
                if name in type(self).model_fields and value is not None}


_PLAIN = (str, int, float, bool)
_resource_classes: dict[type[ConnectorSettings], type[ConnectorResource]] = {}


def connector_resource_class(model: type[ConnectorSettings]) -> type[ConnectorResource]:
    """A ``ConfigurableResource`` with the fields of a connector's settings model.

    Types Dagster's config cannot express become text (``SecretStr``, ``Literal``,
    paths); the settings model validates them when the run builds its settings.
    """
    if model not in _resource_classes:
        fields: dict[str, Any] = {}
        for name, info in model.model_fields.items():
            annotation = unwrap_optional(info.annotation)
            plain = annotation if annotation in _PLAIN else str
            fields[name] = (plain | None, Field(default=None, description=info.description))
        name = model.__name__.removesuffix("Settings") + "Resource"
        _resource_classes[model] = create_model(name, __base__=ConnectorResource, **fields)
    return _resource_classes[model]


class OutboxConfig(Config):
    """How dispatch retries; unset fields come from the environment (``HUB_OUTBOX__*``)."""

    max_attempts: int | None = None
    backoff_initial_s: float | None = None
    backoff_max_s: float | None = None

    def settings(self, base: OutboxSettings) -> OutboxSettings:
        """``base`` with the fields set here."""
        return base.model_copy(update={k: v for k, v in self.model_dump().items() if v is not None})


class HubResource(ConfigurableResource):
    """Everything a hub step needs; ``runtime()`` hands out the run's runtime.

    Build it with :func:`hub_resource` (or :meth:`from_settings`): the class made there
    has one field per registered connector, named by its system.
    """

    database: DatabaseResource
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    sandbox: bool = Field(default=False, description="Connectors without base_url use their sandbox.")
    sandbox_urls: dict[str, str] = Field(
        default_factory=dict,
        description="Sandboxes already running, by system (demo, tests); in sandbox mode a system without "
                    "base_url and not listed here gets a sandbox started in process for the run.")

    _runtime: HubRuntime | None = PrivateAttr(default=None)

    @classmethod
    def from_settings(cls, settings: Settings, *, sandbox_urls: dict[str, str] | None = None) -> "HubResource":
        """The resource equivalent of ``settings``, secrets included as values (for
        in-process runs: the demo, tests)."""
        sections: dict[str, Any] = {}
        for system in systems():
            section = settings.connector(system)
            resource = connector_resource_class(type(section))
            sections[system] = resource(**{k: _plain(v) for k, v in section.model_dump().items() if v is not None})
        o = settings.outbox
        return hub_resource_class()(
            database=DatabaseResource(
                url=settings.database_url.get_secret_value() if settings.database_url else None,
                schema_name=settings.database_schema, home=str(settings.home)),
            outbox=OutboxConfig(max_attempts=o.max_attempts, backoff_initial_s=o.backoff_initial_s,
                                backoff_max_s=o.backoff_max_s),
            sandbox=settings.sandbox, sandbox_urls=dict(sandbox_urls or {}), **sections,
        )

    def hub_settings(self) -> Settings:
        """The equivalent ``hub.settings.Settings`` (environment fills what is not set here)."""
        base = Settings()
        sections = {}
        for system in systems():
            resource = getattr(self, system, None)
            current = base.connector(system)
            if isinstance(resource, ConnectorResource):
                current = type(current).model_validate({**current.model_dump(), **resource.values()})
            sections[system] = current
        update: dict[str, object] = {
            "database_schema": self.database.schema_name, "outbox": self.outbox.settings(base.outbox),
            "sandbox": self.sandbox or base.sandbox, "connectors": sections,
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


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Path):
        return str(value)
    return value


_hub_classes: dict[tuple[str, ...], type[HubResource]] = {}


def hub_resource_class() -> type[HubResource]:
    """:class:`HubResource` with one field per registered connector (its generated resource)."""
    key = tuple(systems())
    if key not in _hub_classes:
        fields: dict[str, Any] = {}
        for system in key:
            resource = connector_resource_class(connector(system).settings_model)
            fields[system] = (resource, Field(default_factory=resource))
        _hub_classes[key] = create_model("ConfiguredHubResource", __base__=HubResource, **fields)
    return _hub_classes[key]


def hub_resource(settings: Settings | None = None) -> HubResource:
    """The resource for ``dagster dev``: non-secret values from the settings as they are,
    secrets as ``EnvVar`` of their ``HUB_…`` variable (never shown in the UI)."""
    from dagster import EnvVar

    settings = settings or Settings()
    sections: dict[str, Any] = {}
    for system in systems():
        section = settings.connector(system)
        resource = connector_resource_class(type(section))
        values: dict[str, Any] = {}
        for name, value in section.model_dump().items():
            if value is None:
                continue
            values[name] = EnvVar(f"{ENV_PREFIX}{system.upper()}__{name.upper()}") if isinstance(value, SecretStr) \
                else _plain(value)
        sections[system] = resource(**values)
    database_url = EnvVar(f"{ENV_PREFIX}DATABASE_URL") if settings.database_url else None
    return hub_resource_class()(
        database=DatabaseResource(url=database_url, schema_name=settings.database_schema, home=str(settings.home)),
        sandbox=settings.sandbox, **sections,
    )


__all__ = [
    "ConnectorResource",
    "DatabaseResource",
    "HubResource",
    "OutboxConfig",
    "connector_resource_class",
    "hub_resource",
    "hub_resource_class",
]
