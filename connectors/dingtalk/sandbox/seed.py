"""The DingTalk sandbox's seed: the demo universe's company as DingTalk shows it.

Same departments and the same 40 people as every other sandbox
(:mod:`connectors.kit.sandbox.universe`), so the CRM demo's users are found in DingTalk by
mobile exactly as in WeCom. What DingTalk adds is derived deterministically from each
person's universe id, so every run (and `hub sandbox dingtalk` in another process) agrees:

- ``userid``: DingTalk assigns numeric-looking ids (``"0123456789012345"``): 16 digits;
- ``unionid``: the cross-app id to-dos use, 26 letters and digits ending in ``iE`` (the
  shape of real ones, e.g. ``"xxxxiiSiPYmE6cUTQiiVSwiEiE"``);
- ``manager_userid`` (直属主管): filled in where the universe gives WeCom a ``direct_leader``;
  elsewhere the manager shows only as the leader (``leader``) of the member's department;
- ``active``: DingTalk's "activated"; the universe's disabled and not-yet-activated
  members are not active.

Field names follow ``topapi/v2/user/list`` (reference/messaging-apis.md §2.2).
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass

from connectors.kit.sandbox.universe import (
    DEFAULT_SEED,
    ROOT_DEPARTMENT_ID,
    DemoDepartment,
    DemoUser,
    demo_departments,
    demo_directory,
)

_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class DingTalkMember:
    """One member as DingTalk's directory holds them."""

    userid: str
    unionid: str
    name: str
    mobile: str
    email: str
    title: str
    job_number: str
    dept_id_list: tuple[int, ...]
    leader_in: frozenset[int]  # departments this member leads
    manager_userid: str  # "" when DingTalk has no direct manager on record
    active: bool
    person: DemoUser  # the universe's person behind the account


def _digest(seed: int, kind: str, person: str) -> bytes:
    return hashlib.sha256(f"dingtalk:{seed}:{kind}:{person}".encode()).digest()


def dingtalk_userid(seed: int, person: str) -> str:
    """The DingTalk userid of the universe's ``person`` (16 digits)."""
    return str(int.from_bytes(_digest(seed, "userid", person)[:8], "big")).zfill(20)[-16:]


def dingtalk_unionid(seed: int, person: str) -> str:
    """The DingTalk unionId of the universe's ``person`` (26 characters ending in ``iE``)."""
    raw = _digest(seed, "unionid", person)
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in raw[:24]) + "iE"


def dingtalk_directory(seed: int = DEFAULT_SEED) -> tuple[DingTalkMember, ...]:
    """The universe's 40 people as DingTalk members."""
    people = demo_directory(seed)
    userids = {p.userid: dingtalk_userid(seed, p.userid) for p in people}
    return tuple(
        DingTalkMember(
            userid=userids[p.userid], unionid=dingtalk_unionid(seed, p.userid), name=p.name,
            mobile=p.mobile, email=p.email, title=p.position, job_number=f"XH{index + 1:04d}",
            dept_id_list=p.departments,
            leader_in=frozenset(d for d, leads in zip(p.departments, p.is_leader_in_dept, strict=True) if leads),
            manager_userid=userids.get(p.direct_leader[0], "") if p.direct_leader else "",
            active=p.status == 1, person=p,
        )
        for index, p in enumerate(people)
    )


__all__ = [
    "DEFAULT_SEED",
    "ROOT_DEPARTMENT_ID",
    "DemoDepartment",
    "DingTalkMember",
    "demo_departments",
    "dingtalk_directory",
    "dingtalk_unionid",
    "dingtalk_userid",
]
