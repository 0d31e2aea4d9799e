"""The ``hub`` command line: what IT runs by hand next to the Dagster UI.

One module per group of commands: :mod:`.db`, :mod:`.sync` (sync, dispatch),
:mod:`.outbox` (dead letters), :mod:`.records` (quarantine, identity conflicts),
:mod:`.profile`, :mod:`.access` (logins, tokens, roles), :mod:`.targets` (sales targets), :mod:`.doctor`, :mod:`.config` (settings), :mod:`.rules` (automation rules), :mod:`.services` (demo,
sandbox, serve, ui). :mod:`.base` holds what they share, including the exit codes; every
mistake is one line on stderr (``--verbose`` shows the traceback).
"""

from __future__ import annotations

import os
import signal
from typing import Annotated

import typer

import hub.rules  # noqa: F401  (registers outbox effect handlers and sync hooks)
from hub.cli import (
    access,
    approvals,
    config,
    db,
    doctor,
    keys,
    leads,
    outbox,
    profile,
    records,
    rules,
    services,
    sync,
    targets,
)
from hub.cli.base import VERBOSE, app, failures_as_one_line, settings
from hub.cli.profile import print_profile
from hub.logging_setup import configure_logging
from hub.rules.automation import load_book


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at DEBUG level; show tracebacks.")] = False
         ) -> None:
    """Configure logging (secrets are redacted from every log line)."""
    # SIGTERM (systemd, `timeout`, a container stop) exits like Ctrl-C: finally blocks and
    # atexit run, so sandboxes, Dagster and the embedded Postgres are stopped too.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    VERBOSE["on"] = verbose
    with failures_as_one_line():
        config = settings()
        # a tenant's rules file that does not validate is an error at start, not a silent fallback
        load_book(config)
        # the commands report through their own output (a failure is one line), so log
        # lines only when asked for: --verbose, or HUB_LOG_LEVEL set explicitly
        explicit = config.log_level if "HUB_LOG_LEVEL" in os.environ else "CRITICAL"
        configure_logging(config, "DEBUG" if verbose else explicit)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


__all__ = ["access", "app", "approvals", "config", "db", "doctor", "keys", "leads", "outbox", "print_profile", "profile",
           "records", "rules", "services", "sync", "targets"]
