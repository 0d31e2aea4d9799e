"""Wiring for one hub process: settings, database, connector clients, sandboxes, writers.

A :class:`HubRuntime` is what the CLI, the demo and Dagster resources build on. It
creates each connector's client on first use; when a connector has no ``base_url``
configured it starts that connector's sandbox in-process on a free port and points
the client at it, so a first run needs no accounts. ``close()`` stops the sandboxes.

``sandbox_urls`` names sandboxes that already run elsewhere (started by the demo or a
test, in this process or another): a connector listed there talks to that sandbox,
with the sandbox's own credentials, instead of starting one. Several runtimes (one per
Dagster run) thereby share one sandbox and its state.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Any

from connectors.sandbox_kit import RunningServer, serve_in_thread
from hub.audit import AuditObserver
from hub.contracts import ConnectorSpec, Writer
from hub.database import Database, open_database
from hub.directory import link_users_by_mobile
from hub.engine import SyncReport, sync_stream
from hub.errors import ConfigError
from hub.outbox import Dispatcher
from hub.registry import connector, writer_owner
from hub.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class HubRuntime:
    """Lazily built clients and sandboxes over one database."""

    settings: Settings
    db: Database
    actor: str = "hub"
    sandbox_urls: dict[str, str] = field(default_factory=dict)
    _clients: dict[str, Any] = field(default_factory=dict)
    _sandboxes: dict[str, RunningServer] = field(default_factory=dict)

    @classmethod
    def open(cls, settings: Settings | None = None, *, check_schema: bool = True, actor: str = "hub",
             sandbox_urls: dict[str, str] | None = None) -> HubRuntime:
        """Connect to the database (insisting on a current schema by default)."""
        settings = settings or Settings()
        return cls(settings, open_database(settings, check_schema=check_schema), actor, dict(sandbox_urls or {}))

    def uses_sandbox(self, system: str) -> bool:
        """True when ``system`` has no real endpoint configured."""
        section = getattr(self.settings, system, None)
        return section is None or getattr(section, "base_url", None) is None

    def sandbox(self, system: str, **options: Any) -> RunningServer:
        """The in-process sandbox of ``system``, started on first use."""
        if system not in self._sandboxes:
            spec = connector(system)
            if spec.make_sandbox is None:
                raise ConfigError(f"{system} has no sandbox; configure HUB_{system.upper()}__BASE_URL")
            self._sandboxes[system] = serve_in_thread(spec.make_sandbox(**options))
            log.info("started %s sandbox at %s", system, self._sandboxes[system].url)
        return self._sandboxes[system]

    def client(self, system: str) -> Any:
        """The connector client of ``system`` (its calls are audited)."""
        if system not in self._clients:
            spec = connector(system)
            sandbox_url = None
            if self.uses_sandbox(system):
                sandbox_url = self.sandbox_urls.get(system) or self.sandbox(system).url
            observer = AuditObserver(self.db.engine, actor=f"{self.actor}:{system}")
            self._clients[system] = spec.make_client(self.settings, observer, sandbox_url)
        return self._clients[system]

    def spec(self, system: str) -> ConnectorSpec:
        """The registry entry of ``system``."""
        return connector(system)

    def writer(self, kind: str) -> Writer:
        """The writer for an outbox kind, bound to its connector's client."""
        spec = writer_owner(kind)
        assert spec.make_writer is not None
        return spec.make_writer(kind, self.client(spec.system), self.settings)

    def dispatcher(self, *, kinds: list[str] | None = None, worker_id: str | None = None) -> Dispatcher:
        """An outbox dispatcher using this runtime's writers."""
        return Dispatcher(self.db, self.writer, self.settings.outbox, kinds=kinds, worker_id=worker_id)

    def sync(self, system: str, stream: str | None = None, *, full: bool = False,
             on_page: Any = None) -> list[SyncReport]:
        """Sync one stream, or every stream of ``system`` in dependency order."""
        spec = connector(system)
        streams = [spec.stream(stream)] if stream else ordered_streams(spec)
        client = self.client(system)
        reports = []
        for s in streams:
            if s.target == "internal_user" and spec.account_by_mobile is not None:
                linked = link_users_by_mobile(self.db, system, functools.partial(spec.account_by_mobile, client))
                log.info("%s: linked %d CRM user(s) by mobile before the directory sync (%d asked, %d missed)",
                         system, linked.linked, linked.asked, linked.missed)
            reports.append(sync_stream(self.db, system, s, client, full=full, on_page=on_page))
        return reports

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


def ordered_streams(spec: ConnectorSpec) -> list[Any]:
    """The connector's streams with every stream after the ones it depends on."""
    by_name = {s.name: s for s in spec.streams}
    done: list[Any] = []
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
