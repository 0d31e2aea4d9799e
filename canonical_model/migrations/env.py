"""Alembic environment: runs migrations into the schema the hub is configured for.

``hub.database.Database.upgrade`` passes an open connection (search_path already set
to the hub schema) through ``config.attributes``; the version table lives in that
schema too, so separate schemas (one per test run) migrate independently.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from canonical_model.models import Base

config = context.config
schema = config.attributes.get("schema", "public")


def run_migrations() -> None:
    """Run against the given connection, or open one from the configured URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    # run from the alembic command line: the schema first on the search path, times in UTC
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "",
                              connect_args={"options": f"-csearch_path={schema},public -ctimezone=UTC"})
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table_schema=schema,
        compare_type=True,
        # autogenerate must not propose dropping Alembic's own bookkeeping table
        include_object=lambda obj, name, type_, reflected, compare_to: not (
            type_ == "table" and name == "alembic_version"),
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
