"""Request limits applied before routing: an absurd request is refused before anything parses it.

The pages and the API take an id in the path and a short search text in the query; a
path over 2 KB or a query string over 8 KB is no request of theirs, so it gets a 414
with a one-line reason (and the connection is closed) before routing, parameter parsing
or a template sees it. The callback receivers' paths are left to their own, stricter
checks, which also put the refusal on the audit.

A request body larger than ``max_body_bytes`` (``HUB_API__MAX_BODY_BYTES``) is a 413,
also before parsing: a declared ``Content-Length`` over the limit is refused before a
byte of the body is read; a body without one (chunked) is counted as it streams in, and
the read that crosses the limit fails with 413 (FastAPI passes an ``HTTPException``
raised while reading the body through to the app's error handler), so at most the limit
plus one chunk is ever held.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_PATH_BYTES = 2048
MAX_QUERY_BYTES = 8192


def _too_large(size: int, limit: int) -> str:
    return f"request body too large ({size} bytes or more, at most {limit})"


@dataclass(frozen=True)
class RequestLimits:
    """ASGI middleware refusing over-long paths, query strings and bodies (see the module docstring)."""

    app: ASGIApp
    max_path_bytes: int = MAX_PATH_BYTES
    max_query_bytes: int = MAX_QUERY_BYTES
    exempt_paths: frozenset[str] = frozenset()  # the callback receivers
    max_body_bytes: int | None = None  # None: bodies are not limited here

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse the request with 414/413 when it is over a limit, else pass it on."""
        if scope["type"] != "http" or scope.get("path") in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        problem = self.problem(scope)
        status = 414
        if problem is None and self.max_body_bytes is not None:
            problem, status = self.declared_body_problem(scope), 413
        if problem is not None:
            response = JSONResponse({"detail": problem}, status_code=status, headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        if self.max_body_bytes is None:
            await self.app(scope, receive, send)
            return
        await self.app(scope, self._counting(receive, self.max_body_bytes), send)

    def problem(self, scope: Scope) -> str | None:
        """What is too long about this request's path or query, or None."""
        if scope.get("path") in self.exempt_paths:
            return None
        path = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogateescape")
        if len(path) > self.max_path_bytes:
            return f"path too long ({len(path)} bytes, at most {self.max_path_bytes})"
        query = scope.get("query_string", b"")
        if len(query) > self.max_query_bytes:
            return f"query string too long ({len(query)} bytes, at most {self.max_query_bytes})"
        return None

    def declared_body_problem(self, scope: Scope) -> str | None:
        """Why the declared ``Content-Length`` is refused (over the limit), or None. (A malformed
        one is the HTTP server's to refuse; the streamed count still holds the limit.)"""
        limit = self.max_body_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                text = value.decode("latin-1").strip()
                if limit is not None and text.isdigit() and (len(text) > 18 or int(text) > limit):
                    return _too_large(int(text[:19]), limit)
        return None

    @staticmethod
    def _counting(receive: Receive, limit: int) -> Receive:
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, _too_large(seen, limit), headers={"Connection": "close"})
            return message

        return counted
