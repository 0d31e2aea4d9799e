"""Running the web face: ``serve(settings, host, port)`` (the ``hub serve`` command calls it).

One uvicorn process. The callbacks' replay memory and rejection counts live in Postgres
(:mod:`hub.web.replay_guard`, :mod:`hub.web.rejections`), so several processes (workers,
machines) on one database refuse a replay between them and keep one audit, and a
restart forgets nothing. Their clocks must agree (NTP): the replay window is judged on
each process's clock.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

import uvicorn

from hub.database import open_database
from hub.errors import ConfigError
from hub.settings import Settings
from hub.web.app import create_web_app


def tls_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's TLS options from ``HUB_WEB__CERTFILE``/``HUB_WEB__KEYFILE`` (empty: plain HTTP).

    Both or neither; each must be a readable file, and the pair must load as a certificate
    and its key: otherwise a one-line ConfigError before anything listens.
    """
    cert, key = settings.web.certfile, settings.web.keyfile
    if cert is None and key is None:
        return {}
    if cert is None or key is None:
        raise ConfigError("HUB_WEB__CERTFILE and HUB_WEB__KEYFILE go together: set both or neither")
    for name, path in (("HUB_WEB__CERTFILE", cert), ("HUB_WEB__KEYFILE", key)):
        if not Path(path).is_file():
            raise ConfigError(f"{name}: {path} is not a file")
        if not os.access(path, os.R_OK):
            raise ConfigError(f"{name}: {path} is not readable by this user")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"HUB_WEB__CERTFILE/KEYFILE do not load as a certificate and its key: "
                          f"{getattr(exc, 'reason', None) or exc}") from None
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the profile pages, JSON API and WeCom callbacks until interrupted.

    HTTPS when a certificate is configured (:func:`tls_options`). X-Forwarded-For/-Proto
    are believed only from ``HUB_WEB__TRUSTED_PROXIES``. Refuses to start on a schema
    behind the code (``hub db upgrade`` first): pages would fail one query at a time instead.
    """
    tls = tls_options(settings)
    db = open_database(settings, check_schema=True)
    try:
        app = create_web_app(db, settings)
        uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower(),
                    proxy_headers=True, forwarded_allow_ips=settings.web.trusted_proxies, server_header=False,
                    **tls)
    finally:
        db.dispose()
