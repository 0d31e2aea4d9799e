"""Hot statements, sent on the driver's own connection (psycopg 3), prepared: the outbox dispatcher's,
and the engine's inserts of new golden customers (:func:`execute_pipelined`, ``hub.engine.targets``).

Per effect the dispatcher claims a row, records its outcome and audits it, and takes and
gives back a call slot around every call: a handful of small statements whose round trips
are short on a local Postgres, and whose cost in the dispatcher was mostly SQLAlchemy's
per-statement work (compile cache look-up, a result's metadata built from the cursor's
description on every execution: py-spy on 2,000 webhooks, 0 ms latency). Sent here on
``conn``'s DBAPI connection, as server-side prepared statements (``prepare=True``: parsed
and planned once per connection), with plain tuple rows.

Inside a transaction opened by SQLAlchemy (``Database.begin``) they are part of it: the
driver connection *is* that transaction's connection (psycopg opens the transaction on
the first statement; SQLAlchemy commits or rolls back the driver connection). A failure
raises ``psycopg.Error``, not a SQLAlchemy error; :func:`execute` wraps it in SQLAlchemy's
``DBAPIError`` (and marks the connection invalidated when the connection broke), so callers
and the pool see it as they see any other statement's failure.

``sent`` counts the statements sent here on the hub's pooled connections (the benchmarks
add it to SQLAlchemy's own count; ``slot`` statements are not counted, as the call slots'
connections never were).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, StatementError

_lock = threading.Lock()
_sent = 0


def sent() -> int:
    """Statements sent through :func:`execute` (``count=True``) so far in this process."""
    with _lock:
        return _sent


def execute(conn: Connection, query: str, params: Mapping[str, Any], *, count: bool = True) -> list[tuple[Any, ...]]:
    """Run ``query`` (psycopg ``%(name)s`` placeholders) on ``conn``'s driver connection, prepared;
    the rows it returns (none for a statement without a result)."""
    driver = conn.connection.driver_connection
    if count:
        _count(1)
    try:
        return _rows(driver.execute(query, params, prepare=True))  # type: ignore[union-attr]
    except psycopg.Error as exc:
        raise _as_sqlalchemy_error(conn, query, exc) from exc


def execute_pipelined(conn: Connection, statements: Sequence[tuple[str, Mapping[str, Any]]]) -> list[list[tuple[Any, ...]]]:
    """Run ``statements`` ((query, params), in order) as :func:`execute` does, but sent in one
    pipeline (psycopg's pipeline mode): one wait for all of them instead of a round trip
    each; the rows each returns, in order. The first failure fails the rest (the transaction
    is aborted), raised as :func:`execute` raises it."""
    if not statements:
        return []
    driver = conn.connection.driver_connection
    _count(len(statements))
    first_error: psycopg.Error | None = None
    try:
        with driver.pipeline():  # type: ignore[union-attr]
            # A long pipeline reads results while it sends, so a failure can surface here. Kept
            # inside the block: leaving it with an exception makes psycopg log the pipeline's
            # own "pipeline aborted" as a warning ("error ignored terminating …"), a second,
            # misleading line for one failure; leaving it normally makes psycopg raise that
            # instead, and the first error is the one worth reporting.
            try:
                cursors = [driver.execute(query, params, prepare=True)  # type: ignore[union-attr]
                           for query, params in statements]
            except psycopg.Error as exc:
                first_error = exc
        if first_error is None:
            return [_rows(cursor) for cursor in cursors]
    except psycopg.Error as exc:
        first_error = first_error or exc
    raise _as_sqlalchemy_error(conn, statements[0][0], first_error) from first_error


def _count(statements: int) -> None:
    global _sent
    with _lock:
        _sent += statements


def _rows(cursor: psycopg.Cursor[Any]) -> list[tuple[Any, ...]]:
    """The rows a statement returned (none for a statement without a result)."""
    return cursor.fetchall() if cursor.pgresult is not None and cursor.pgresult.status == _TUPLES else []


def _as_sqlalchemy_error(conn: Connection, query: str, exc: psycopg.Error) -> StatementError:
    """``exc`` as SQLAlchemy raises a driver error; a connection the error broke is invalidated,
    so the pool replaces it."""
    driver = conn.connection.driver_connection
    broken = driver is None or driver.closed
    if broken:
        conn.invalidate(exc)
    return DBAPIError.instance(query, None, exc, psycopg.Error, connection_invalidated=bool(broken))


_TUPLES = psycopg.pq.ExecStatus.TUPLES_OK

__all__ = ["execute", "execute_pipelined", "sent"]
