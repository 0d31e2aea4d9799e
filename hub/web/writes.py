"""How every write through the web app runs: once per ``Idempotency-Key``, in one
transaction, audited with its principal.

An endpoint builds a ``write(conn) -> Answer`` closure over its validated input and
hands it to :func:`write_once`; the closure calls :func:`audit_write` for each record
it creates or changes. Either everything (the rows, the audit rows, the key's stored
answer) commits, or nothing does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Connection
from starlette.concurrency import run_in_threadpool

from hub.access import Principal
from hub.audit import write_audit
from hub.web.idempotency import HEADER, REPLAYED_HEADER, Answer, check_key, run_once


async def write_once(request: Request, principal: Principal, write: Callable[[Connection], Answer]) -> JSONResponse:
    """Run ``write`` in one transaction, at most once per the request's Idempotency-Key."""
    body = await request.body()
    key = check_key(request.headers.get(HEADER))

    def run() -> Answer:
        with request.app.state.db.engine.begin() as conn:
            return run_once(conn, principal, key, method=request.method, path=request.url.path,
                            body=body, write=write)

    answer = await run_in_threadpool(run)
    headers = {REPLAYED_HEADER: "true"} if answer.replayed else {}
    return JSONResponse(jsonable_encoder(answer.body), status_code=answer.status_code, headers=headers)


def record_key(table: str, record_id: int | str) -> str:
    """How the audit log names one canonical record: ``customer:42``."""
    return f"{table}:{record_id}"


def audit_write(conn: Connection, principal: Principal, *, operation: str, table: str, record_id: int | str,
                detail: dict[str, Any] | None = None) -> None:
    """Record that ``principal`` wrote ``table`` row ``record_id`` (same transaction as the write)."""
    write_audit(conn, actor=principal.actor, system="hub", operation=operation, outcome="ok",
                key=record_key(table, record_id), detail={"principal": principal.ref, **(detail or {})})
