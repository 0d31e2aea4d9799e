"""Adding a connector is its folder plus one registry line (DESIGN.md).

The connector here is written by the test into a folder of its own (a settings model,
a client, a stream, a writer and the registry entry, nothing else) and registered with
one line. Settings, Dagster, the CLI and ``hub doctor`` must all know it from that alone.
"""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub import registry

TOY_CONNECTOR = '''
"""A throwaway connector: a 'CRM' that holds three companies in memory."""

from typing import ClassVar

from pydantic import SecretStr

from canonical_model.records import CustomerRecord, MappingError
from hub.contracts import ConnectorSettings, ConnectorSpec, Page, StreamSpec, WriteResult


class ToySettings(ConnectorSettings):
    REQUIRED: ClassVar[tuple[str, ...]] = ("token",)
    token: SecretStr | None = None
    sync_cron: str = "0 * * * *"


class ToyClient:
    def __init__(self, settings, observer):
        self.token = settings.token.get_secret_value()

    def check(self):
        if self.token != "right":
            from hub.errors import AuthExpiredError
            raise AuthExpiredError("token refused", system="toy", operation="check")

    def close(self):
        pass

    def companies(self):
        return [{"id": f"T{i}", "name": f"玩具{i}号贸易有限公司"} for i in range(3)]


def map_company(raw):
    if not raw.get("name"):
        raise MappingError("name: missing company name")
    return CustomerRecord(source_system="toy", source_object="company", external_id=raw["id"], name=raw["name"])


class NoteWriter:
    system = "toy"
    operation = "note"

    def __init__(self, client, settings):
        self.client = client

    def find_existing(self, key, payload):
        return None

    def apply(self, key, payload, attempt):
        return WriteResult(external_id=key)


CONNECTOR = ConnectorSpec(
    system="toy", title="Toy CRM", settings_model=ToySettings, make_client=ToyClient,
    streams=(StreamSpec(name="companies", source_object="company", target="customer", key_field="id",
                        cursor_field=None, read_pages=lambda client, cursor: iter([Page(client.companies())]),
                        map_record=map_company),),
    writers={"note": NoteWriter},
)
'''


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The toy connector's folder on the path and its one registry line."""
    folder = tmp_path / "toy_connector"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "connector.py").write_text(textwrap.dedent(TOY_CONNECTOR))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.CONNECTOR_MODULES, "toy", "toy_connector.connector")  # the one line
    yield "toy"
    for name in [m for m in sys.modules if m.startswith("toy_connector")]:
        del sys.modules[name]


def test_settings_read_the_new_connectors_section(toy, monkeypatch):
    from hub.settings import Settings

    monkeypatch.setenv("HUB_TOY__BASE_URL", "memory://toy")
    monkeypatch.setenv("HUB_TOY__TOKEN", "right")
    settings = Settings()
    assert settings.connector("toy").base_url == "memory://toy"
    assert settings.connector("toy").missing() == []


def test_dagster_definitions_grow_its_assets_jobs_schedule_checks_and_sensor_target(toy):
    from pipelines.definitions import build_definitions
    from pipelines.resources import hub_resource

    defs = build_definitions(hub_resource())
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"toy/companies", "toy/note_push"} <= keys
    jobs = {job.name: job for job in defs.resolve_all_job_defs()}
    assert jobs["toy_inbound"].tags["hub/system"] == "toy"
    assert "toy_note_push" in jobs
    assert {s.name: s.cron_schedule for s in defs.schedules or []}["toy_inbound_schedule"] == "0 * * * *"
    (sensor,) = defs.sensors or []
    assert "toy_note_push" in {job.name for job in sensor.jobs}
    checks = {(key.asset_key.to_user_string(), key.name) for key in defs.resolve_asset_graph().asset_check_keys}
    assert ("toy/companies", "quarantine_growth") in checks
    assert ("toy/note_push", "no_dead_letters") in checks


def test_the_cli_syncs_it_and_doctor_checks_it(toy, db, monkeypatch):
    from hub.cli import app

    monkeypatch.setenv("HUB_DATABASE_URL", db.url)
    monkeypatch.setenv("HUB_DATABASE_SCHEMA", db.schema)
    monkeypatch.setenv("HUB_SANDBOX", "1")  # kingdee and wecom on their sandboxes
    monkeypatch.setenv("HUB_TOY__BASE_URL", "memory://toy")
    monkeypatch.setenv("HUB_TOY__TOKEN", "right")
    runner = CliRunner(env={"COLUMNS": "200"})

    synced = runner.invoke(app, ["sync", "toy"])
    assert synced.exit_code == 0, synced.output
    assert "toy/companies" in synced.output

    doctor = runner.invoke(app, ["doctor"])
    assert doctor.exit_code == 0, doctor.output
    assert any(re.search(r"\btoy\b.*\bok\b", line) for line in doctor.output.splitlines()), doctor.output

    monkeypatch.setenv("HUB_TOY__TOKEN", "wrong")
    refused = runner.invoke(app, ["doctor"])
    assert refused.exit_code == 1
    assert "token refused" in refused.output and "wrong" not in refused.output


def test_an_unconfigured_new_connector_is_a_clear_error_not_a_sandbox(toy, db, monkeypatch):
    from hub.cli import app

    monkeypatch.setenv("HUB_DATABASE_URL", db.url)
    monkeypatch.setenv("HUB_DATABASE_SCHEMA", db.schema)
    result = CliRunner().invoke(app, ["sync", "toy"])
    assert result.exit_code == 2
    assert "HUB_TOY__BASE_URL" in result.output and "HUB_TOY__TOKEN" in result.output
