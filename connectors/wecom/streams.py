"""What the hub reads from WeCom, described as data (``StreamSpec`` entries).

Both streams are full reads: WeCom offers no modify-time filter on members or external
contacts, so every run re-reads everything and the engine's content hash skips
unchanged rows. Pages hold at most :data:`PAGE_SIZE` records.

- ``directory`` (→ ``internal_user``): departments (``department/list``; falls back to
  ``department/simplelist`` when refused — contact-sync secrets from new IPs since
  2022-08-15, reference/messaging-apis.md §1.2), then userids via ``user/list_id`` and one
  ``user/get`` each; if ``user/list_id`` is refused (it is meant for the contact-sync
  secret, §1.2) the members are read per department with ``user/list``. Each member gets
  the names and leaders of its main department and that department's ancestors under
  ``mapping.DEPARTMENTS_KEY`` — only that chain, so a change elsewhere in the tree does
  not change the record's content hash.
- ``external_contacts`` (→ ``contact``): follow users (``get_follow_user_list``), then
  ``externalcontact/batch/get_by_user`` for ≤100 of them at a time, cursor-paged by the client. A
  customer followed by several reps comes back once per rep; the stream keeps the first
  relation it meets (follow users in sorted order), so the canonical contact has one
  owner. Each row gets a top-level ``external_userid`` copy for quarantine references.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from connectors.wecom.client import WeComClient
from connectors.wecom.mapping import DEPARTMENTS_KEY, map_directory_user, map_external_contact
from hub.contracts import Page, RawRecord, StreamSpec
from hub.errors import PermanentError

PAGE_SIZE = 200
BATCH_USERS = 100  # batch/get_by_user takes ≤100 userids (§1.2)
BATCH_LIMIT = 100  # and ≤100 rows per page
# Codes meaning "this app/secret may not call that API here": api forbidden (48002),
# no privilege (60011), IP not trusted (60020) — try the alternative read path.
_REFUSED = frozenset({"48002", "60011", "60020"})
# A member listed a moment ago but gone or hidden by now: skip it, the next run settles it.
_MEMBER_GONE = frozenset({"60111", "60011", "46004"})


def _pages(records: Iterable[RawRecord]) -> Iterator[Page]:
    buffer: list[RawRecord] = []
    for record in records:
        buffer.append(record)
        if len(buffer) >= PAGE_SIZE:
            yield Page(records=buffer)
            buffer = []
    if buffer:
        yield Page(records=buffer)


def _department_index(client: WeComClient) -> dict[int, dict[str, Any]]:
    try:
        rows = client.department_list()
    except PermanentError as exc:
        if exc.code not in _REFUSED:
            raise
        rows = [{**row, "name": None, "department_leader": []} for row in client.department_simplelist()]
    index: dict[int, dict[str, Any]] = {}
    for row in rows:
        if isinstance(row.get("id"), int):
            index[row["id"]] = {
                "name": row.get("name"), "parentid": row.get("parentid"),
                "department_leader": list(row.get("department_leader") or []),
            }
    return index


def _chain(index: dict[int, dict[str, Any]], member: RawRecord) -> dict[str, dict[str, Any]]:
    """The member's main department and its ancestors, keyed by str(id) (JSON-safe)."""
    main = member.get("main_department")
    if not isinstance(main, int):
        departments = [d for d in member.get("department") or [] if isinstance(d, int)]
        main = departments[0] if departments else None
    chain: dict[str, dict[str, Any]] = {}
    while isinstance(main, int) and main in index and str(main) not in chain:
        chain[str(main)] = index[main]
        parent = index[main].get("parentid")
        main = parent if isinstance(parent, int) and parent > 0 else None
    return chain


def _members(client: WeComClient, index: dict[int, dict[str, Any]]) -> Iterator[RawRecord]:
    try:
        userids = client.list_user_ids()
    except PermanentError as exc:
        if exc.code not in _REFUSED:
            raise
        seen: set[str] = set()
        for dept_id in sorted(index):
            for member in client.department_users(dept_id):
                userid = member.get("userid")
                if isinstance(userid, str) and userid not in seen:
                    seen.add(userid)
                    yield member
        return
    for userid in userids:
        try:
            yield client.get_user(userid)
        except PermanentError as exc:
            if exc.code not in _MEMBER_GONE:
                raise


def read_directory(client: WeComClient, cursor: str | None) -> Iterator[Page]:
    """Full read of the visible directory; ``cursor`` is ignored (no incremental API)."""
    index = _department_index(client)

    def enriched() -> Iterator[RawRecord]:
        for member in _members(client, index):
            yield {**member, DEPARTMENTS_KEY: _chain(index, member)}

    yield from _pages(enriched())


def read_external_contacts(client: WeComClient, cursor: str | None) -> Iterator[Page]:
    """Full read of every follow user's customers; one record per external contact."""
    follow_users = sorted(set(client.get_follow_user_list()))

    def rows() -> Iterator[RawRecord]:
        seen: set[str] = set()
        for start in range(0, len(follow_users), BATCH_USERS):
            chunk = follow_users[start:start + BATCH_USERS]
            for page in client.iter_external_contact_pages(chunk, limit=BATCH_LIMIT):
                for row in page:
                    contact = row.get("external_contact")
                    external_userid = contact.get("external_userid") if isinstance(contact, dict) else None
                    if isinstance(external_userid, str) and external_userid:
                        if external_userid in seen:
                            continue
                        seen.add(external_userid)
                    yield {**row, "external_userid": external_userid}

    yield from _pages(rows())


DIRECTORY = StreamSpec(
    name="directory",
    source_object="user",
    target="internal_user",
    key_field="userid",
    cursor_field=None,
    read_pages=read_directory,
    map_record=map_directory_user,
)

EXTERNAL_CONTACTS = StreamSpec(
    name="external_contacts",
    source_object="external_contact",
    target="contact",
    key_field="external_userid",
    cursor_field=None,
    read_pages=read_external_contacts,
    map_record=map_external_contact,
    depends_on=("directory",),  # owners (follow users) resolve to internal users
)

STREAMS = (DIRECTORY, EXTERNAL_CONTACTS)

__all__ = [
    "DIRECTORY",
    "EXTERNAL_CONTACTS",
    "PAGE_SIZE",
    "STREAMS",
    "read_directory",
    "read_external_contacts",
]
