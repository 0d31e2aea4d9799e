"""Logins, sessions and API tokens in the database: what the sign-in pages and the CLI do.

Every function takes a connection and runs inside the caller's transaction, so a CLI
command or a sign-in changes its rows and writes its audit row together.

- **Logins** (``app_login``): a username with an argon2id password hash
  (:mod:`hub.access.passwords`), a role, optionally the internal user it acts as;
  :func:`authenticate` applies the lockout and spends the same time on an unknown user.
- **Sessions** (``web_session``): a random ``hub_ses_…`` token in an HttpOnly cookie;
  only its SHA-256 is stored (:mod:`hub.access.secrets`). :func:`start_session` after
  a password or a chat-platform sign-in, :func:`end_session` on sign-out.
- **API tokens** (``api_token``): ``hub_tok_…``, shown once, stored hashed, with an
  expiry that is always set; revocable.
- **Directory roles**: :func:`set_directory_role` sets ``internal_user.role`` (what a
  person signed in through WeCom or DingTalk is); :func:`directory_principal` reads it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.access.passwords import (
    burn_time,
    hash_password,
    lockout_after_failure,
    needs_rehash,
    verify_password,
)
from hub.access.principal import Principal
from hub.access.roles import Role
from hub.access.secrets import API_TOKEN_PREFIX, SESSION_PREFIX, new_token, token_hash
from hub.audit import write_audit
from hub.errors import ConfigError, NotFoundError

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,99}$")
MAX_TOKEN_DAYS = 3660


class SignInRefused(Exception):
    """A sign-in that did not succeed; ``reason`` is for the audit, never for the person."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LoginPolicy:
    """How many wrong passwords lock a login, and for how long."""

    max_failures: int = 5
    lock_minutes: float = 15.0


def audit_access(conn: Connection, actor: Principal | str, operation: str, key: str, outcome: str = "ok",
                 **detail: Any) -> None:
    """One audit row for an access event (sign-in, token, role change): system ``access``."""
    who = actor.actor if isinstance(actor, Principal) else actor
    ref = actor.ref if isinstance(actor, Principal) else None
    write_audit(conn, actor=who, system="access", operation=operation, outcome=outcome, key=key,
                detail={**({"principal": ref} if ref else {}), **detail})


# ---------------------------------------------------------------------- directory users


def find_internal_user(conn: Connection, ref: str) -> Any:
    """The internal user ``ref`` names: its id, WeCom or DingTalk userid, employee number or
    (unique) name; NotFoundError when none, ConfigError when a name is ambiguous."""
    text = ref.strip()
    if text.isdigit() and len(text) < 19:
        row = conn.execute(sa.text("SELECT id, name, role FROM internal_user WHERE id = :id"), {"id": int(text)}).first()
        if row is not None:
            return row
    found = conn.execute(sa.text(
        "SELECT id, name, role FROM internal_user WHERE wecom_userid = :r OR dingtalk_userid = :r "
        "OR employee_number = :r OR name = :r ORDER BY id LIMIT 3"), {"r": text}).all()
    if not found:
        raise NotFoundError(f"no internal user {ref!r} (give an id, WeCom/DingTalk userid, employee number or name)")
    if len(found) > 1:
        raise ConfigError(f"{ref!r} names {len(found)} internal users; give one's id")
    return found[0]


def set_directory_role(conn: Connection, actor: Principal, user_ref: str, role: Role | None) -> Any:
    """Set (or clear, with None) the role of an internal user; audited. Returns the user row."""
    user = find_internal_user(conn, user_ref)
    conn.execute(sa.text("UPDATE internal_user SET role = :r WHERE id = :id"),
                 {"r": role.value if role else None, "id": user.id})
    audit_access(conn, actor, "role.set", f"internal_user:{user.id}", role=role.value if role else None,
                 before=user.role)
    return user


