"""Connecting to Postgres: a configured server or the embedded one.

``HUB_DATABASE_URL`` set: that server. Unset: an embedded Postgres (the ``pgserver``
package) whose data lives in ``HUB_HOME/pg``; it is started on first use, shared by
every hub process on the machine, and stopped when the last one exits. A hub process
killed with SIGKILL leaves its pid in pgserver's handle list and possibly a stale
``postmaster.pid``; :func:`start_embedded` prunes dead pids first, and pgserver itself
restarts a server whose postmaster is gone, so the next start needs no manual step.

All connections set ``search_path`` to ``HUB_DATABASE_SCHEMA`` so the test suite can
give each run its own schema built by the migrations.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from hub.errors import ConfigError, SchemaNotCurrentError
from hub.settings import Settings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "canonical_model" / "migrations"


def start_embedded(home: Path) -> str:
    """Start (or join) the embedded Postgres in ``home/pg``; return a libpq URL."""
    with warnings.catch_warnings():
        # pgserver asks platformdirs for a runtime dir at import, which warns when
        # XDG_RUNTIME_DIR is unset (cron, containers, ssh); the dir is never used here
        warnings.simplefilter("ignore")
        import pgserver  # imported lazily: starting it costs ~0.5 s and is needed only here

    pgdata = home / "pg"
    pgdata.mkdir(parents=True, exist_ok=True)
    _prune_dead_handles(pgdata / ".handle_pids.json")
    for lock_file in [pgdata / "postmaster.pid", *pgdata.glob(".s.PGSQL.*.lock")]:
        _remove_stale_lock(lock_file)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    return str(server.get_uri())


def _prune_dead_handles(handle_file: Path) -> None:
    """Drop pids of processes that died without cleanup (SIGKILL) from pgserver's list,
    so that the last live process still stops the server at exit."""
    if not handle_file.exists():
        return
    try:
        pids = json.loads(handle_file.read_text() or "[]")
    except json.JSONDecodeError:
        pids = []
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid) and pid != os.getpid()]
    if alive != pids:
        handle_file.write_text(json.dumps(alive))


def _remove_stale_lock(pid_file: Path) -> None:
    """Delete a Postgres lock file (``postmaster.pid``, the socket's ``.lock``) when the
    postmaster it names is gone or a zombie.

    A SIGKILLed postmaster whose parent never reaps it (a container whose PID 1 is not
    an init) stays a zombie: to pgserver and to Postgres itself the pid still "exists",
    so neither would start a new server. A zombie holds no files or sockets, so its lock
    files are safe to remove.
    """
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return
    try:
        alive = psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        alive = False
    if not alive:
        log.warning("removing stale %s (postmaster %s is gone)", pid_file, pid)
        pid_file.unlink(missing_ok=True)


def resolve_url(settings: Settings) -> str:
    """The SQLAlchemy URL (psycopg 3 driver) for the configured or embedded database."""
    raw = settings.database_url.get_secret_value() if settings.database_url else start_embedded(settings.home)
    try:
        url = make_url(raw)
    except sa.exc.ArgumentError:
        raise ConfigError("HUB_DATABASE_URL is not a database URL (expected postgresql://user@host:5432/db)") from None
    if url.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        url = url.set(drivername="postgresql+psycopg")
    if url.drivername != "postgresql+psycopg":
        raise ConfigError(f"HUB_DATABASE_URL must be a PostgreSQL URL, got driver {url.drivername!r}")
    return url.render_as_string(hide_password=False)


def dagster_storage_url(sqlalchemy_url: str) -> str:
    """Dagster's Postgres storage wants a ``postgresql+psycopg2://`` URL."""
    return make_url(sqlalchemy_url).set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)


def create_db_engine(url: str, schema: str, **kwargs: Any) -> Engine:
    """An engine whose connections use ``schema`` first on the search path.

    ``hide_parameters``: SQLAlchemy's exception text (and its echo log) would otherwise
    quote the statement's parameters, i.e. record values such as phone numbers, into
    tracebacks, logs and the sync run's failure text.
    """
    return sa.create_engine(
        url,
        connect_args={"options": f"-csearch_path={schema},public -ctimezone=UTC"},
        pool_pre_ping=True,
        hide_parameters=True,
        **kwargs,
    )


@dataclass
class Database:
    """The hub's handle on Postgres: an engine plus the schema it lives in."""

    engine: Engine
    schema: str
    url: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        """Connect to the configured (or embedded) database; no schema check."""
        from hub.survivorship import bind_precedence
        from hub.vault import bind, load_vault

        url = resolve_url(settings)
        database = cls(create_db_engine(url, settings.database_schema), settings.database_schema, url)
        # the keys load on first use: commands that touch no personal data run without them
        bind(database.engine, lambda: load_vault(settings))
        bind_precedence(database.engine, settings.survivorship.rules())
        return database

    @property
    def vault(self) -> Any:
        """The :class:`hub.vault.Vault` of this database (ConfigError when no keys are set)."""
        from hub.vault import vault_of_engine

        return vault_of_engine(self.engine)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection inside a transaction, committed on success."""
        with self.engine.begin() as conn:
            yield conn

    def current_revision(self) -> str | None:
        """The Alembic revision the database is at (None: never migrated)."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def require_current_schema(self) -> None:
        """Raise :class:`SchemaNotCurrentError` unless the schema is at the head revision."""
        head = head_revision()
        current = self.current_revision()
        if current != head:
            raise SchemaNotCurrentError(
                f"database schema is at {current or 'nothing'}, code expects {head}: run `hub db upgrade`"
            )

    def upgrade(self) -> None:
        """Apply every pending Alembic migration."""
        from alembic import command

        with self.engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            cfg = alembic_config(self.url, self.schema)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()


def alembic_config(url: str, schema: str) -> Any:
    """An Alembic Config pointing at the hub's migrations (no alembic.ini needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["schema"] = schema
    return cfg


def head_revision() -> str | None:
    """The newest migration in the code."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("postgresql+psycopg://", "public")).get_current_head()


def open_database(settings: Settings | None = None, *, check_schema: bool = True) -> Database:
    """Connect and (by default) insist that the schema is current."""
    db = Database.from_settings(settings or Settings())
    if check_schema:
        db.require_current_schema()
    return db
