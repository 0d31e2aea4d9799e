"""Shared fixtures: a real Postgres, one fresh schema per test built by the migrations.

Which server: ``HUB_TEST_DATABASE_URL`` if set; else Postgres on 127.0.0.1:5432,
database ``test``, when it answers; else the embedded server (pgserver) in a temporary
home. Every test that asks for ``db`` gets its own schema, migrated to head, and the
schema is dropped afterwards, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

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


@pytest.fixture
def db(settings: Settings, database_url: str) -> Iterator[Database]:
    """A migrated, empty schema of its own for this test."""
    database = Database(create_db_engine(database_url, settings.database_schema), settings.database_schema,
                        database_url)
    bind(database.engine, lambda: load_vault(settings))  # sandbox mode: keys generated under the test's home
    database.upgrade()
    yield database
    database.dispose()
    admin = sa.create_engine(database_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{settings.database_schema}" CASCADE'))
    admin.dispose()


def rows(db: Database, query: str, **params: object) -> list[sa.Row]:
    """Run a query and return all rows (test helper)."""
    with db.engine.connect() as conn:
        return list(conn.execute(sa.text(query), params))


def scalar(db: Database, query: str, **params: object) -> object:
    """Run a query and return the single value."""
    with db.engine.connect() as conn:
        return conn.execute(sa.text(query), params).scalar()
