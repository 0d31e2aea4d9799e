"""What the hub reads from DingTalk, described as data (``StreamSpec`` entries).

- ``directory`` (→ ``internal_user``), a full read: the department tree from the root
  (``topapi/v2/department/get`` for the root, then ``listsub`` recursively: it returns
  direct children only, §2.2), then each department's direct members with
  ``topapi/v2/user/list`` (cursor-paged, ``size`` ≤ 100). A member of several departments
  is listed once per department: the stream keeps one record per userid and learns from
  each listing whether the member leads that department (``leader``), so every record
  carries its first department's chain of names and leaders (``mapping.DEPARTMENTS_KEY``)
  for "remind the supervisor". Departments outside the app's visible scope answer 60011
  and are skipped (their members are not the app's to see).
- ``todo_completions`` (→ ``task_completion``): to-dos the hub created (creator = the
  operator, sourceId ``crm-task-…``) that someone ticked off in DingTalk. The v1.0 list
  (``org/tasks/query``, isDone, roleTypes creator) offers no time filter and its order is
  undocumented, so every page is read; only cards modified after the cursor (the newest
  ``modifiedTime`` seen, less :data:`OVERLAP_MS`) are looked at closer: one ``GET`` of
  the to-do for who finished it (``modifierId``, else its only executor) and when
  (``finishTime``), and that person's userid (``getbyunionid``). Runs only when
  ``client.polls_todo_completions`` (callbacks off, by default); with callbacks on, the
  completion arrives as an event instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from connectors.dingtalk.client import DingTalkClient
from connectors.dingtalk.mapping import (
    COMPLETED_BY_KEY,
    DEPARTMENTS_KEY,
    DETAIL_KEY,
    map_directory_user,
    map_todo_completion,
)
from hub.contracts import Page, RawRecord, StreamSpec
from hub.errors import PermanentError

ROOT_DEPARTMENT = 1  # DingTalk's root department id
PAGE_SIZE = 200
# The hub's to-dos carry sourceId "crm-task-<task id>" (hub.rules.todos); other to-dos the
# operator account created are not the hub's business.
HUB_SOURCE_PREFIX = "crm-task-"
OVERLAP_MS = 10 * 60 * 1000  # re-look at completions this much older than the cursor
_OUT_OF_SCOPE = frozenset({"60011"})  # no privilege: outside the app's visible scope


def _pages(records: Iterable[RawRecord], cursor_after: str | None = None) -> Iterator[Page]:
    """Records in pages of :data:`PAGE_SIZE`; the last page carries ``cursor_after``."""
    batch: list[RawRecord] = []
    for record in records:
        if len(batch) == PAGE_SIZE:
            yield Page(records=batch)
            batch = []
        batch.append(record)
    if batch:
        yield Page(records=batch, cursor_after=cursor_after)


def _scoped(call: Any, *args: Any) -> Any:
    """``call(*args)``, or None when DingTalk says the department is outside the app's scope."""
    try:
        return call(*args)
    except PermanentError as exc:
        if exc.code in _OUT_OF_SCOPE:
            return None
        raise


def department_tree(client: DingTalkClient) -> dict[int, dict[str, Any]]:
    """Every visible department: id → ``{"name", "parent_id", "leaders": []}``."""
    tree: dict[int, dict[str, Any]] = {}
    root = _scoped(client.get_department, ROOT_DEPARTMENT) or {"dept_id": ROOT_DEPARTMENT, "name": None}
    tree[ROOT_DEPARTMENT] = {"name": root.get("name"), "parent_id": None, "leaders": []}
    frontier = [ROOT_DEPARTMENT]
    while frontier:
        parent = frontier.pop()
        for child in _scoped(client.list_subdepartments, parent) or []:
            dept_id = child.get("dept_id")
            if isinstance(dept_id, int) and dept_id not in tree:
                tree[dept_id] = {"name": child.get("name"), "parent_id": child.get("parent_id", parent),
                                 "leaders": []}
                frontier.append(dept_id)
    return tree


