"""A Postgres server of the test's own, which the test may restart without hurting any other.

It is the hub's embedded server (``hub.database.start_embedded``: pgserver's binaries, a data
directory under the test's home), so it needs nothing the machine lacks. ``restart`` is
``pg_ctl restart -m fast``: every session is terminated, transactions in progress are rolled
back, and the server comes back on the same socket with the same data.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hub.database import Database, create_db_engine, resolve_url
from hub.settings import Settings
from hub.vault import bind, load_vault


@dataclass
class PrivatePostgres:
    """The server (its data directory), the hub's settings for it and a migrated database."""

    pgdata: Path
    settings: Settings
    db: Database

    def _pg_ctl(self, *args: str) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pgserver asks platformdirs for a runtime dir at import
            from pgserver import _commands
        # as root, pgserver runs the server as its own system user; pg_ctl must be that user too
        user = {"user": "pgserver"} if os.geteuid() == 0 else {}
        return str(_commands.pg_ctl(list(args), pgdata=self.pgdata, timeout=120, **user))  # type: ignore[attr-defined]

    def postmaster_pid(self) -> int:
        """The pid of the running postmaster (it changes with every restart)."""
        return int((self.pgdata / "postmaster.pid").read_text().splitlines()[0])

    def restart(self) -> None:
        """Fast restart: sessions terminated, open transactions rolled back, same data."""
        self._pg_ctl("restart", "-m", "fast", "-w")

    def stop(self) -> None:
        """Stop the server for good."""
        self._pg_ctl("stop", "-m", "immediate", "-w")


@contextmanager
def private_postgres(tmp: Path) -> Iterator[PrivatePostgres]:
    """Start a server in ``tmp/server/pg`` with the hub's schema migrated, the hub's home in
    ``tmp/home``; stop the server afterwards. (Apart because the hub makes its home private,
    and as root the server runs as pgserver's own user, which must still reach its data.)"""
    url = resolve_url(Settings(home=tmp / "server"))
    home = tmp / "home"
    settings = Settings(database_url=url, home=home, sandbox=True)  # type: ignore[arg-type]
    db = Database(create_db_engine(url, settings.database_schema), settings.database_schema, url)
    bind(db.engine, lambda: load_vault(settings))
    db.upgrade()
    server = PrivatePostgres(tmp / "server" / "pg", settings, db)
    try:
        yield server
    finally:
        db.dispose()
        server.stop()
