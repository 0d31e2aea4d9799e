"""Contract: alibabacloud-dingtalk's workflow_1_0 client (OA approvals) against our sandbox, unchanged.

``start_process_instance``, ``get_process_instance``, ``list_process_instance_ids`` and
``terminate_process_instance`` (reference/oa-approvals.md §1.3–1.5, §1.9) with only the
endpoint changed. The SDK sends ``"details": []`` in every form value and types the detail's
``success`` as a string (§1.3, §1.4); the sandbox must take and answer both as DingTalk does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from alibabacloud_dingtalk.oauth2_1_0 import client as oauth2_client
from alibabacloud_dingtalk.oauth2_1_0 import models as oauth2_models
from alibabacloud_dingtalk.workflow_1_0 import client as workflow_client
from alibabacloud_dingtalk.workflow_1_0 import models as wf
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_util import models as util_models

from connectors.dingtalk.sandbox import SANDBOX_APP_KEY, SANDBOX_APP_SECRET, dingtalk_directory, make_sandbox
from connectors.dingtalk.sandbox.approvals import ORDER_TEMPLATE
from connectors.kit.sandbox import serve_in_thread

pytestmark = pytest.mark.contract

SELLER = next(m for m in dingtalk_directory() if m.active and m.title == "销售代表" and m.manager_userid)
RUNTIME = util_models.RuntimeOptions()
CODE = ORDER_TEMPLATE.process_code


@pytest.fixture(scope="module")
def endpoint() -> Iterator[tuple[Any, str]]:
    with pytest.MonkeyPatch.context() as mp:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
            mp.delenv(name, raising=False)
        app = make_sandbox(api_qps=1000)  # the 20 QPS of the standard edition would throttle the paging test
        with serve_in_thread(app) as server:
            yield app, f"127.0.0.1:{server.port}"


def config(where: str) -> open_api_models.Config:
    return open_api_models.Config(protocol="http", endpoint=where, read_timeout=5000, connect_timeout=2000)


@pytest.fixture
def token(endpoint) -> str:
    reply = oauth2_client.Client(config(endpoint[1])).get_access_token(
        oauth2_models.GetAccessTokenRequest(app_key=SANDBOX_APP_KEY, app_secret=SANDBOX_APP_SECRET))
    return str(reply.body.access_token)


def form(key: str, amount: str = "128000.00", customer: str = "深圳华南精密制造有限公司") -> list[Any]:
    return [wf.StartProcessInstanceRequestFormComponentValues(name=n, value=v) for n, v in
            (("CRM单号", key), ("订单编号", "SO-2026-0042"), ("客户", customer), ("金额", amount))]


def start(client: workflow_client.Client, token: str, key: str, **changes: Any) -> str:
    request = wf.StartProcessInstanceRequest(process_code=CODE, originator_user_id=SELLER.userid, dept_id=-1,
                                             form_component_values=form(key))
    for name, value in changes.items():
        setattr(request, name, value)
    reply = client.start_process_instance_with_options(
        request, wf.StartProcessInstanceHeaders(x_acs_dingtalk_access_token=token), RUNTIME)
    return str(reply.body.instance_id)


def test_an_instance_started_by_the_sdk_reads_back_with_its_form_and_is_listed_by_originator(endpoint, token):
    _, where = endpoint
    client = workflow_client.Client(config(where))
    before_ms = int(time.time() * 1000) - 1000
    # when the SDK starts an approval with the CRM key in its control
    instance_id = start(client, token, "crm-order-1-r1")
    # then the detail reads back RUNNING with the form, a 21-digit businessId and a running task
    detail = client.get_process_instance_with_options(
        wf.GetProcessInstanceRequest(process_instance_id=instance_id),
        wf.GetProcessInstanceHeaders(x_acs_dingtalk_access_token=token), RUNTIME).body
    assert str(detail.success).lower() == "true"
    result = detail.result
    assert result.status == "RUNNING" and result.originator_user_id == SELLER.userid
    assert len(result.business_id) == 21 and result.business_id.isdigit()
    assert {v.name: v.value for v in result.form_component_values}["CRM单号"] == "crm-order-1-r1"
    assert result.tasks[0].user_id == SELLER.manager_userid and result.tasks[0].status == "RUNNING"
    # and the id list by template, window and originator holds it; another originator's list does not
    listed = client.list_process_instance_ids_with_options(
        wf.ListProcessInstanceIdsRequest(process_code=CODE, start_time=before_ms, end_time=int(time.time() * 1000) + 1000,
                                         next_token=0, max_results=20, user_ids=[SELLER.userid]),
        wf.ListProcessInstanceIdsHeaders(x_acs_dingtalk_access_token=token), RUNTIME).body
    assert instance_id in listed.result.list
    other = client.list_process_instance_ids_with_options(
        wf.ListProcessInstanceIdsRequest(process_code=CODE, start_time=before_ms, next_token=0, max_results=20,
                                         user_ids=[SELLER.manager_userid]),
        wf.ListProcessInstanceIdsHeaders(x_acs_dingtalk_access_token=token), RUNTIME).body
    assert instance_id not in (other.result.list or [])


def test_the_same_form_twice_makes_two_instances_and_the_list_pages_by_a_string_next_token(endpoint, token):
    app, where = endpoint
    client = workflow_client.Client(config(where))
    since = int(time.time() * 1000) - 1000
    # when 25 instances are started, two of them with the same key (DingTalk dedupes nothing)
    ids = [start(client, token, f"crm-order-page-{n}") for n in range(24)] + [start(client, token, "crm-order-page-0")]
    assert len(set(ids)) == 25
    assert len(app.state.approvals.by_key("CRM单号", "crm-order-page-0")) == 2
    # then the list comes in pages of at most 20 with nextToken as a string, none on the last page
    seen: list[str] = []
    token_in = 0
    pages = 0
    while True:
        body = client.list_process_instance_ids_with_options(
            wf.ListProcessInstanceIdsRequest(process_code=CODE, start_time=since, next_token=token_in, max_results=20,
                                             user_ids=[SELLER.userid]),
            wf.ListProcessInstanceIdsHeaders(x_acs_dingtalk_access_token=token), RUNTIME).body
        pages += 1
        seen += body.result.list
        if body.result.next_token is None:
            break
        assert isinstance(body.result.next_token, str)
        token_in = int(body.result.next_token)
    assert pages == 2 and set(ids) <= set(seen)


def test_bad_forms_windows_and_sizes_are_http_400_with_a_code(endpoint, token):
    _, where = endpoint
    client = workflow_client.Client(config(where))
    headers = wf.StartProcessInstanceHeaders(x_acs_dingtalk_access_token=token)
    # a required control left out
    request = wf.StartProcessInstanceRequest(process_code=CODE, originator_user_id=SELLER.userid,
                                             form_component_values=form("k")[:2])
    with pytest.raises(Exception) as refused:
        client.start_process_instance_with_options(request, headers, RUNTIME)
    assert refused.value.data["statusCode"] == 400 and "客户" in refused.value.message  # type: ignore[attr-defined]
    # an unknown process code, an unknown originator
    for change in ({"process_code": "PROC-NOPE-0000"}, {"originator_user_id": "nobody-here"}):
        request = wf.StartProcessInstanceRequest(process_code=CODE, originator_user_id=SELLER.userid,
                                                 form_component_values=form("k"))
        for name, value in change.items():
            setattr(request, name, value)
        with pytest.raises(Exception) as refused:
            client.start_process_instance_with_options(request, headers, RUNTIME)
        assert refused.value.data["statusCode"] == 400  # type: ignore[attr-defined]
    # a window over 120 days, a page over 20
    now = int(time.time() * 1000)
    for start_time, size in ((now - 121 * 86_400_000, 20), (now - 1000, 21)):
        with pytest.raises(Exception) as refused:
            client.list_process_instance_ids_with_options(
                wf.ListProcessInstanceIdsRequest(process_code=CODE, start_time=start_time, end_time=now,
                                                 next_token=0, max_results=size),
                wf.ListProcessInstanceIdsHeaders(x_acs_dingtalk_access_token=token), RUNTIME)
        assert refused.value.data["statusCode"] == 400  # type: ignore[attr-defined]


def test_terminate_approve_refuse_and_revoke_move_the_state_machine(endpoint, token):
    _, where = endpoint
    client = workflow_client.Client(config(where))
    get_headers = wf.GetProcessInstanceHeaders(x_acs_dingtalk_access_token=token)

    def read(instance_id: str) -> Any:
        return client.get_process_instance_with_options(
            wf.GetProcessInstanceRequest(process_instance_id=instance_id), get_headers, RUNTIME).body.result

    base = f"http://{where}/__sandbox__/approvals"
    # terminate as the system: TERMINATED
    stopped = start(client, token, "crm-order-t")
    reply = client.terminate_process_instance_with_options(
        wf.TerminateProcessInstanceRequest(process_instance_id=stopped, is_system=True, remark="重复提交"),
        wf.TerminateProcessInstanceHeaders(x_acs_dingtalk_access_token=token), RUNTIME).body
    assert reply.result is True and read(stopped).status == "TERMINATED"
    # refuse as the approver, with a remark
    refused = start(client, token, "crm-order-r")
    assert httpx.post(f"{base}/{refused}/act", json={"action": "refuse", "remark": "价格低于底价"}).status_code == 200
    detail = read(refused)
    assert (detail.status, detail.result) == ("COMPLETED", "refuse")
    assert detail.operation_records[-1].remark == "价格低于底价"
    # approve, then revoke: the original stays COMPLETED/agree with an attached REVOKE instance
    approved = start(client, token, "crm-order-a")
    assert httpx.post(f"{base}/{approved}/act", json={"action": "agree"}).status_code == 200
    assert httpx.post(f"{base}/{approved}/act", json={"action": "agree"}).status_code == 409
    assert httpx.post(f"{base}/{approved}/act", json={"action": "revoke", "remark": "客户取消"}).status_code == 200
    detail = read(approved)
    assert (detail.status, detail.result) == ("COMPLETED", "agree")
    [revoke_id] = detail.attached_process_instance_ids
    assert read(revoke_id).biz_action == "REVOKE"
