"""Statements sent prepared on the driver's connection (``hub.prepared``) fail as SQLAlchemy's do."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from hub import prepared


@pytest.mark.parametrize("statements", [2, 500])
def test_a_failed_pipeline_raises_the_first_error_once_and_logs_nothing(db, caplog, statements):
    # given a table holding key 1
    with db.engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE pipelined (k int PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO pipelined VALUES (1)"))
    batch = [("INSERT INTO pipelined VALUES (%(k)s)", {"k": 1 if n == 0 else 100 + n}) for n in range(statements)]
    # when a pipeline whose first insert repeats key 1 is sent (a long one reads results while sending)
    caplog.set_level(logging.WARNING, logger="psycopg")
    with db.engine.connect() as conn, pytest.raises(sa.exc.IntegrityError) as raised:
        prepared.execute_pipelined(conn, batch)
    # then the unique violation is raised as SQLAlchemy's IntegrityError, psycopg logs no
    # second "pipeline aborted" line, and nothing of the batch was stored
    assert "pipelined_pkey" in str(raised.value.orig)
    assert [r.getMessage() for r in caplog.records if r.name == "psycopg"] == []
    with db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT array_agg(k) FROM pipelined")).scalar() == [1]


def test_a_pipeline_returns_each_statements_rows_in_order(db):
    # given two statements, one returning rows and one returning none
    with db.engine.connect() as conn:
        # when they are sent in one pipeline
        results = prepared.execute_pipelined(conn, [
            ("SELECT generate_series(1, %(n)s)", {"n": 3}),
            ("SELECT set_config('application_name', %(name)s, true) WHERE false", {"name": "x"}),
        ])
    # then each statement's rows come back in order
    assert results == [[(1,), (2,), (3,)], []]
