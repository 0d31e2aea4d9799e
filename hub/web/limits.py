"""Request limits applied before routing: an absurd URL is refused before anything parses it.

The pages and the API take an id in the path and a short search text in the query; a
path over 2 KB or a query string over 8 KB is no request of theirs, so it gets a 414
with a one-line reason (and the connection is closed) before routing, parameter parsing
or a template sees it. The callback receivers' paths are left to their own, stricter
checks, which also put the refusal on the audit.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

MAX_PATH_BYTES = 2048
MAX_QUERY_BYTES = 8192


@dataclass(frozen=True)
class RequestLimits:
    """ASGI middleware refusing over-long paths and query strings (see the module docstring)."""

    app: ASGIApp
    max_path_bytes: int = MAX_PATH_BYTES
    max_query_bytes: int = MAX_QUERY_BYTES
    exempt_paths: frozenset[str] = frozenset()  # the callback receivers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse the request with 414 when it is over a limit, else pass it on."""
        problem = self.problem(scope) if scope["type"] == "http" else None
        if problem is None:
            await self.app(scope, receive, send)
            return
        response = JSONResponse({"detail": problem}, status_code=414, headers={"Connection": "close"})
        await response(scope, receive, send)

    def problem(self, scope: Scope) -> str | None:
        """What is too long about this request, or None."""
        if scope.get("path") in self.exempt_paths:
            return None
        path = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogateescape")
        if len(path) > self.max_path_bytes:
            return f"path too long ({len(path)} bytes, at most {self.max_path_bytes})"
        query = scope.get("query_string", b"")
        if len(query) > self.max_query_bytes:
            return f"query string too long ({len(query)} bytes, at most {self.max_query_bytes})"
        return None