def directory_principal(conn: Connection, user_id: int, via: str) -> Principal | None:
    """The principal of an internal user signed in through a chat platform: their directory
    role (``internal_user.role``; without one, a manager when someone reports to them,
    else a salesperson), or None when the user is inactive."""
    row = conn.execute(sa.text(
        "SELECT u.id, u.name, u.active, COALESCE(u.role, CASE WHEN EXISTS (SELECT 1 FROM internal_user r "
        "WHERE r.manager_id = u.id AND r.id <> u.id) THEN 'manager' ELSE 'sales' END) AS role "
        "FROM internal_user u WHERE u.id = :id"), {"id": user_id}).first()
    if row is None or row.active is False:
        return None
    role = Role(row.role)
    return Principal(role=role, user_id=row.id, name=row.name, via=via, ref=f"user:{row.id}")


_CHAT_ID_COLUMNS = {("wecom", "userid"): "wecom_userid", ("dingtalk", "userid"): "dingtalk_userid",
                    ("dingtalk", "unionid"): "dingtalk_unionid"}


def user_by_chat_id(conn: Connection, system: str, userid: str, kind: str = "userid") -> int | None:
    """The internal user whose ``<system>_<kind>`` is ``userid`` (``kind``: userid, or unionid
    for DingTalk's browser login; WeCom userids are case-insensitive); None unless exactly one."""
    column = _CHAT_ID_COLUMNS[(system, kind)]
    condition = f"lower({column}) = lower(:u)" if system == "wecom" else f"{column} = :u"
    found = conn.execute(sa.text(f"SELECT id FROM internal_user WHERE {condition} ORDER BY id LIMIT 2"),
                         {"u": userid}).scalars().all()
    return int(found[0]) if len(found) == 1 else None


# ---------------------------------------------------------------------- logins


def _login(conn: Connection, username: str) -> Any:
    row = conn.execute(sa.text("SELECT * FROM app_login WHERE lower(username) = lower(:u)"), {"u": username}).first()
    if row is None:
        raise NotFoundError(f"no login {username!r}")
    return row


def add_login(conn: Connection, actor: Principal, username: str, password: str, role: Role,
              user_ref: str | None = None) -> int:
    """Create a login; ConfigError for a malformed or taken username, a weak password or a
    sales/manager login without its internal user (their visibility follows ownership)."""
    if not USERNAME.match(username):
        raise ConfigError(f"username {username!r}: 2-100 letters, digits, '.', '_', '@' or '-'")
    if role in (Role.SALES, Role.MANAGER) and user_ref is None:
        raise ConfigError(f"a {role.value} login acts as an internal user: give --user")
    if role is Role.CRM:
        raise ConfigError("the crm role is for API tokens only (hub token create --role crm)")
    user_id = int(find_internal_user(conn, user_ref).id) if user_ref is not None else None
    try:
        digest = hash_password(password)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    taken = conn.execute(sa.text("SELECT 1 FROM app_login WHERE lower(username) = lower(:u)"), {"u": username}).first()
    if taken is not None:
        raise ConfigError(f"login {username!r} exists (hub user password / hub user role change it)")
    login_id = int(conn.execute(sa.text(
        "INSERT INTO app_login (username, password_hash, user_id, role) VALUES (:u, :h, :uid, :r) RETURNING id"),
        {"u": username, "h": digest, "uid": user_id, "r": role.value}).scalar_one())
    audit_access(conn, actor, "login.add", f"app_login:{login_id}", username=username, role=role.value,
                 user_id=user_id)
    return login_id


def set_login_role(conn: Connection, actor: Principal, username: str, role: Role, user_ref: str | None = None) -> None:
    """Change a login's role (and its internal user when given); its sessions end."""
    login = _login(conn, username)
    user_id = int(find_internal_user(conn, user_ref).id) if user_ref is not None else login.user_id
    if role in (Role.SALES, Role.MANAGER) and user_id is None:
        raise ConfigError(f"a {role.value} login acts as an internal user: give --user")
    if role is Role.CRM:
        raise ConfigError("the crm role is for API tokens only")
    conn.execute(sa.text("UPDATE app_login SET role = :r, user_id = :uid WHERE id = :id"),
                 {"r": role.value, "uid": user_id, "id": login.id})
    ended = _end_login_sessions(conn, login.id)
    audit_access(conn, actor, "login.role", f"app_login:{login.id}", role=role.value, before=login.role,
                 sessions_ended=ended)


