"""Running the web face: ``serve(settings, host, port)`` (the ``hub serve`` command calls it).

One uvicorn process. The callbacks' replay memory and rejection counts live in Postgres
(:mod:`hub.web.replay_guard`, :mod:`hub.web.rejections`), so several processes (workers,
machines) on one database refuse a replay between them and keep one audit, and a
restart forgets nothing. Their clocks must agree (NTP): the replay window is judged on
each process's clock.
"""

from __future__ import annotations

import uvicorn

from hub.database import open_database
from hub.settings import Settings
from hub.web.app import create_web_app


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the profile pages, JSON API and WeCom callbacks until interrupted.

    Refuses to start on a schema behind the code (``hub db upgrade`` first): pages
    would fail one query at a time instead.
    """
    db = open_database(settings, check_schema=True)
    try:
        app = create_web_app(db, settings)
        uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower(),
                    proxy_headers=True, server_header=False)
    finally:
        db.dispose()