def _members(client: DingTalkClient, tree: dict[int, dict[str, Any]]) -> list[RawRecord]:
    """Every member once (first listing wins), noting department leaders in ``tree``; a
    row without a userid is kept as it is (the mapping quarantines it with the reason)."""
    members: dict[str, RawRecord] = {}
    unnamed: list[RawRecord] = []
    for dept_id in sorted(tree):
        for page in _scoped(lambda d: list(client.iter_user_pages(d)), dept_id) or []:
            for member in page:
                userid = member.get("userid")
                if not isinstance(userid, str) or not userid:
                    unnamed.append(member)
                    continue
                if member.get("leader") is True:
                    tree[dept_id]["leaders"].append(userid)
                members.setdefault(userid, member)
    return [*members.values(), *unnamed]


def _chain(tree: dict[int, dict[str, Any]], member: RawRecord) -> dict[str, dict[str, Any]]:
    """The member's first department and its ancestors, by str(id) (JSON-safe)."""
    dept_ids = member.get("dept_id_list")
    current = dept_ids[0] if isinstance(dept_ids, list) and dept_ids else None
    chain: dict[str, dict[str, Any]] = {}
    while isinstance(current, int) and current in tree and str(current) not in chain:
        node = tree[current]
        chain[str(current)] = {"name": node["name"], "parent_id": node["parent_id"],
                               "leaders": sorted(node["leaders"])}
        current = node["parent_id"]
    return chain


def read_directory(client: DingTalkClient, cursor: str | None) -> Iterator[Page]:
    """Full read of the visible directory; ``cursor`` is ignored (no incremental API)."""
    tree = department_tree(client)
    members = _members(client, tree)
    yield from _pages({**member, DEPARTMENTS_KEY: _chain(tree, member)} for member in members)


def _completed(client: DingTalkClient, card: RawRecord) -> RawRecord:
    """The card with the to-do's detail and the userid of whoever completed it."""
    detail = client.get_todo(str(card["taskId"])) or {}
    executors = [e for e in detail.get("executorIds") or [] if isinstance(e, str)]
    finisher = detail.get("modifierId") or (executors[0] if len(executors) == 1 else None)
    userid = client.userid_of(finisher) if isinstance(finisher, str) and finisher else None
    return {**card, DETAIL_KEY: {k: detail.get(k) for k in ("done", "finishTime", "modifierId", "executorIds")},
            COMPLETED_BY_KEY: userid}


def read_todo_completions(client: DingTalkClient, cursor: str | None) -> Iterator[Page]:
    """Completed hub to-dos modified since ``cursor`` (milliseconds, as text) less the overlap."""
    if not client.polls_todo_completions:
        return
    since = int(cursor) - OVERLAP_MS if cursor and cursor.isdigit() else 0
    fresh: list[RawRecord] = []
    for page in client.iter_todo_pages(done=True, role="creator"):
        for card in page:
            source = card.get("sourceId")
            if not isinstance(source, str) or not source.startswith(HUB_SOURCE_PREFIX):
                continue
            modified = card.get("modifiedTime")
            if isinstance(modified, int) and modified <= since:
                continue
            fresh.append(card)
    fresh.sort(key=lambda c: (c.get("modifiedTime") if isinstance(c.get("modifiedTime"), int) else 0,
                              str(c.get("taskId"))))
    newest = max((c["modifiedTime"] for c in fresh if isinstance(c.get("modifiedTime"), int)), default=None)
    records = (_completed(client, card) if isinstance(card.get("taskId"), str) else card for card in fresh)
    yield from _pages(records, cursor_after=str(newest) if newest is not None else None)


DIRECTORY = StreamSpec(name="directory", source_object="user", target="internal_user", key_field="userid",
                       cursor_field=None, read_pages=read_directory, map_record=map_directory_user)

TODO_COMPLETIONS = StreamSpec(
    name="todo_completions", source_object="todo", target="task_completion", key_field="taskId",
    cursor_field="modifiedTime", read_pages=read_todo_completions, map_record=map_todo_completion,
    depends_on=("directory",),  # who completed it resolves to an internal user
)

STREAMS = (DIRECTORY, TODO_COMPLETIONS)

__all__ = [
    "DIRECTORY",
    "HUB_SOURCE_PREFIX",
    "OVERLAP_MS",
    "PAGE_SIZE",
    "STREAMS",
    "TODO_COMPLETIONS",
    "department_tree",
    "read_directory",
    "read_todo_completions",
]