def set_password(conn: Connection, actor: Principal, username: str, password: str) -> None:
    """Replace a login's password, clear its lockout and end its sessions."""
    login = _login(conn, username)
    try:
        digest = hash_password(password)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    conn.execute(sa.text("UPDATE app_login SET password_hash = :h, failed_attempts = 0, locked_until = NULL "
                         "WHERE id = :id"), {"h": digest, "id": login.id})
    ended = _end_login_sessions(conn, login.id)
    audit_access(conn, actor, "login.password", f"app_login:{login.id}", sessions_ended=ended)


def disable_login(conn: Connection, actor: Principal, username: str) -> int:
    """Disable a login and end its sessions; returns how many sessions ended."""
    login = _login(conn, username)
    conn.execute(sa.text("UPDATE app_login SET active = false WHERE id = :id"), {"id": login.id})
    ended = _end_login_sessions(conn, login.id)
    audit_access(conn, actor, "login.disable", f"app_login:{login.id}", sessions_ended=ended)
    return ended


def list_logins(conn: Connection) -> list[dict[str, Any]]:
    """Every login without its hash: username, role, user, active, lockout, last sign-in."""
    return [dict(r._mapping) for r in conn.execute(sa.text(
        "SELECT l.id, l.username, l.role, u.name AS user_name, l.active, l.failed_attempts, l.locked_until, "
        "l.created_at, l.last_login_at FROM app_login l LEFT JOIN internal_user u ON u.id = l.user_id "
        "ORDER BY l.username"))]


def _end_login_sessions(conn: Connection, login_id: int) -> int:
    return len(conn.execute(sa.text("UPDATE web_session SET revoked_at = now() WHERE login_id = :l "
                                    "AND revoked_at IS NULL RETURNING id"), {"l": login_id}).all())


def authenticate(conn: Connection, username: str, password: str, policy: LoginPolicy,
                 now: dt.datetime | None = None) -> Any:
    """The ``app_login`` row when ``password`` is right and the login active and unlocked;
    else SignInRefused (``unknown``, ``disabled``, ``locked``, ``wrong password``).

    Always spends one argon2 verification, whatever the outcome. A wrong password counts
    towards the lockout (:func:`~hub.access.passwords.lockout_after_failure`); a right one
    resets the count and upgrades an outdated hash.
    """
    now = now or dt.datetime.now(dt.UTC)
    row = conn.execute(sa.text("SELECT * FROM app_login WHERE lower(username) = lower(:u) FOR UPDATE"),
                       {"u": username[:100]}).first()
    if row is None or not USERNAME.match(username):
        burn_time()
        raise SignInRefused("unknown")
    if not row.active:
        burn_time()
        raise SignInRefused("disabled")
    if row.locked_until is not None and row.locked_until > now:
        burn_time()
        raise SignInRefused("locked")
    if not verify_password(row.password_hash, password):
        state = lockout_after_failure(row.failed_attempts, now, max_failures=policy.max_failures,
                                      lock_minutes=policy.lock_minutes)
        conn.execute(sa.text("UPDATE app_login SET failed_attempts = :n, locked_until = COALESCE(:t, locked_until) "
                             "WHERE id = :id"), {"n": state.failed_attempts, "t": state.locked_until, "id": row.id})
        raise SignInRefused("locked now" if state.locked_until else "wrong password")
    updates: dict[str, Any] = {"id": row.id}
    rehash = ""
    if needs_rehash(row.password_hash):
        rehash = ", password_hash = :h"
        updates["h"] = hash_password(password)
    conn.execute(sa.text(f"UPDATE app_login SET failed_attempts = 0, locked_until = NULL, last_login_at = now()"
                         f"{rehash} WHERE id = :id"), updates)
    return row


def login_principal(conn: Connection, login: Any) -> Principal:
    """The principal of a password login (its own role, acting as its internal user if any)."""
    name = login.username
    return Principal(role=Role(login.role), user_id=login.user_id, name=name, via="password",
                     ref=f"login:{login.id}")


# ---------------------------------------------------------------------- sessions


