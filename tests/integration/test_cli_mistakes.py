"""Every mistake an IT person can make at the `hub` command line: one line, the right exit code.

Each case sets up the environment (variables, a config file, a busy port), runs one
command, and expects exactly one line on stderr naming the problem, the documented exit
code (2: usage or configuration, 1: operational, 3: schema behind), no traceback, and no
secret anywhere in the output.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from hub.cli import app
from hub.vault import generate_key

SECRET = "s3cret-never-printed-0042"
CONFIG_FILES = {
    "unknown_key": '[kingdee]\nbase_url = "https://erp.example.cn/k3cloud/"\npage_sise = 500\n',
    "secret": f'[wecom]\nsecret = "{SECRET}"\n',
    "bad_toml": "[kingdee\nbase_url = 1\n",
}


@dataclass(frozen=True)
class Mistake:
    name: str
    args: tuple[str, ...]
    code: int
    says: str
    env: dict[str, str] = field(default_factory=dict)
    config_file: str | None = None
    unmigrated: bool = False


MISTAKES = [
    # configuration
    Mistake("database url is not a url", ("db", "status"), 2, "HUB_DATABASE_URL", {"HUB_DATABASE_URL": "not a url"}),
    Mistake("database url of another kind", ("db", "status"), 2, "PostgreSQL",
            {"HUB_DATABASE_URL": "mysql://root@127.0.0.1/x"}),
    Mistake("schema name with a dash", ("db", "status"), 2, "HUB_DATABASE_SCHEMA", {"HUB_DATABASE_SCHEMA": "Bad-Schema"}),
    Mistake("non-numeric setting", ("db", "status"), 2, "HUB_OUTBOX__MAX_ATTEMPTS", {"HUB_OUTBOX__MAX_ATTEMPTS": "abc"}),
    Mistake("setting out of range", ("db", "status"), 2, "HUB_OUTBOX__MAX_ATTEMPTS", {"HUB_OUTBOX__MAX_ATTEMPTS": "0"}),
    Mistake("misspelt section", ("db", "status"), 2, "did you mean HUB_KINGDEE__BASE_URL",
            {"HUB_KINGDE__BASE_URL": "https://erp.example.cn/k3cloud/"}),
    Mistake("misspelt field", ("db", "status"), 2, "did you mean HUB_WECOM__CORP_ID", {"HUB_WECOM__CORPID": "ww1"}),
    Mistake("unknown timezone", ("db", "status"), 2, "HUB_TIMEZONE", {"HUB_TIMEZONE": "Mars/Base_One"}),
    Mistake("unknown log level", ("db", "status"), 2, "HUB_LOG_LEVEL", {"HUB_LOG_LEVEL": "LOUD"}),
    Mistake("unknown auth mode", ("db", "status"), 2, "HUB_KINGDEE__AUTH_MODE", {"HUB_KINGDEE__AUTH_MODE": "cookie"}),
    Mistake("negative page size", ("db", "status"), 2, "HUB_KINGDEE__PAGE_SIZE", {"HUB_KINGDEE__PAGE_SIZE": "-5"}),
    Mistake("sandbox flag not a boolean", ("db", "status"), 2, "HUB_SANDBOX", {"HUB_SANDBOX": "maybe"}),
    Mistake("missing config file", ("db", "status"), 2, "HUB_CONFIG_FILE", {"HUB_CONFIG_FILE": "/nonexistent/hub.toml"}),
    Mistake("unknown key in the file", ("db", "status"), 2, "page_sise", config_file="unknown_key"),
    Mistake("secret in the file", ("db", "status"), 2, "HUB_WECOM__SECRET", config_file="secret"),
    Mistake("file is not TOML", ("db", "status"), 2, "not valid TOML", config_file="bad_toml"),
    Mistake("connector half configured outside sandbox mode", ("sync", "kingdee"), 2, "HUB_KINGDEE__USERNAME",
            {"HUB_SANDBOX": "0", "HUB_KINGDEE__ACCT_ID": "66f0", "HUB_KINGDEE__APP_SECRET": SECRET}),
    Mistake("wrong secret for a real endpoint", ("sync", "wecom", "directory"), 1, "gettoken",
            {"HUB_SANDBOX": "0", "HUB_WECOM__CORP_ID": "wwe7b5c3a1d9f24680", "HUB_WECOM__SECRET": SECRET,
             "HUB_WECOM__AGENT_ID": "1000002", "HUB_WECOM__BASE_URL": "{wecom}", "HUB_WECOM__ALLOW_HTTP": "true",
             "HUB_VAULT__KEYS": f"k1:{generate_key()}", "HUB_VAULT__INDEX_KEY": generate_key()}),
    Mistake("a real endpoint over plain http", ("sync", "wecom", "directory"), 2, "HUB_WECOM__BASE_URL is plain http",
            {"HUB_SANDBOX": "0", "HUB_WECOM__CORP_ID": "wwe7b5c3a1d9f24680", "HUB_WECOM__SECRET": SECRET,
             "HUB_WECOM__AGENT_ID": "1000002", "HUB_WECOM__BASE_URL": "{wecom}"}),
    Mistake("database unreachable", ("dlq", "list"), 1, "database unreachable",
            {"HUB_DATABASE_URL": "postgresql://hub@127.0.0.1:9/hub"}),
    Mistake("schema never migrated (a command)", ("dlq", "list"), 3, "hub db upgrade", unmigrated=True),
    # usage
    Mistake("unknown command", ("frobnicate",), 2, "No such command"),
    Mistake("missing argument", ("sync",), 2, "Missing argument"),
    Mistake("unknown option", ("sync", "kingdee", "--fast"), 2, "No such option"),
    Mistake("unknown system", ("sync", "sap"), 2, "unknown system 'sap'"),
    Mistake("unknown stream", ("sync", "kingdee", "invoices"), 2, "no stream 'invoices'"),
    Mistake("unknown outbox kind", ("dispatch", "--kind", "foo.bar"), 2, "unknown outbox kind 'foo.bar'"),
    Mistake("unknown writer of a known system", ("dispatch", "--kind", "kingdee.invoice"), 2, "kingdee.sales_order"),
    Mistake("quarantine of an unknown system", ("quarantine", "list", "--system", "foo"), 2, "unknown system 'foo'"),
    Mistake("quarantine of an unknown stream", ("quarantine", "list", "--system", "kingdee", "--stream", "x"), 2,
            "no stream 'x'"),
    Mistake("stream without system", ("quarantine", "list", "--stream", "receivables"), 2, "--system"),
    Mistake("limit zero", ("quarantine", "list", "--limit", "0"), 2, "--limit"),
    Mistake("retry of an unknown stream", ("quarantine", "retry", "kingdee", "foo"), 2, "no stream 'foo'"),
    Mistake("replay without ids", ("dlq", "replay"), 2, "give outbox ids or --all"),
    Mistake("replay of a non-number", ("dlq", "replay", "abc"), 2, "valid integer"),
    Mistake("replay of an unknown id", ("dlq", "replay", "4242"), 1, "no dead or failed outbox row with id 4242"),
    Mistake("unknown customer", ("profile", "不存在的公司"), 1, "no customer matches"),
    Mistake("sandbox of an unknown system", ("sandbox", "sap"), 2, "unknown system 'sap'"),
    Mistake("sandbox on a busy port", ("sandbox", "kingdee", "--port", "{busy}"), 2, "choose another --port"),
    Mistake("web on a busy port", ("serve", "--port", "{busy}"), 2, "choose another --port"),
    Mistake("port out of range", ("serve", "--port", "70000"), 2, "--port"),
]


@pytest.fixture(scope="module")
def wecom_url() -> Iterator[str]:
    from connectors.kit.sandbox import serve_in_thread
    from hub.registry import connector
    from hub.runtime import load_sandbox

    with serve_in_thread(load_sandbox(connector("wecom")).create_app()) as server:
        yield server.url


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.name for m in MISTAKES])
def test_a_mistake_is_one_line_with_its_exit_code(mistake: Mistake, db, database_url: str, wecom_url: str,
                                                  busy_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # given the hub's database (or a schema nobody migrated) and sandbox mode, then the mistake
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HUB_DATABASE_URL", db.url)
    monkeypatch.setenv("HUB_DATABASE_SCHEMA", f"{db.schema}_never" if mistake.unmigrated else db.schema)
    monkeypatch.setenv("HUB_SANDBOX", "1")
    for name, value in mistake.env.items():
        monkeypatch.setenv(name, value.format(wecom=wecom_url))
    if mistake.config_file:
        (tmp_path / "hub.toml").write_text(CONFIG_FILES[mistake.config_file])
    args = [a.format(busy=busy_port) for a in mistake.args]

    # when the command runs
    result = CliRunner().invoke(app, args, env={"COLUMNS": "100"})

    # then one line says what is wrong, with the documented exit code, and nothing leaks
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == mistake.code, result.output
    assert len(errors) == 1, result.output
    assert mistake.says in errors[0], errors[0]
    assert "Traceback" not in result.output and SECRET not in result.output


def test_an_ambiguous_customer_lists_the_candidates_and_exits_1(db, monkeypatch):
    with db.begin() as conn:
        for name in ("杭州海川贸易有限公司", "杭州海川科技有限公司", "宁波海川物流有限公司"):
            conn.execute(sa.text("INSERT INTO customer (name, normalized_name) VALUES (:n, :n)"), {"n": name})
    monkeypatch.setenv("HUB_DATABASE_URL", db.url)
    monkeypatch.setenv("HUB_DATABASE_SCHEMA", db.schema)

    result = CliRunner().invoke(app, ["profile", "海川"], env={"COLUMNS": "100"})

    assert result.exit_code == 1
    assert "matches 3 customers" in result.stdout
    for name in ("杭州海川贸易有限公司", "杭州海川科技有限公司", "宁波海川物流有限公司"):
        assert name in result.stdout
    exact = CliRunner().invoke(app, ["profile", "杭州海川科技有限公司", "--json"], env={"COLUMNS": "100"})
    assert exact.exit_code == 0 and "杭州海川科技有限公司" in exact.stdout


def test_db_status_exits_3_when_the_schema_is_behind(database_url, monkeypatch):
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    monkeypatch.setenv("HUB_DATABASE_SCHEMA", "never_migrated_status")
    result = CliRunner().invoke(app, ["db", "status"])
    assert result.exit_code == 3
    assert "run `hub db upgrade`" in result.stdout
