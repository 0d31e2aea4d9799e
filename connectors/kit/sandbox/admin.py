"""The sandboxes' admin index: ``GET /__sandbox__/`` lists every admin endpoint.

The endpoints are each sandbox's own (state, message logs…) except the one every sandbox
has alike, ``/__sandbox__/faults`` (:func:`faults_route`); the index is built from the
app's route table, so it cannot fall out of date. Each entry shows the methods, the path
and the first line of the handler's docstring.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from connectors.kit.sandbox.faults import FaultPlan

ADMIN_PREFIX = "/__sandbox__/"


def faults_route(render: type[JSONResponse] = JSONResponse) -> Route:
    """``GET|POST /__sandbox__/faults`` over the app's fault plan (``app.state.faults``, where
    every sandbox keeps it, looked up per request: a test may swap it), answered with
    ``render`` (the sandbox's JSON response class)."""

    async def faults(request: Request) -> Response:
        """GET: armed faults; POST: arm or clear them (FaultPlan.configure JSON)."""
        plan: FaultPlan = request.app.state.faults
        if request.method == "POST":
            try:
                spec = json.loads((await request.body()).decode("utf-8") or "{}")
                if not isinstance(spec, dict):
                    raise ValueError("expected a JSON object")
                plan.configure(spec)
            except (ValueError, KeyError, TypeError) as exc:
                return render({"error": str(exc)}, status_code=400)
        return render(plan.describe())

    return Route(ADMIN_PREFIX + "faults", faults, methods=["GET", "POST"])


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
