"""Shared fixtures: a real Postgres, one fresh schema per test built by the migrations.

Which server: ``HUB_TEST_DATABASE_URL`` if set; else Postgres on 127.0.0.1:5432,
database ``test``, when it answers; else the embedded server (pgserver) in a temporary
home. Every test that asks for ``db`` gets its own schema, at the migrations' head, and
the schema is dropped afterwards, so tests never see each other's rows.

Running the migrations for each of a thousand tests was the suite's largest single cost,
so each test process migrates one *template* schema with Alembic, has Postgres's own
``pg_dump`` write it out as SQL once, and builds every test's schema from that SQL
(:class:`SchemaTemplate`): the same tables, constraints, triggers, functions and
``alembic_version`` row the migrations made, in well under half the time. Where no
``pg_dump`` at least as new as the server is found, each test migrates as before.
``tests/integration/test_schema.py`` still migrates for real and compares with the models.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import hub.rules  # noqa: F401  (the outbox effect handlers and sync hooks every entry point registers)
from hub.database import Database, create_db_engine, resolve_url
from hub.settings import Settings
from hub.vault import bind, load_vault

# Vendor SDKs honour proxy variables; our sandboxes are on loopback.
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_var, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


def _local_postgres_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The SQLAlchemy URL of the server the suite runs against."""
    if url := os.environ.get("HUB_TEST_DATABASE_URL"):
        return resolve_url(Settings(database_url=url))  # type: ignore[arg-type]
    if _local_postgres_answers():
        return "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    home = Path(os.environ.get("HUB_TEST_HOME") or tmp_path_factory.mktemp("hub-home"))
    return resolve_url(Settings(home=home))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings pointing at a fresh schema on the test server (schema made by ``db``)."""
    schema = f"t_{os.getpid()}_{secrets.token_hex(4)}"
    return Settings(database_url=database_url, database_schema=schema, home=tmp_path,  # type: ignore[arg-type]
                    sandbox=True)


def libpq_url(database_url: str) -> str:
    """The SQLAlchemy URL as libpq (psycopg, pg_dump) takes it."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass(frozen=True)
class SchemaTemplate:
    """A migrated schema written out by ``pg_dump`` as SQL, to build test schemas from.

    The template's name is unique (``tmpl_<pid>_<hex>``), so replacing it by a test's
    schema name touches nothing else. pg_dump's psql meta-commands (``\\restrict``) are
    dropped: the script runs through psycopg, in one transaction.
    """

    name: str
    script: str

    def create(self, database_url: str, schema: str) -> None:
        """Create ``schema`` as the migrations would have."""
        with psycopg.connect(libpq_url(database_url), autocommit=True) as conn, conn.transaction():
            conn.execute(self.script.replace(self.name, schema).encode())


def _pg_dump_for(database_url: str) -> str | None:
    """A pg_dump whose major version is at least the server's (pg_dump refuses older ones)."""
    found = shutil.which("pg_dump")
    if found is None:
        return None
    version = re.search(r"(\d+)\.", subprocess.run([found, "--version"], capture_output=True, text=True).stdout)
    with psycopg.connect(libpq_url(database_url)) as conn:
        server_major = conn.info.server_version // 10000
    return found if version and int(version.group(1)) >= server_major else None


@pytest.fixture(scope="session")
def schema_template(database_url: str) -> Iterator[SchemaTemplate | None]:
    """This test process's migrated template schema as SQL (None: migrate per test instead)."""
    pg_dump = _pg_dump_for(database_url)
    if pg_dump is None:
        yield None
        return
    name = f"tmpl_{os.getpid()}_{secrets.token_hex(4)}"
    template = Database(create_db_engine(database_url, name), name, database_url)
    try:
        template.upgrade()
        dump = subprocess.run([pg_dump, "--dbname", libpq_url(database_url), "--schema", name, "--no-owner",
                               "--no-privileges", "--inserts"], capture_output=True, text=True, check=True).stdout
        yield SchemaTemplate(name, "\n".join(line for line in dump.splitlines() if not line.startswith("\\")))
    finally:
        template.dispose()
        admin = sa.create_engine(database_url)
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        admin.dispose()


@contextmanager
def schema_database(settings: Settings, template: SchemaTemplate | None) -> Iterator[Database]:
    """``settings.database_schema`` made at the migrations' head (from ``template`` when there is
    one), empty, its vault bound to ``settings``; dropped when the block ends."""
    url, schema = settings.database_url.get_secret_value(), settings.database_schema
    database = Database(create_db_engine(url, schema), schema, url)
    bind(database.engine, lambda: load_vault(settings))  # sandbox mode: keys generated under the home
    try:
        if template is not None:
            template.create(url, schema)
        else:
            database.upgrade()
        yield database
    finally:
        database.dispose()
        admin = sa.create_engine(url)
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def db(settings: Settings, schema_template: SchemaTemplate | None) -> Iterator[Database]:
    """A schema of its own for this test, at the migrations' head and empty."""
    with schema_database(settings, schema_template) as database:
        yield database


def rows(db: Database, query: str, **params: object) -> list[sa.Row]:
    """Run a query and return all rows (test helper)."""
    with db.engine.connect() as conn:
        return list(conn.execute(sa.text(query), params))


def scalar(db: Database, query: str, **params: object) -> object:
    """Run a query and return the single value."""
    with db.engine.connect() as conn:
        return conn.execute(sa.text(query), params).scalar()
