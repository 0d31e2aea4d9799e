"""`hub user`, `hub token`, `hub role`: who may sign in to the pages and call the API.

- ``hub user add|role|password|disable|list`` — the hub's own logins (username and an
  argon2id password hash) for browsers outside WeCom and DingTalk;
- ``hub token create|list|revoke`` — API tokens for machines (the CRM, scripts): shown
  once, stored hashed, always with an expiry;
- ``hub role set`` — the role of a directory user (``internal_user.role``), which is what
  a person signed in through WeCom or DingTalk gets.

Every change is audited with the CLI's principal (:func:`hub.access.principal.cli_principal`).
A password is read from stdin (``--password-stdin``) or prompted for without echo; it is
never an argument, so it never lands in shell history or ``ps``.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from hub.cli.base import USAGE, app, console, fail, failures_as_one_line, new_app, print_json, runtime
from hub.cli.tables import Column, print_table

user_app = new_app("Logins of the hub's pages (username and password).")
token_app = new_app("API tokens (shown once, stored hashed, with an expiry).")
role_app = new_app("Roles of directory users (people who sign in through WeCom or DingTalk).")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(role_app, name="role")

ROLE_HELP = "sales, manager, finance, it, admin (tokens also: crm)"
DEFAULT_TOKEN_DAYS = 90


def _role(value: str) -> object:
    from hub.access.roles import parse_role

    try:
        return parse_role(value)
    except ValueError as exc:
        raise fail(str(exc), USAGE) from None


def _password(from_stdin: bool) -> str:
    """The new password: one line of stdin, or typed twice at a prompt that does not echo."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise fail("no password given", USAGE)
    return password


@user_app.command("add")
def user_add(
    username: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option("--role", help=ROLE_HELP)],
    user: Annotated[str | None, typer.Option("--user", help="Internal user it acts as (id, userid, "
                                                             "employee number or name); required for sales/manager")
                    ] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
) -> None:
    """Create a login."""
    from hub.access.accounts import add_login
    from hub.access.principal import cli_principal

    parsed = _role(role)
    password = _password(password_stdin)
    with failures_as_one_line(), runtime() as hub, hub.db.begin() as conn:
        login_id = add_login(conn, cli_principal(), username, password, parsed, user)  # type: ignore[arg-type]
    console.print(f"login {username!r} created (id {login_id}, role {parsed})", highlight=False)


@user_app.command("role")
def user_role(
    username: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Argument(help=ROLE_HELP)],
    user: Annotated[str | None, typer.Option("--user", help="Internal user it acts as")] = None,
) -> None:
    """Change a login's role (its sessions end)."""
    from hub.access.accounts import set_login_role
    from hub.access.principal import cli_principal

    parsed = _role(role)
    with failures_as_one_line(), runtime() as hub, hub.db.begin() as conn:
        set_login_role(conn, cli_principal(), username, parsed, user)  # type: ignore[arg-type]
    console.print(f"login {username!r} is now {parsed}", highlight=False)


@user_app.command("password")
def user_password(
    username: Annotated[str, typer.Argument(help="Login name.")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
) -> None:
    """Set a new password (clears a lockout; the login's sessions end)."""
    from hub.access.accounts import set_password
    from hub.access.principal import cli_principal

    password = _password(password_stdin)
    with failures_as_one_line(), runtime() as hub, hub.db.begin() as conn:
        set_password(conn, cli_principal(), username, password)
    console.print(f"password of {username!r} changed", highlight=False)


@user_app.command("disable")
def user_disable(username: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Disable a login and end its sessions."""
    from hub.access.accounts import disable_login
    from hub.access.principal import cli_principal

    with failures_as_one_line(), runtime() as hub, hub.db.begin() as conn:
        ended = disable_login(conn, cli_principal(), username)
    console.print(f"login {username!r} disabled; {ended} session(s) ended", highlight=False)


LOGIN_COLUMNS = (Column("username"), Column("role"), Column("user"), Column("active"), Column("failed"),
                 Column("locked until"), Column("last sign-in"))


@user_app.command("list")
def user_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every login (never a password or its hash)."""
    from hub.access.accounts import list_logins

    with failures_as_one_line(), runtime() as hub, hub.db.begin() as conn:
        rows = list_logins(conn)
    if as_json:
        print_json(rows)
        return
    print_table(console, LOGIN_COLUMNS, [[r["username"], r["role"], r["user_name"] or "", "yes" if r["active"] else "no",
                                          str(r["failed_attempts"]), str(r["locked_until"] or ""),
                                          str(r["last_login_at"] or "")] for r in rows])


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option("--role", help=ROLE_HELP)],
    user: Annotated[str | None, typer.Option("--user", help="Internal user it acts as (required for sales/manager)")
                    ] = None,
    expires_days: Annotated[float, typer.Option("--expires-days", help="Days until it expires.")] = DEFAULT_TOKEN_DAYS,
    label: Annotated[str, typer.Option("--label", help="What it is for (shown in `hub token list`).")] = "api",
) -> None:
    """Create an API token and print it once (only its hash is kept)."""
    from hub.access.accounts import create_token
    from hub.access.principal import cli_principal

    parsed = _role(role)
    with failures_as_one_line(), runtime() as hub, hub.db.begin() as conn:
        token_id, token = create_token(conn, cli_principal(), parsed, days=expires_days,  # type: ignore[arg-type]
                                       label=label, user_ref=user)
    # the token alone on stdout (scripts capture it); the note on stderr
    typer.echo(token)
    typer.echo(f"token {token_id} ({parsed}, expires in {expires_days:g} days): shown once, store it now",
               err=True)


TOKEN_COLUMNS = (Column("id"), Column("prefix"), Column("label"), Column("role"), Column("user"), Column("state"),
                 Column("expires"), Column("last used"))


@token_app.command("list")
def token_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every API token (never the token itself)."""
    from hub.access.accounts import list_tokens

    with failures_as_one_line(), runtime() as hub, hub.db.begin() as conn:
        rows = list_tokens(conn)
    if as_json:
        print_json(rows)
        return
    print_table(console, TOKEN_COLUMNS, [[str(r["id"]), r["prefix"] + "…", r["label"], r["role"], r["user_name"] or "",
                                          r["state"], str(r["expires_at"]), str(r["last_used_at"] or "")]
                                         for r in rows])


@token_app.command("revoke")
def token_revoke(token_id: Annotated[int, typer.Argument(help="Token id (hub token list).")]) -> None:
    """Revoke a token: it stops working at once."""
    from hub.access.accounts import revoke_token
    from hub.access.principal import cli_principal

    with failures_as_one_line(), runtime() as hub, hub.db.begin() as conn:
        revoke_token(conn, cli_principal(), token_id)
    console.print(f"token {token_id} revoked")


@role_app.command("set")
def role_set(
    user: Annotated[str, typer.Argument(help="Internal user: id, WeCom/DingTalk userid, employee number or name.")],
    role: Annotated[str, typer.Argument(help=ROLE_HELP + "; 'none' clears it")],
) -> None:
    """Set the role a directory user signs in with (WeCom/DingTalk)."""
    from hub.access.accounts import set_directory_role
    from hub.access.principal import cli_principal

    parsed = None if role.strip().lower() == "none" else _role(role)
    with failures_as_one_line(), runtime() as hub, hub.db.begin() as conn:
        row = set_directory_role(conn, cli_principal(), user, parsed)  # type: ignore[arg-type]
    console.print(f"{row.name} (id {row.id}) now signs in as {parsed or 'the default (sales/manager)'}",
                  highlight=False)
