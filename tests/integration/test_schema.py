"""The migrations build exactly the schema the models describe, and the hub refuses a stale one."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from canonical_model.models import Base
from hub.database import Database, create_db_engine
from hub.errors import SchemaNotCurrentError


def test_migrations_match_the_models(db):
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_schemas": False})
        diff = [d for d in compare_metadata(ctx, Base.metadata) if not (d[0] == "remove_table" and
                                                                       d[1].name == "alembic_version")]
    assert diff == []


def test_a_schema_that_was_never_migrated_is_refused_with_the_fix(database_url):
    empty = Database(create_db_engine(database_url, "never_migrated_schema"), "never_migrated_schema", database_url)
    with pytest.raises(SchemaNotCurrentError, match="run `hub db upgrade`"):
        empty.require_current_schema()
    empty.dispose()


def test_upgrade_is_idempotent(db):
    db.upgrade()
    db.require_current_schema()
    with db.engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    assert {"customer", "receivable", "outbox", "audit_log", "quarantine", "identity_conflict"} <= tables