def start_session(conn: Connection, principal: Principal, *, hours: float, login_id: int | None = None) -> str:
    """A new session for ``principal``; returns the cookie value (stored only as its hash)."""
    token = new_token(SESSION_PREFIX)
    session_id = conn.execute(sa.text(
        "INSERT INTO web_session (token_hash, role, user_id, login_id, via, expires_at) "
        "VALUES (:h, :r, :u, :l, :v, now() + make_interval(secs => :s)) RETURNING id"),
        {"h": token_hash(token), "r": principal.role.value, "u": principal.user_id, "l": login_id,
         "v": principal.via, "s": hours * 3600}).scalar_one()
    audit_access(conn, principal, "signin", f"web_session:{session_id}", via=principal.via)
    return token


def end_session(conn: Connection, cookie: str | None) -> int | None:
    """Revoke the session of ``cookie`` (sign-out); returns its id, None when there was none."""
    if not cookie or not cookie.startswith(SESSION_PREFIX):
        return None
    found = conn.execute(sa.text("UPDATE web_session SET revoked_at = now() WHERE token_hash = :h "
                                 "AND revoked_at IS NULL RETURNING id"), {"h": token_hash(cookie)}).scalar()
    if found is not None:
        audit_access(conn, "web:signout", "signout", f"web_session:{found}")
    return int(found) if found is not None else None


def prune_sessions(conn: Connection, older_than_days: int = 30) -> int:
    """Delete sessions that expired or were revoked more than ``older_than_days`` ago."""
    return len(conn.execute(sa.text(
        "DELETE FROM web_session WHERE COALESCE(revoked_at, expires_at) < now() - make_interval(days => :d) "
        "RETURNING id"), {"d": older_than_days}).all())


# ---------------------------------------------------------------------- API tokens


def create_token(conn: Connection, actor: Principal, role: Role, *, days: float, label: str,
                 user_ref: str | None = None) -> tuple[int, str]:
    """A new API token: (id, the token text: shown once, stored hashed)."""
    if not 0 < days <= MAX_TOKEN_DAYS:
        raise ConfigError(f"--expires-days must be within 1..{MAX_TOKEN_DAYS}")
    if not label.strip() or len(label) > 200:
        raise ConfigError("--label must be 1-200 characters")
    if role in (Role.SALES, Role.MANAGER) and user_ref is None:
        raise ConfigError(f"a {role.value} token acts as an internal user: give --user")
    user_id = int(find_internal_user(conn, user_ref).id) if user_ref is not None else None
    token = new_token(API_TOKEN_PREFIX)
    token_id = int(conn.execute(sa.text(
        "INSERT INTO api_token (token_hash, prefix, label, role, user_id, expires_at) "
        "VALUES (:h, :p, :l, :r, :u, now() + make_interval(secs => :s)) RETURNING id"),
        {"h": token_hash(token), "p": token[:12], "l": label.strip(), "r": role.value, "u": user_id,
         "s": days * 86400}).scalar_one())
    audit_access(conn, actor, "token.create", f"api_token:{token_id}", role=role.value, user_id=user_id,
                 label=label.strip(), expires_days=days)
    return token_id, token


def list_tokens(conn: Connection) -> list[dict[str, Any]]:
    """Every token without its text or hash: id, prefix, label, role, user, dates, state."""
    return [dict(r._mapping) for r in conn.execute(sa.text(
        "SELECT t.id, t.prefix, t.label, t.role, u.name AS user_name, t.created_at, t.expires_at, t.revoked_at, "
        "t.last_used_at, CASE WHEN t.revoked_at IS NOT NULL THEN 'revoked' WHEN t.expires_at <= now() "
        "THEN 'expired' ELSE 'active' END AS state "
        "FROM api_token t LEFT JOIN internal_user u ON u.id = t.user_id ORDER BY t.id"))]


def revoke_token(conn: Connection, actor: Principal, token_id: int) -> None:
    """Revoke a token (NotFoundError when there is no such token; a second revoke is a no-op)."""
    row = conn.execute(sa.text("SELECT id, revoked_at FROM api_token WHERE id = :id"), {"id": token_id}).first()
    if row is None:
        raise NotFoundError(f"no API token {token_id}")
    if row.revoked_at is None:
        conn.execute(sa.text("UPDATE api_token SET revoked_at = now() WHERE id = :id"), {"id": token_id})
        audit_access(conn, actor, "token.revoke", f"api_token:{token_id}")
