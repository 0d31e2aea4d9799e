"""The WeCom sandbox's seed: the demo universe's people and companies, plus WeCom's own
external contacts (customers' employees the sales reps follow).

- :func:`demo_external_contacts` — ~300 WeCom external contacts (customers' purchasing
  managers etc.) followed by the sales reps; most work for a company from
  :func:`~connectors.kit.sandbox.universe.demo_customer_companies` (which the Kingdee
  sandbox holds as customers), some for companies nobody knows (identity resolution must
  leave them unmatched), some are personal WeChat users whose company is only in the
  rep's remark.

Field names follow the WeCom wire format (reference/messaging-apis.md §1.2).
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field

from connectors.kit.sandbox.universe import (
    DEFAULT_SEED,
    EMAIL_DOMAIN,
    ROOT_DEPARTMENT_ID,
    DemoCompany,
    DemoDepartment,
    DemoUser,
    NamePool,
    demo_customer_companies,
    demo_departments,
    demo_directory,
    regional_reps,
    unknown_companies,
)


@dataclass(frozen=True)
class DemoFollow:
    """One rep's relation to an external contact (WeCom ``follow_user`` entry)."""

    userid: str
    remark: str
    description: str
    createtime: int
    tags: tuple[tuple[str, str, str], ...]  # (group_name, tag_name, tag_id)
    remark_corp_name: str
    remark_mobiles: tuple[str, ...]
    add_way: int
    state: str = ""


@dataclass(frozen=True)
class DemoExternalContact:
    """A WeCom external contact (a customer's employee) and who follows them."""

    external_userid: str
    name: str
    type: int  # 1 personal WeChat, 2 WeCom user of another corp
    gender: int
    position: str
    corp_name: str  # empty for personal WeChat users
    corp_full_name: str
    unionid: str
    follows: tuple[DemoFollow, ...]
    company: DemoCompany | None = field(default=None, compare=False)
    known_company: bool = True  # False when the company is not in demo_customer_companies


_CONTACT_POSITIONS = (
    "采购经理", "采购经理", "采购总监", "采购专员", "设备部主管", "总经理", "副总经理", "技术总监",
    "生产经理", "财务总监", "质量部经理",
)
_TAGS = (
    ("客户等级", "A类客户", "etAAAA0001"), ("客户等级", "B类客户", "etAAAA0002"),
    ("客户等级", "C类客户", "etAAAA0003"), ("来源", "展会", "etBBBB0001"),
    ("来源", "转介绍", "etBBBB0002"), ("来源", "官网咨询", "etBBBB0003"),
)


def _external_userid(rng: random.Random) -> str:
    # Real ids look like "wmqfasd1e1927831291723123109r712": a 2-letter prefix + 30 chars.
    return "wm" + "".join(rng.choices(string.ascii_letters + string.digits + "_-", k=30))


def demo_external_contacts(seed: int = DEFAULT_SEED, count: int = 300) -> tuple[DemoExternalContact, ...]:
    """``count`` external contacts followed by the active sales reps of the matching region.

    Mix (deterministic): ~60 % WeCom users with ``corp_name``/``corp_full_name``; ~40 %
    personal WeChat users whose company only appears as the rep's ``remark_corp_name``
    (sometimes missing); ~10 % at companies unknown to the CRM; ~15 % followed by a second
    rep as well; two whose WeChat nickname is blank (unmappable: quarantine material).
    """
    rng = random.Random(seed * 7 + 3)
    reps_by_region = regional_reps(seed)
    all_reps = [u for reps in reps_by_region.values() for u in reps]
    known = demo_customer_companies(seed)
    unknown = unknown_companies(seed)
    pool = NamePool(random.Random(seed * 7 + 4))
    contacts: list[DemoExternalContact] = []
    base_time = 1672531200  # 2023-01-01T00:00:00Z: contacts were added during 2023-2024
    seen_ids: set[str] = set()
    for index in range(count):
        roll = rng.random()
        is_known = roll >= 0.10
        company = rng.choice(known) if is_known else rng.choice(unknown)
        contact_type = 2 if rng.random() < 0.6 else 1
        name, _, gender = pool.person()
        if index in (57, 211):  # WeChat allows nicknames of invisible characters
            name = "\u3000" if index == 57 else "  "
        external_userid = _external_userid(rng)
        while external_userid in seen_ids:
            external_userid = _external_userid(rng)
        seen_ids.add(external_userid)
        reps = reps_by_region.get(company.region) or all_reps
        owners = [rng.choice(reps)]
        if rng.random() < 0.15:
            second = rng.choice(all_reps)
            if second.userid != owners[0].userid:
                owners.append(second)
        mobile = pool.mobile()
        follows = []
        for position_in_list, owner in enumerate(owners):
            tag = rng.choice(_TAGS)
            has_remark_corp = contact_type == 2 or rng.random() < 0.75
            follows.append(DemoFollow(
                userid=owner.userid,
                remark=(f"{name.strip()}-{company.short_name}" if name.strip() else ""),
                description=rng.choice(("关注新品报价", "年度框架协议对接人", "设备更新项目", "", "")),
                createtime=base_time + rng.randrange(0, 700 * 86400) + position_in_list * 86400,
                tags=(tag,),
                remark_corp_name=(rng.choice((company.full_name, company.short_name)) if has_remark_corp else ""),
                remark_mobiles=(mobile,) if rng.random() < 0.7 else (),
                add_way=rng.choice((1, 2, 3, 201)),
                state=rng.choice(("", "", "expo2024", "website")),
            ))
        contacts.append(DemoExternalContact(
            external_userid=external_userid, name=name, type=contact_type,
            gender=1 if gender == "1" else 2, position=rng.choice(_CONTACT_POSITIONS),
            corp_name=company.short_name if contact_type == 2 else "",
            corp_full_name=company.full_name if contact_type == 2 else "",
            unionid="o" + "".join(rng.choices(string.ascii_letters + string.digits, k=27)),
            follows=tuple(follows), company=company, known_company=is_known,
        ))
    return tuple(contacts)


__all__ = [
    "DEFAULT_SEED",
    "EMAIL_DOMAIN",
    "ROOT_DEPARTMENT_ID",
    "DemoCompany",
    "DemoDepartment",
    "DemoExternalContact",
    "DemoFollow",
    "DemoUser",
    "demo_customer_companies",
    "demo_departments",
    "demo_directory",
    "demo_external_contacts",
]
