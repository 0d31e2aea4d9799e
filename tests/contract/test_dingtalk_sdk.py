"""Contract: DingTalk's official v1.0 SDK (alibabacloud-dingtalk) against our sandbox, unchanged.

The only change is the endpoint: ``Config(protocol="http", endpoint="127.0.0.1:PORT")``
(reference/messaging-apis.md §2.5). The SDK has no token management: the token it gets
from ``oauth2_1_0`` is passed in each call's headers (``*_with_options``; the short forms
send no token, sdk-quirks.md). It reads proxy variables itself and ignores NO_PROXY, so
they are cleared for the loopback sandbox.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from alibabacloud_dingtalk.contact_1_0 import client as contact_client
from alibabacloud_dingtalk.contact_1_0 import models as contact_models
from alibabacloud_dingtalk.oauth2_1_0 import client as oauth2_client
from alibabacloud_dingtalk.oauth2_1_0 import models as oauth2_models
from alibabacloud_dingtalk.todo_1_0 import client as todo_client
from alibabacloud_dingtalk.todo_1_0 import models as todo_models
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_util import models as util_models

from connectors.dingtalk.sandbox import SANDBOX_APP_KEY, SANDBOX_APP_SECRET, dingtalk_directory, make_sandbox
from connectors.kit.sandbox import serve_in_thread

pytestmark = pytest.mark.contract

OPERATOR, EXECUTOR = [m.unionid for m in dingtalk_directory() if m.active and m.title == "销售代表"][:2]
RUNTIME = util_models.RuntimeOptions()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[tuple[Any, str]]:
    with pytest.MonkeyPatch.context() as mp:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
            mp.delenv(name, raising=False)
        app = make_sandbox()
        with serve_in_thread(app) as server:
            yield app, f"127.0.0.1:{server.port}"


def config(endpoint: str) -> open_api_models.Config:
    return open_api_models.Config(protocol="http", endpoint=endpoint, read_timeout=5000, connect_timeout=2000)


@pytest.fixture
def token(endpoint) -> str:
    _, where = endpoint
    reply = oauth2_client.Client(config(where)).get_access_token(
        oauth2_models.GetAccessTokenRequest(app_key=SANDBOX_APP_KEY, app_secret=SANDBOX_APP_SECRET))
    return str(reply.body.access_token)


@pytest.fixture
def todos(endpoint) -> todo_client.Client:
    return todo_client.Client(config(endpoint[1]))


def headers(cls: type, token: str) -> Any:
    return cls(x_acs_dingtalk_access_token=token)


def test_the_sdk_gets_a_token_and_a_wrong_secret_gets_a_4xx_with_the_code(endpoint, token):
    _, where = endpoint
    # given the sandbox's app key and secret, the SDK's oauth2 client gets a token valid for 7200 s
    reply = oauth2_client.Client(config(where)).get_access_token(
        oauth2_models.GetAccessTokenRequest(app_key=SANDBOX_APP_KEY, app_secret=SANDBOX_APP_SECRET))
    assert reply.body.access_token == token and 0 < reply.body.expire_in <= 7200

    # a wrong secret is refused with HTTP 400 and the code a client can branch on
    with pytest.raises(Exception) as refused:
        oauth2_client.Client(config(where)).get_access_token(
            oauth2_models.GetAccessTokenRequest(app_key=SANDBOX_APP_KEY, app_secret="not-the-secret"))
    assert refused.value.code == "invalidClientSecret"  # type: ignore[attr-defined]
    assert refused.value.data["statusCode"] == 400  # type: ignore[attr-defined]


def test_a_bogus_token_is_invalid_authentication(todos):
    with pytest.raises(Exception) as refused:
        todos.get_todo_task_by_source_id_with_options(
            OPERATOR, "crm-task-1", headers(todo_models.GetTodoTaskBySourceIdHeaders, "bogus"), RUNTIME)
    assert refused.value.code == "InvalidAuthentication"  # type: ignore[attr-defined]
    assert refused.value.data["statusCode"] == 400  # type: ignore[attr-defined]


def test_create_get_complete_find_by_source_and_delete(endpoint, todos, token):
    app, _ = endpoint
    # when the SDK creates a to-do with a business id
    created = todos.create_todo_task_with_options(
        OPERATOR, todo_models.CreateTodoTaskRequest(
            operator_id=OPERATOR, source_id="crm-task-contract-1", subject="回访苏州恒瑞精密的采购负责人",
            description="确认报价单", due_time=1_767_225_600_000, executor_ids=[EXECUTOR],
            participant_ids=[EXECUTOR], priority=20,
            detail_url=todo_models.CreateTodoTaskRequestDetailUrl(app_url="https://hub.example/t/1",
                                                                  pc_url="https://hub.example/t/1")),
        headers(todo_models.CreateTodoTaskHeaders, token), RUNTIME).body
    # then the sandbox holds it, as the SDK's response model reads it
    assert created.id and created.source_id == "crm-task-contract-1" and created.done is False
    assert created.executor_ids == [EXECUTOR] and created.creator_id == OPERATOR
    assert [t["id"] for t in app.state.dingtalk.todo_list("crm-task-contract-1")] == [created.id]

    got = todos.get_todo_task_with_options(
        OPERATOR, created.id, headers(todo_models.GetTodoTaskHeaders, token), RUNTIME).body
    assert (got.subject, got.due_time, got.done) == ("回访苏州恒瑞精密的采购负责人", 1_767_225_600_000, False)

    # marking it done
    updated = todos.update_todo_task_with_options(
        OPERATOR, created.id, todo_models.UpdateTodoTaskRequest(operator_id=OPERATOR, done=True),
        headers(todo_models.UpdateTodoTaskHeaders, token), RUNTIME).body
    assert updated.result is True

    # the business id finds it, done; an unknown business id finds nothing
    found = todos.get_todo_task_by_source_id_with_options(
        OPERATOR, "crm-task-contract-1", headers(todo_models.GetTodoTaskBySourceIdHeaders, token), RUNTIME).body
    assert found.id == created.id and found.done is True and found.finish_time
    with pytest.raises(Exception) as nothing:
        todos.get_todo_task_by_source_id_with_options(
            OPERATOR, "crm-task-nobody", headers(todo_models.GetTodoTaskBySourceIdHeaders, token), RUNTIME)
    assert nothing.value.data["statusCode"] == 400  # type: ignore[attr-defined]
    assert "task not exist" in str(nothing.value.message)  # type: ignore[attr-defined]

    # and deleting it removes it
    deleted = todos.delete_todo_task_with_options(
        OPERATOR, created.id, todo_models.DeleteTodoTaskRequest(operator_id=OPERATOR),
        headers(todo_models.DeleteTodoTaskHeaders, token), RUNTIME).body
    assert deleted.result is True
    assert app.state.dingtalk.todo_list("crm-task-contract-1") == []


def test_the_sdk_lists_the_operators_done_todos_page_by_page(endpoint, todos, token):
    app, _ = endpoint
    state = app.state.dingtalk
    state.todo_page_size = 2
    try:
        ids = [todos.create_todo_task_with_options(
            OPERATOR, todo_models.CreateTodoTaskRequest(operator_id=OPERATOR, source_id=f"crm-task-page-{i}",
                                                        subject=f"跟进 {i}", executor_ids=[EXECUTOR]),
            headers(todo_models.CreateTodoTaskHeaders, token), RUNTIME).body.id for i in range(5)]
        for todo_id in ids[:3]:
            state.complete_todo(todo_id)
        seen, next_token = [], None
        while True:
            page = todos.query_org_todo_tasks_with_options(
                OPERATOR, todo_models.QueryOrgTodoTasksRequest(is_done=True, role_types=[["creator"]],
                                                               next_token=next_token),
                headers(todo_models.QueryOrgTodoTasksHeaders, token), RUNTIME).body
            seen += [card.task_id for card in page.todo_cards or []]
            next_token = page.next_token
            if not next_token:
                break
        assert sorted(seen) == sorted(ids[:3])
    finally:
        state.todo_page_size = 50


# ---------------------------------------------------------------------- browser (QR) login (§6)


def _web_auth_code(app: Any, where: str, member: str) -> str:
    """An authCode from the emulated login.dingtalk.com page for ``member`` (who "scanned")."""
    app.state.dingtalk.browser_user = member
    page = httpx.get(f"http://{where}/oauth2/auth", params={
        "redirect_uri": "http://hub.invalid/auth/dingtalk/web", "response_type": "code",
        "client_id": SANDBOX_APP_KEY, "scope": "openid", "state": "s", "prompt": "consent"}, follow_redirects=False)
    assert page.status_code == 302
    return str(dict(httpx.URL(page.headers["location"]).params)["authCode"])


def test_the_sdk_exchanges_a_browser_auth_code_once_and_reads_the_person(endpoint):
    app, where = endpoint
    member = next(m for m in dingtalk_directory() if m.active)
    code = _web_auth_code(app, where, member.userid)
    oauth = oauth2_client.Client(config(where))

    # given an authCode, the SDK's get_user_token exchanges it for the person's user token
    reply = oauth.get_user_token(oauth2_models.GetUserTokenRequest(
        client_id=SANDBOX_APP_KEY, client_secret=SANDBOX_APP_SECRET, code=code, grant_type="authorization_code"))
    assert reply.body.access_token and reply.body.refresh_token and 0 < reply.body.expire_in <= 7200

    # and the contact client's get_user("me") with that token names the person by unionId
    me = contact_client.Client(config(where)).get_user_with_options(
        "me", headers(contact_models.GetUserHeaders, reply.body.access_token), RUNTIME).body
    assert (me.union_id, me.nick, me.mobile) == (member.unionid, member.name, member.mobile)

    # the same code twice: refused with a 400 and a code
    with pytest.raises(Exception) as reused:
        oauth.get_user_token(oauth2_models.GetUserTokenRequest(
            client_id=SANDBOX_APP_KEY, client_secret=SANDBOX_APP_SECRET, code=code, grant_type="authorization_code"))
    assert reused.value.code == "invalidAuthCode"  # type: ignore[attr-defined]
    assert reused.value.data["statusCode"] == 400  # type: ignore[attr-defined]


def test_a_browser_auth_code_exchanged_with_a_wrong_client_secret_is_refused_and_not_spent(endpoint):
    app, where = endpoint
    member = next(m for m in dingtalk_directory() if m.active)
    code = _web_auth_code(app, where, member.userid)
    oauth = oauth2_client.Client(config(where))
    with pytest.raises(Exception) as refused:
        oauth.get_user_token(oauth2_models.GetUserTokenRequest(
            client_id=SANDBOX_APP_KEY, client_secret="not-the-secret", code=code, grant_type="authorization_code"))
    assert refused.value.code == "invalidClientSecret"  # type: ignore[attr-defined]
    # the code still works with the right secret
    assert oauth.get_user_token(oauth2_models.GetUserTokenRequest(
        client_id=SANDBOX_APP_KEY, client_secret=SANDBOX_APP_SECRET, code=code,
        grant_type="authorization_code")).body.access_token
