"""The sandboxes' admin index: ``GET /__sandbox__/`` lists every admin endpoint.

The endpoints themselves are each sandbox's own (state, faults, message logs…); the
index is built from the app's route table, so it cannot fall out of date. Each entry
shows the methods, the path and the first line of the handler's docstring.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

ADMIN_PREFIX = "/__sandbox__/"


async def admin_faults(request: Request) -> Response:
    """GET: armed faults; POST: arm or clear them (FaultPlan.configure JSON)."""
    faults = request.app.state.faults
    if request.method == "POST":
        try:
            spec = await request.json()
            if not isinstance(spec, dict):
                raise ValueError("expected a JSON object")
            faults.configure(spec)
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(faults.describe())


async def admin_pushes(request: Request) -> Response:
    """GET: where approval events are pushed and their fates; POST: set {url, drop, drop_rate,
    duplicate, duplicate_rate, delay_s, seed} (PushPlan.configure JSON)."""
    pushes = request.app.state.approval_pushes
    if request.method == "POST":
        try:
            spec = await request.json()
            if not isinstance(spec, dict):
                raise ValueError("expected a JSON object")
            return JSONResponse(pushes.configure(spec))
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(pushes.describe())


def with_admin_index(title: str, routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """``routes`` plus ``GET /__sandbox__/`` (and without the slash) describing the admin ones."""
    admin = [r for r in routes if isinstance(r, Route) and r.path.startswith(ADMIN_PREFIX)]

    async def index(_request: Request) -> Response:
        return JSONResponse({
            "sandbox": title,
            "note": "admin endpoints of this emulator; they are not part of the vendor's API",
            "endpoints": [
                {"methods": sorted((r.methods or set()) - {"HEAD"}), "path": r.path,
                 "does": ((r.endpoint.__doc__ or "").strip().splitlines() or [""])[0]}
                for r in admin
            ],
        })

    return [Route(ADMIN_PREFIX, index, methods=["GET"]), Route(ADMIN_PREFIX.rstrip("/"), index, methods=["GET"]),
            *routes]
