"""What every `hub` command shares: the app, consoles, one-line errors, the runtime.

Every mistake is one line on stderr, no traceback (``--verbose`` shows it), with an
exit code a script can act on:

==  =================================================================
0   done
1   an operational failure: a connector refused, nothing found, the database is
    unreachable, something unexpected happened
2   a usage or configuration mistake: an unknown option, system, stream or outbox
    kind, a missing or malformed setting
3   the database schema is behind the code: run ``hub db upgrade``
==  =================================================================
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
import typer
from rich.console import Console
from typer._click import exceptions as click  # typer vendors its own click since 0.24
from typer.core import TyperGroup

from hub.errors import ConfigError, HubError, SchemaNotCurrentError

console = Console()
err_console = Console(stderr=True)

OK, FAILED, USAGE, SCHEMA_BEHIND = 0, 1, 2, 3


class OneLineErrors(TyperGroup):
    """Usage mistakes (unknown option, missing argument) as one line and exit 2."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,  # type: ignore[override]
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.NoArgsIsHelpError as exc:
            typer.echo(exc.ctx.get_help() if exc.ctx else str(exc))
            sys.exit(OK)
        except click.UsageError as exc:
            where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
            typer.echo(f"error: {exc.format_message()}{where}", err=True)
            sys.exit(USAGE)
        except typer.Exit as exc:
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("aborted", err=True)
            sys.exit(FAILED)
        if not standalone_mode:
            return result
        # click hands back an Exit's code instead of raising it when not standalone
        sys.exit(result if isinstance(result, int) else OK)


def new_app(help_text: str) -> typer.Typer:
    """A command group that reports usage mistakes in one line."""
    return typer.Typer(cls=OneLineErrors, no_args_is_help=True, add_completion=False, help=help_text,
                       pretty_exceptions_enable=False, rich_markup_mode=None)


app = new_app("CRM ⇄ ERP ⇄ chat integration hub.")
VERBOSE = {"on": False}


def exit_code(exc: HubError) -> int:
    """The exit code of a hub error (module docstring)."""
    if isinstance(exc, SchemaNotCurrentError):
        return SCHEMA_BEHIND
    if isinstance(exc, ConfigError):
        return USAGE
    return FAILED


def fail(message: str, code: int) -> typer.Exit:
    """Print ``error: message`` to stderr; the caller raises what this returns."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def failures_as_one_line() -> Iterator[None]:
    """Turn every failure into one line and an exit code (module docstring)."""
    try:
        yield
    except (typer.Exit, click.ClickException):
        raise  # exit codes and usage errors (one line through OneLineErrors)
    except HubError as exc:
        raise fail(str(exc), exit_code(exc)) from None
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        if VERBOSE["on"]:
            raise
        detail = str(getattr(exc, "orig", exc)).strip().splitlines()
        raise fail(f"database unreachable: {detail[0] if detail else type(exc).__name__}", FAILED) from None
    except KeyboardInterrupt:
        raise fail("interrupted", FAILED) from None
    except Exception as exc:
        if VERBOSE["on"]:
            raise
        text = str(exc).strip().splitlines()
        raise fail(f"unexpected {type(exc).__name__}: {text[0] if text else 'no message'} "
                   "(run with --verbose for the traceback)", FAILED) from None


def settings() -> Any:
    """The hub's settings (a ConfigError becomes one line through the caller's guard)."""
    from hub.settings import Settings

    return Settings()


@contextmanager
def runtime(check_schema: bool = True) -> Iterator[Any]:
    """A runtime over the configured database (schema checked by default)."""
    from hub.runtime import HubRuntime

    with HubRuntime.open(settings(), check_schema=check_schema, actor="cli") as hub:
        yield hub


def print_json(value: Any) -> None:
    """Machine-readable output: JSON on stdout, one document."""
    console.print_json(json.dumps(value, ensure_ascii=False, default=str))


def known_system(name: str) -> str:
    """``name`` if a connector of that name is registered (else a ConfigError naming the known ones)."""
    from hub.registry import connector

    return connector(name).system


def known_stream(system: str, name: str) -> str:
    """``name`` if ``system`` has that stream (else a ConfigError naming its streams)."""
    from hub.registry import connector

    return connector(system).stream(name).name


def known_kind(kind: str) -> str:
    """``kind`` if some connector writes that outbox kind (else a ConfigError naming them)."""
    from hub.registry import writer_owner

    writer_owner(kind)
    return kind
