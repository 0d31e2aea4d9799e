"""WeCom streams against the sandbox: full reads, page sizes, mapping, fallbacks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from canonical_model.records import MappingError
from connectors.kit.sandbox import serve_in_thread
from connectors.wecom.client import WeComClient
from connectors.wecom.sandbox import (
    SANDBOX_AGENT_ID,
    SANDBOX_CORP_ID,
    SANDBOX_SECRET,
    demo_directory,
    demo_external_contacts,
    make_sandbox,
)
from connectors.wecom.streams import DIRECTORY, EXTERNAL_CONTACTS, PAGE_SIZE, STREAMS


@pytest.fixture(scope="module", autouse=True)
def no_proxy() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        mp.setenv("no_proxy", "127.0.0.1,localhost")
        yield


def client_for(**options: Any) -> tuple[Any, Any, WeComClient]:
    app = make_sandbox(**options)
    server = serve_in_thread(app)
    client = WeComClient(corp_id=SANDBOX_CORP_ID, secret=SecretStr(SANDBOX_SECRET), agent_id=SANDBOX_AGENT_ID,
                         base_url=server.url, timeout=5.0)
    return app, server, client


@pytest.fixture(scope="module")
def standard() -> Iterator[tuple[Any, WeComClient]]:
    app, server, client = client_for()
    with server, client:
        yield app, client


def map_all(stream, pages) -> tuple[list[Any], list[tuple[Any, str]]]:
    records, quarantined = [], []
    for page in pages:
        for raw in page.records:
            try:
                records.append(stream.map_record(raw))
            except (MappingError, ValidationError) as exc:
                quarantined.append((raw.get(stream.key_field), str(exc)))
    return records, quarantined


def test_streams_are_described_as_data():
    assert [s.name for s in STREAMS] == ["directory", "external_contacts"]
    assert (DIRECTORY.target, EXTERNAL_CONTACTS.target) == ("internal_user", "contact")
    assert DIRECTORY.cursor_field is None and EXTERNAL_CONTACTS.depends_on == ("directory",)


def test_directory_full_read_maps_every_member_with_its_manager(standard):
    # given the seeded corp, when the directory stream is read and mapped
    _, client = standard
    pages = list(DIRECTORY.read_pages(client, None))
    records, quarantined = map_all(DIRECTORY, pages)
    # then every member arrives once, with department name and the manager the demo data says
    assert quarantined == [] and all(len(p.records) <= PAGE_SIZE for p in pages)
    by_id = {r.external_id: r for r in records}
    truth = {u.userid: u for u in demo_directory()}
    assert set(by_id) == set(truth)
    for userid, user in truth.items():
        assert by_id[userid].manager_ref == user.manager_userid, userid
        assert by_id[userid].department == user.department
        assert by_id[userid].mobile == user.mobile
        assert by_id[userid].active == (user.status != 2)
    # and the department chain attached is only the member's own branch
    rep_raw = next(r for p in pages for r in p.records if r["userid"] == next(u for u in demo_directory() if u.is_sales_rep).userid)
    assert set(rep_raw["_hub_departments"]) <= {"1", "2", "3", "4", "5", "6", "7"}


def test_external_contacts_full_read_pages_dedupes_and_quarantines(standard):
    _, client = standard
    pages = list(EXTERNAL_CONTACTS.read_pages(client, None))
    # then 300 contacts come in pages of at most 200, each once although some have two reps
    assert [len(p.records) for p in pages] == [200, 100]
    records, quarantined = map_all(EXTERNAL_CONTACTS, pages)
    truth = {c.external_userid: c for c in demo_external_contacts()}
    assert {r.external_id for r in records} | {key for key, _ in quarantined} == set(truth)
    # the two blank-nickname contacts without remark are quarantined with a reason
    blank = {c.external_userid for c in truth.values() if not c.name.strip() and not c.follows[0].remark}
    assert {key for key, _ in quarantined} == blank and len(blank) == 2
    assert all("no usable name" in reason for _, reason in quarantined)
    for record in records:
        contact = truth[record.external_id]
        assert record.owner_ref in {f.userid for f in contact.follows}
        if contact.type == 2:
            assert record.corp_name == contact.corp_full_name
    # contacts at companies the CRM does not know are still read (identity resolution decides)
    assert any(not truth[r.external_id].known_company for r in records)


def test_directory_falls_back_when_department_list_and_list_id_are_refused():
    # given an app whose secret may not call department/list nor user/list_id (48002)
    app, server, client = client_for(blocked_apis=["department/list", "user/list_id"])
    with server, client:
        records, quarantined = map_all(DIRECTORY, DIRECTORY.read_pages(client, None))
        calls = app.state.wecom.summary()["api_calls"]
    # then it used simplelist + user/list, still read everyone, without department names
    assert quarantined == [] and len(records) == len(demo_directory())
    assert calls.get("department/simplelist") == 1 and calls.get("user/list", 0) >= 1 and "user/get" not in calls
    assert all(r.department is None for r in records)


def test_new_app_without_sensitive_fields_still_maps():
    # given an app created after 2022-06-20: user/get carries no mobile or email
    _, server, client = client_for(legacy_app=False)
    with server, client:
        records, quarantined = map_all(DIRECTORY, DIRECTORY.read_pages(client, None))
    assert quarantined == [] and all(r.mobile is None and r.email is None for r in records)
