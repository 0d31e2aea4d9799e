"""Which sync runs are alive: a run holds a Postgres session advisory lock while it works.

A sync run is a ``sync_run`` row, ``running`` until the run records how it ended. A run
whose process was SIGKILLed, or lost its host, never records that, and its row would say
``running`` for ever: on the operations page, in Dagster's asset checks and to whoever
asks "is a sync of this stream still going?". So a run holds a session advisory lock keyed
on its id (:func:`holding`) on a connection it keeps for the whole run; Postgres lets go of
it when that session ends, however the process ended. Before a run starts,
:func:`close_abandoned` marks every ``running`` row whose lock nobody holds as
``abandoned``, with the reason, and audits it.

A run is briefly ``running`` without its lock, between inserting its row and taking the
lock on its reading connection. Another run starting at that very moment marks it
abandoned; the run still records how it ended (``_finish_run`` sets the status whatever it
was), so the row comes right when it finishes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from hub.audit import write_audit

# one lock per run, in this schema (several hubs may share a database)
_KEY = "hashtextextended(current_schema() || '|sync-run|' || {id}, 0)"
_HOLD = sa.text(f"SELECT pg_advisory_lock({_KEY.format(id=':id')})")
_LET_GO = sa.text(f"SELECT pg_advisory_unlock({_KEY.format(id=':id')})")
# ``running`` rows whose lock this session can take: nobody holds it, the run is gone. The
# CTEs are materialised so that a lock is tried only for running rows, and every lock taken
# is given back below.
_ABANDON = sa.text(f"""
    WITH running AS MATERIALIZED (SELECT id FROM sync_run WHERE status = 'running'),
         gone AS MATERIALIZED (SELECT id FROM running WHERE pg_try_advisory_lock({_KEY.format(id='running.id')}))
    UPDATE sync_run r SET status = 'abandoned', finished_at = now(), error = :why
    FROM gone WHERE r.id = gone.id
    RETURNING r.id, r.connector, r.stream
""")
_LET_GO_ALL = sa.text(f"SELECT pg_advisory_unlock({_KEY.format(id='id')}) FROM unnest(CAST(:ids AS bigint[])) id")
WHY_ABANDONED = ("the process running it ended without recording how the run ended "
                 "(killed, or its connection to the database was lost)")


@contextmanager
def holding(conn: Connection, run_id: int) -> Iterator[None]:
    """Hold run ``run_id``'s lock on ``conn`` (a connection kept for the whole run, in autocommit:
    a session lock outlives transactions) while the block runs."""
    with conn.begin():  # its own (autocommit) statement: the run's page transactions begin later on conn
        conn.execute(_HOLD, {"id": run_id})
    try:
        yield
    finally:
        with suppress(DBAPIError), conn.begin():  # when the connection is gone, the lock went with it
            conn.execute(_LET_GO, {"id": run_id})


def close_abandoned(conn: Connection, *, actor: str) -> list[int]:
    """Mark ``running`` runs that no live session holds as ``abandoned`` and audit each; their ids."""
    gone = conn.execute(_ABANDON, {"why": WHY_ABANDONED}).all()
    if not gone:
        return []
    conn.execute(_LET_GO_ALL, {"ids": [run_id for run_id, _, _ in gone]})
    for run_id, connector, stream in gone:
        write_audit(conn, actor=actor, system=connector, operation=f"run:{stream}", outcome="abandoned",
                    error=WHY_ABANDONED, detail={"run_id": run_id})
    return [run_id for run_id, _, _ in gone]


__all__ = ["WHY_ABANDONED", "close_abandoned", "holding"]
