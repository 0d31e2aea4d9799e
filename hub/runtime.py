"""Wiring for one hub process: settings, database, connector clients, sandboxes, writers.

A :class:`HubRuntime` is what the CLI, the demo and Dagster resources build on. It
creates each connector's client on first use from the connector's settings section.

Sandbox mode is explicit (``Settings.sandbox``: ``HUB_SANDBOX=1``, ``hub demo``, the
tests). In it, a connector without a ``base_url`` talks to its sandbox: one named in
``sandbox_urls`` (started by the demo or a test, in this process or another, so that
several runtimes share one sandbox and its state), else one started here in-process on
a free port. Outside sandbox mode a connector that is not fully configured is a
ConfigError naming the missing variables, and no sandbox module is ever imported.
``close()`` stops the sandboxes this runtime started.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from hub.audit import AuditObserver
from hub.calls import ignore_call
from hub.contracts import (
    CallLimits,
    ConnectorSettings,
    ConnectorSpec,
    RunningSandbox,
    SandboxSpec,
    StreamSpec,
    Writer,
)
from hub.database import Database, open_database
from hub.engine import SyncCounts, SyncReport, sync_stream
from hub.engine.schedule import run_reading_early
from hub.errors import ConfigError
from hub.outbox import Dispatcher
from hub.registry import connector, writer_owner
from hub.settings import ENV_PREFIX, Settings

log = logging.getLogger(__name__)

# Work that must happen before a stream of a target is read (registered by the domain
# rules; e.g. linking CRM users to directory accounts before a directory sync).
BeforeStream = Callable[["HubRuntime", ConnectorSpec[Any, Any], Any], None]
_BEFORE_STREAM: dict[str, list[BeforeStream]] = {}


def before_stream(target: str, hook: BeforeStream) -> None:
    """Run ``hook(runtime, spec, client)`` before every sync of a stream into ``target``: before
    its pages are prepared and written (:meth:`HubRuntime.sync`). The stream's first pages
    may be read meanwhile, from the cursor stored before the hook ran; a hook that moves
    that cursor (``hub.rules.salespeople`` resets it) makes the read start again from the
    new one (``hub.engine.sync.sync_stream``'s ``ready``)."""
    hooks = _BEFORE_STREAM.setdefault(target, [])
    if hook not in hooks:
        hooks.append(hook)


AfterStream = Callable[["HubRuntime", ConnectorSpec[Any, Any], StreamSpec[Any]], None]
_AFTER_STREAM: dict[str, list[AfterStream]] = {}


def after_stream(target: str, hook: AfterStream) -> None:
    """Run ``hook(runtime, spec, stream)`` after every sync of a stream into ``target``."""
    hooks = _AFTER_STREAM.setdefault(target, [])
    if hook not in hooks:
        hooks.append(hook)


# Work that turns into outbox rows only where the configuration is known (registered by the
# domain rules; e.g. webhook events handed to the outbox for the configured endpoint). Each
# dispatcher this runtime builds runs them before it claims (``Dispatcher(feed=…)``).
BeforeDispatch = Callable[["HubRuntime"], None]
_BEFORE_DISPATCH: list[BeforeDispatch] = []


def before_dispatch(hook: BeforeDispatch) -> None:
    """Run ``hook(runtime)`` before each claim of the runtime's dispatchers (at most every 0.2 s)."""
    if hook not in _BEFORE_DISPATCH:
        _BEFORE_DISPATCH.append(hook)


def load_sandbox(spec: ConnectorSpec[Any, Any]) -> SandboxSpec[Any]:
    """The connector's sandbox description (imports its sandbox module)."""
    if spec.sandbox is None:
        raise ConfigError(f"{spec.system} has no sandbox; configure {ENV_PREFIX}{spec.system.upper()}__BASE_URL")
    sandbox = getattr(importlib.import_module(spec.sandbox), "SANDBOX", None)
    if not isinstance(sandbox, SandboxSpec):
        raise ConfigError(f"{spec.sandbox}.SANDBOX is not a SandboxSpec")
    return sandbox


@dataclass
class HubRuntime:
    """Lazily built clients and sandboxes over one database."""

    settings: Settings
    db: Database
    actor: str = "hub"
    sandbox_urls: dict[str, str] = field(default_factory=dict)
    audit_calls: bool = True  # off only where the audit table may not exist yet (`hub doctor`)
    _clients: dict[str, Any] = field(default_factory=dict)
    _sandboxes: dict[str, RunningSandbox] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from hub.survivorship import bind_precedence
        from hub.vault import bind_unless_bound, load_vault

        settings = self.settings
        bind_unless_bound(self.db.engine, lambda: load_vault(settings))
        # the runtime's settings decide survivorship on its database (hub.survivorship)
        bind_precedence(self.db.engine, settings.survivorship.rules())

    @classmethod
    def open(cls, settings: Settings | None = None, *, check_schema: bool = True, actor: str = "hub",
             sandbox_urls: dict[str, str] | None = None) -> HubRuntime:
        """Connect to the database (insisting on a current schema by default)."""
        settings = settings or Settings()
        return cls(settings, open_database(settings, check_schema=check_schema), actor, dict(sandbox_urls or {}))

    def uses_sandbox(self, system: str) -> bool:
        """True when ``system`` talks to its sandbox (sandbox mode and no base_url)."""
        return self.settings.sandbox and self.settings.connector(system).base_url is None

    def sandbox(self, system: str, **options: Any) -> RunningSandbox:
        """The in-process sandbox of ``system``, started on first use."""
        if not self.settings.sandbox:
            raise ConfigError(f"the {system} sandbox runs only in sandbox mode ({ENV_PREFIX}SANDBOX=1, hub demo)")
        if system not in self._sandboxes:
            sandbox = load_sandbox(connector(system))
            self._sandboxes[system] = sandbox.serve(sandbox.create_app(**options))
            log.info("started %s sandbox at %s", system, self._sandboxes[system].url)
        return self._sandboxes[system]

    def connector_settings(self, system: str) -> ConnectorSettings:
        """The settings ``system``'s client is built from: configured, or the sandbox's."""
        spec = connector(system)
        section = self.settings.connector(system)
        if self.uses_sandbox(system):
            url = self.sandbox_urls.get(system) or self.sandbox(system).url
            return load_sandbox(spec).client_settings(url, section)
        if not self.settings.sandbox and (problem := section.transport_problem(system)):
            raise ConfigError(problem)
        missing = section.missing()
        if missing:
            names = ", ".join(f"{ENV_PREFIX}{system.upper()}__{name.upper()}" for name in missing)
            hint = "" if self.settings.sandbox else f" (or {ENV_PREFIX}SANDBOX=1 to use its sandbox)"
            raise ConfigError(f"{system} is not configured: set {names}{hint}")
        return section

    def client(self, system: str) -> Any:
        """The connector client of ``system`` (its calls are audited)."""
        if system not in self._clients:
            spec = connector(system)
            observer = AuditObserver(self.db.engine, actor=f"{self.actor}:{system}") if self.audit_calls \
                else ignore_call
            self._clients[system] = spec.make_client(self.connector_settings(system), observer)
        return self._clients[system]

    def spec(self, system: str) -> ConnectorSpec[Any, Any]:
        """The registry entry of ``system``."""
        return connector(system)

    def writer(self, kind: str) -> Writer:
        """The writer for an outbox kind, bound to its connector's client and settings."""
        spec = writer_owner(kind)
        client = self.client(spec.system)
        return spec.writer(kind)(client, self.connector_settings(spec.system))

    def call_limits(self, system: str) -> CallLimits:
        """How hard the outbox may drive ``system``, as its connector declares from its settings."""
        spec = connector(system)
        return spec.limits(self.connector_settings(system)) if spec.limits is not None else CallLimits()

    def dispatcher(self, *, kinds: list[str] | None = None, worker_id: str | None = None) -> Dispatcher:
        """An outbox dispatcher using this runtime's writers and its connectors' call limits."""
        for kind in kinds or []:
            writer_owner(kind)  # an unknown kind is a ConfigError, not an empty run
        return Dispatcher(self.db, self.writer, self.settings.outbox, kinds=kinds, worker_id=worker_id,
                          limits_for=self.call_limits, feed=self.feed_outbox if _BEFORE_DISPATCH else None)

    def feed_outbox(self) -> None:
        """Run the registered before-dispatch work (see :func:`before_dispatch`)."""
        for hook in list(_BEFORE_DISPATCH):
            hook(self)

    def sync(self, system: str, stream: str | None = None, *, full: bool = False,
             on_page: Callable[[str, SyncCounts], None] | None = None) -> list[SyncReport]:
        """Sync one stream, or every stream of ``system``; reports in dependency order.

        Every stream starts reading at once, within the connector's declared concurrency
        (``CallLimits.concurrency``; the client's read slots bound the calls in flight), and
        writes only once the streams it depends on are synced and its before-stream work
        (:func:`before_stream`) is done (:func:`hub.engine.schedule.run_reading_early`,
        ``sync_stream``'s ``ready``): orders, receivables and receipts read their first pages
        while customers are read and written, and the customers' first page while the
        salespeople are linked. ``on_page(stream, counts)`` follows each stream's progress
        (from its own thread)."""
        spec = connector(system)
        streams = [spec.stream(stream)] if stream else ordered_streams(spec)
        client = self.client(system)

        def one(s: StreamSpec[Any], ready: Callable[[], None]) -> SyncReport:
            def ready_to_write() -> None:
                ready()
                for hook in _BEFORE_STREAM.get(s.target, []):
                    hook(self, spec, client)

            progress = None if on_page is None else partial(on_page, s.name)
            report = sync_stream(self.db, system, s, client, full=full, on_page=progress, ready=ready_to_write)
            for after in _AFTER_STREAM.get(s.target, []):
                after(self, spec, s)
            return report

        return run_reading_early(streams, one, max_parallel=self.call_limits(system).concurrency)

    def close(self) -> None:
        """Close clients and stop sandboxes."""
        for client in self._clients.values():
            close = getattr(client, "close", None)
            if callable(close):
                close()
        for server in self._sandboxes.values():
            server.stop()
        self._clients.clear()
        self._sandboxes.clear()
        self.db.dispose()

    def __enter__(self) -> HubRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ordered_streams(spec: ConnectorSpec[Any, Any]) -> list[StreamSpec[Any]]:
    """The connector's streams with every stream after the ones it depends on."""
    by_name = {s.name: s for s in spec.streams}
    done: list[StreamSpec[Any]] = []
    seen: set[str] = set()

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if name in seen:
            return
        if name in trail:
            raise ConfigError(f"{spec.system}: stream dependency cycle {' -> '.join((*trail, name))}")
        for dep in by_name[name].depends_on:
            visit(dep, (*trail, name))
        seen.add(name)
        done.append(by_name[name])

    for name in by_name:
        visit(name, ())
    return done
