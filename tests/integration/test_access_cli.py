"""`hub user`, `hub token` and `hub role` against a real database: what they store, what they
print (a token once, never a password or a hash), one-line mistakes, and the audit."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from hub.access.passwords import verify_password
from hub.access.secrets import token_hash
from hub.cli import app
from tests.conftest import rows, scalar
from tests.support.access import build_teams

PASSWORD = "s3cret-enough-pw"


@pytest.fixture
def env(db, monkeypatch):
    monkeypatch.setenv("HUB_DATABASE_URL", db.url)
    monkeypatch.setenv("HUB_DATABASE_SCHEMA", db.schema)
    monkeypatch.setenv("HUB_SANDBOX", "1")
    return db


def hub(*args: str, stdin: str | None = None):
    return CliRunner().invoke(app, list(args), input=stdin, env={"COLUMNS": "200"})


def cli_audit(db) -> list[tuple[str, str]]:
    return [(r.operation, r.actor) for r in rows(db, "SELECT operation, actor FROM audit_log "
                                                     "WHERE system = 'access' ORDER BY id")]


def test_user_add_reads_the_password_from_stdin_and_stores_only_its_argon2_hash(env):
    teams = build_teams(env)
    result = hub("user", "add", "alice", "--role", "sales", "--user", "alice.sbx", "--password-stdin",
                 stdin=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    [login] = rows(env, "SELECT username, role, user_id, password_hash FROM app_login")
    assert (login.username, login.role, login.user_id) == ("alice", "sales", teams.alice)
    assert verify_password(login.password_hash, PASSWORD) and PASSWORD not in result.output
    listed = hub("user", "list", "--json")
    assert '"alice"' in listed.output and "argon2" not in listed.output and "password" not in listed.output
    assert cli_audit(env) == [("login.add", "cli")]


def test_user_add_prompts_twice_without_echo(env):
    result = hub("user", "add", "fin", "--role", "finance", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert scalar(env, "SELECT role FROM app_login WHERE username = 'fin'") == "finance"


@pytest.mark.parametrize(("args", "stdin", "message", "code"), [
    (["user", "add", "x1", "--role", "wizard", "--password-stdin"], PASSWORD, "unknown role 'wizard'", 2),
    (["user", "add", "x1", "--role", "sales", "--password-stdin"], PASSWORD, "acts as an internal user", 2),
    (["user", "add", "x1", "--role", "admin", "--password-stdin"], "short", "at least 10 characters", 2),
    (["user", "add", "bad name", "--role", "admin", "--password-stdin"], PASSWORD, "username 'bad name'", 2),
    (["user", "add", "x1", "--role", "sales", "--user", "ghost", "--password-stdin"], PASSWORD,
     "no internal user 'ghost'", 1),
    (["token", "create", "--role", "crm", "--expires-days", "0"], None, "--expires-days must be within", 2),
    (["token", "revoke", "999"], None, "no API token 999", 1),
    (["role", "set", "nobody", "finance"], None, "no internal user 'nobody'", 1),
    (["user", "disable", "nobody"], None, "no login 'nobody'", 1),
])
def test_mistakes_are_one_line_change_nothing_and_exit_with_their_code(env, args, stdin, message, code):
    build_teams(env)
    result = hub(*args, stdin=stdin + "\n" if stdin else None)
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert scalar(env, "SELECT count(*) FROM app_login") == 0
    assert scalar(env, "SELECT count(*) FROM api_token") == 0


def test_token_create_prints_the_token_once_and_list_never_shows_it(env):
    result = hub("token", "create", "--role", "crm", "--label", "CRM prod", "--expires-days", "30")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[0]
    assert token.startswith("hub_tok_")
    [row] = rows(env, "SELECT id, token_hash, role, label, expires_at - created_at AS life FROM api_token")
    assert row.token_hash == token_hash(token) and (row.role, row.label) == ("crm", "CRM prod")
    assert row.life.days == 30
    listed = hub("token", "list")
    assert "CRM prod" in listed.output and token not in listed.output and token[12:30] not in listed.output
    assert hub("token", "revoke", str(row.id)).exit_code == 0
    assert scalar(env, "SELECT revoked_at IS NOT NULL FROM api_token") is True
    assert "revoked" in hub("token", "list", "--json").output
    assert cli_audit(env) == [("token.create", "cli"), ("token.revoke", "cli")]
    assert token not in str(rows(env, "SELECT * FROM audit_log"))


def test_a_token_expires_by_default_after_90_days(env):
    assert hub("token", "create", "--role", "finance").exit_code == 0
    assert scalar(env, "SELECT extract(day FROM expires_at - created_at)::int FROM api_token") == 90


def test_password_role_and_disable_end_the_logins_sessions(env):
    teams = build_teams(env)
    hub("user", "add", "mia", "--role", "manager", "--user", str(teams.mia), "--password-stdin", stdin=PASSWORD)
    with env.engine.begin() as conn:
        login_id = conn.execute(sa.text("SELECT id FROM app_login")).scalar_one()
        for _ in range(3):
            conn.execute(sa.text("INSERT INTO web_session (token_hash, role, user_id, login_id, via, expires_at) "
                                 "VALUES (md5(random()::text) || md5(random()::text), 'manager', :u, :l, "
                                 "'password', now() + interval '1 hour')"), {"u": teams.mia, "l": login_id})
        conn.execute(sa.text("UPDATE app_login SET failed_attempts = 5, locked_until = now() + interval '1 hour'"))
    assert hub("user", "password", "mia", "--password-stdin", stdin="another-good-one\n").exit_code == 0
    [login] = rows(env, "SELECT password_hash, failed_attempts, locked_until FROM app_login")
    assert verify_password(login.password_hash, "another-good-one") and login.failed_attempts == 0
    assert login.locked_until is None
    assert scalar(env, "SELECT count(*) FROM web_session WHERE revoked_at IS NULL") == 0
    assert hub("user", "role", "mia", "finance").exit_code == 0
    assert scalar(env, "SELECT role FROM app_login") == "finance"
    result = hub("user", "disable", "mia")
    assert result.exit_code == 0 and scalar(env, "SELECT active FROM app_login") is False
    assert [op for op, _ in cli_audit(env)] == ["login.add", "login.password", "login.role", "login.disable"]


def test_role_set_gives_a_directory_user_the_role_they_sign_in_with(env):
    teams = build_teams(env)
    assert hub("role", "set", "bob.sbx", "finance").exit_code == 0
    assert scalar(env, "SELECT role FROM internal_user WHERE id = :id", id=teams.bob) == "finance"
    assert hub("role", "set", str(teams.bob), "none").exit_code == 0
    assert scalar(env, "SELECT role FROM internal_user WHERE id = :id", id=teams.bob) is None
    [first, _] = rows(env, "SELECT key, detail FROM audit_log WHERE operation = 'role.set' ORDER BY id")
    assert first.key == f"internal_user:{teams.bob}" and first.detail["role"] == "finance"
