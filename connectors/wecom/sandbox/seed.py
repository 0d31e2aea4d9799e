"""Deterministic demo organisation: departments, employees and WeCom customers.

Pure functions of a seed, no I/O. The WeCom sandbox serves this data, and the hub's CRM
demo builds its salespeople and customers from the same functions, so that a reminder for
"王伟's customer 苏州恒瑞精密机械有限公司" lands on a WeCom user the sandbox knows.

- :func:`demo_departments` — the department tree (a root, a sales centre with regional
  sales departments 华东/华南/华北/西南/华中销售部, service, finance, IT).
- :func:`demo_directory` — 40 employees with userid, Chinese name, mobile, email,
  department and manager; every sales rep has a manager (the regional manager, who is
  that department's ``department_leader``).
- :func:`demo_customer_companies` — the companies the CRM demo should know.
- :func:`demo_external_contacts` — ~300 WeCom external contacts (customers' purchasing
  managers etc.) followed by the sales reps; most work for a company from
  :func:`demo_customer_companies`, some for companies nobody knows (identity resolution
  must leave them unmatched), some are personal WeChat users whose company is only in
  the rep's remark.

Field names follow the WeCom wire format (reference/messaging-apis.md §1.2 and the
user/get page https://developer.work.weixin.qq.com/document/path/96255).
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field

DEFAULT_SEED = 20240601

# Reserved example domain: demo data must never mail a real company.
EMAIL_DOMAIN = "xinghe-precision.example.com"

_SURNAMES = (
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang"),
    ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"), ("徐", "xu"), ("孙", "sun"),
    ("马", "ma"), ("朱", "zhu"), ("胡", "hu"), ("郭", "guo"), ("何", "he"), ("林", "lin"),
    ("高", "gao"), ("罗", "luo"), ("郑", "zheng"), ("梁", "liang"), ("谢", "xie"), ("宋", "song"),
    ("唐", "tang"), ("韩", "han"), ("冯", "feng"), ("邓", "deng"), ("曹", "cao"), ("彭", "peng"),
)
_GIVEN = (
    ("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"),
    ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("勇", "yong"), ("艳", "yan"),
    ("杰", "jie"), ("娟", "juan"), ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("秀英", "xiuying"),
    ("霞", "xia"), ("平", "ping"), ("刚", "gang"), ("桂英", "guiying"), ("建华", "jianhua"),
    ("志强", "zhiqiang"), ("海燕", "haiyan"), ("晓东", "xiaodong"), ("文博", "wenbo"),
    ("子涵", "zihan"), ("雨桐", "yutong"), ("思远", "siyuan"), ("嘉怡", "jiayi"), ("浩然", "haoran"),
    ("婷", "ting"), ("鹏", "peng"), ("辉", "hui"), ("欣怡", "xinyi"), ("国庆", "guoqing"), ("春梅", "chunmei"),
)
_MOBILE_PREFIXES = ("135", "136", "137", "138", "139", "150", "151", "158", "159", "186", "187", "188", "177")

ROOT_DEPARTMENT_ID = 1
SALES_CENTRE_ID = 2


@dataclass(frozen=True)
class DemoDepartment:
    """One WeCom department (``department/list`` row)."""

    id: int
    name: str
    name_en: str
    parentid: int
    order: int
    region: str | None = None  # sales region served, for the regional sales departments


_DEPARTMENTS = (
    DemoDepartment(ROOT_DEPARTMENT_ID, "星河精工仪器有限公司", "Xinghe Precision", 0, 100000000),
    DemoDepartment(SALES_CENTRE_ID, "销售中心", "Sales Centre", 1, 99999000),
    DemoDepartment(3, "华东销售部", "East China Sales", 2, 99998000, "华东"),
    DemoDepartment(4, "华南销售部", "South China Sales", 2, 99997000, "华南"),
    DemoDepartment(5, "华北销售部", "North China Sales", 2, 99996000, "华北"),
    DemoDepartment(6, "西南销售部", "Southwest Sales", 2, 99995000, "西南"),
    DemoDepartment(7, "华中销售部", "Central China Sales", 2, 99994000, "华中"),
    DemoDepartment(8, "客户服务部", "Customer Service", 1, 99993000),
    DemoDepartment(9, "财务部", "Finance", 1, 99992000),
    DemoDepartment(10, "信息技术部", "IT", 1, 99991000),
)
_SALES_DEPARTMENT_IDS = (3, 4, 5, 6, 7)
# Regions whose reps have WeCom's direct_leader filled in; elsewhere the manager is only
# visible as the department's department_leader (both happen in real corps).
_REGIONS_WITH_DIRECT_LEADER = frozenset({3, 4, 5})


@dataclass(frozen=True)
class DemoUser:
    """One employee, with the facts the CRM demo and the WeCom sandbox share."""

    userid: str
    name: str
    mobile: str
    email: str
    department: str  # main department name
    department_id: int  # main department id
    departments: tuple[int, ...]  # every membership, main first
    position: str
    manager_userid: str | None  # the truth; WeCom shows it via direct_leader or department_leader
    direct_leader: tuple[str, ...]  # what user/get returns in direct_leader (may be empty)
    is_leader_in_dept: tuple[int, ...]  # parallel to ``departments``
    gender: str  # "1" male, "2" female (WeCom sends a string)
    status: int = 1  # 1 active, 2 disabled, 4 not yet activated
    is_sales_rep: bool = False


@dataclass(frozen=True)
class DemoCompany:
    """A customer company: full registered name, short name, city and sales region."""

    full_name: str
    short_name: str
    city: str
    region: str


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


def demo_departments() -> tuple[DemoDepartment, ...]:
    """The department tree (fixed: names are part of the demo script)."""
    return _DEPARTMENTS


def _department(dept_id: int) -> DemoDepartment:
    return next(d for d in _DEPARTMENTS if d.id == dept_id)


class _NamePool:
    """Draws unique Chinese names with matching pinyin userids and unique mobiles."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._userids: set[str] = set()
        self._mobiles: set[str] = set()

    def person(self) -> tuple[str, str, str]:
        """Return (name, userid, gender)."""
        surname, surname_py = self._rng.choice(_SURNAMES)
        given, given_py = self._rng.choice(_GIVEN)
        base = surname_py + given_py
        userid, n = base, 2
        while userid in self._userids:  # 王伟 twice: wangwei, wangwei2 (as admins do)
            userid, n = f"{base}{n}", n + 1
        self._userids.add(userid)
        female = given in {"芳", "娜", "敏", "静", "丽", "艳", "娟", "秀英", "霞", "桂英", "海燕",
                           "子涵", "雨桐", "嘉怡", "婷", "欣怡", "春梅"}
        return surname + given, userid, "2" if female else "1"

    def mobile(self) -> str:
        while True:
            number = self._rng.choice(_MOBILE_PREFIXES) + "".join(self._rng.choices(string.digits, k=8))
            if number not in self._mobiles:
                self._mobiles.add(number)
                return number


def demo_directory(seed: int = DEFAULT_SEED) -> tuple[DemoUser, ...]:
    """The 40 employees of the demo corp, deterministic for a given seed.

    Structure: a general manager (root leader); a sales director (leads 销售中心, also a
    member of 华东销售部); one manager and five reps per sales region; service, finance
    and IT teams with their heads. Every user except the general manager has a
    ``manager_userid``. One rep is disabled (status 2) and one not yet activated
    (status 4), as in any real directory.
    """
    rng = random.Random(seed)
    pool = _NamePool(rng)
    users: list[DemoUser] = []

    def add(
        dept_ids: tuple[int, ...], position: str, manager: str | None, *, leads: tuple[int, ...] = (),
        direct_leader: bool = True, rep: bool = False, status: int = 1,
    ) -> DemoUser:
        name, userid, gender = pool.person()
        main = _department(dept_ids[0])
        user = DemoUser(
            userid=userid, name=name, mobile=pool.mobile(), email=f"{userid}@{EMAIL_DOMAIN}",
            department=main.name, department_id=main.id, departments=dept_ids, position=position,
            manager_userid=manager,
            direct_leader=(manager,) if manager and direct_leader else (),
            is_leader_in_dept=tuple(1 if d in leads else 0 for d in dept_ids),
            gender=gender, status=status, is_sales_rep=rep,
        )
        users.append(user)
        return user

    ceo = add((ROOT_DEPARTMENT_ID,), "总经理", None, leads=(ROOT_DEPARTMENT_ID,))
    director = add((SALES_CENTRE_ID, 3), "销售总监", ceo.userid, leads=(SALES_CENTRE_ID,))
    rep_counter = 0
    for dept_id in _SALES_DEPARTMENT_IDS:
        manager = add((dept_id,), "区域销售经理", director.userid, leads=(dept_id,))
        for i in range(5):
            rep_counter += 1
            status = 2 if rep_counter == 9 else 4 if rep_counter == 17 else 1
            add(
                (dept_id,), "高级销售代表" if i == 0 else "销售代表", manager.userid,
                direct_leader=dept_id in _REGIONS_WITH_DIRECT_LEADER, rep=True, status=status,
            )
    service_head = add((8,), "客服主管", ceo.userid, leads=(8,))
    add((8,), "客服专员", service_head.userid)
    add((8,), "客服专员", service_head.userid)
    finance_head = add((9,), "财务经理", ceo.userid, leads=(9,))
    add((9,), "应收会计", finance_head.userid)
    add((9,), "出纳", finance_head.userid)
    it_head = add((10,), "信息技术经理", ceo.userid, leads=(10,))
    add((10, 8), "系统管理员", it_head.userid)
    return tuple(users)


_CITIES = (
    ("苏州", "华东"), ("无锡", "华东"), ("宁波", "华东"), ("杭州", "华东"), ("南京", "华东"), ("上海", "华东"),
    ("深圳", "华南"), ("东莞", "华南"), ("佛山", "华南"), ("广州", "华南"), ("厦门", "华南"),
    ("天津", "华北"), ("北京", "华北"), ("青岛", "华北"), ("济南", "华北"),
    ("成都", "西南"), ("重庆", "西南"), ("昆明", "西南"),
    ("武汉", "华中"), ("长沙", "华中"), ("郑州", "华中"),
)
_BRANDS = (
    "恒瑞", "华锐", "博远", "鼎盛", "中科", "天成", "金鹏", "瑞达", "宏图", "国泰", "永信", "安捷",
    "凯华", "新宇", "精诚", "联创", "亿丰", "海川", "同力", "德润", "裕隆", "正泰", "汇通", "盛世",
)
# Brands no CRM customer uses: contacts at these companies must stay unmatched.
_UNKNOWN_BRANDS = ("蓝鲸", "极光", "云帆", "青松", "北辰", "星火", "远洋", "晨曦")
_INDUSTRIES = (
    ("精密机械", "精密"), ("电子科技", "电子"), ("自动化设备", "自动化"), ("新材料", "新材料"),
    ("汽车零部件", "汽配"), ("医疗器械", "医疗"), ("化工", "化工"), ("智能装备", "智能"),
    ("环保科技", "环保"), ("食品", "食品"),
)
_SUFFIXES = ("有限公司", "有限公司", "股份有限公司", "集团有限公司")
_CONTACT_POSITIONS = (
    "采购经理", "采购经理", "采购总监", "采购专员", "设备部主管", "总经理", "副总经理", "技术总监",
    "生产经理", "财务总监", "质量部经理",
)
_TAGS = (
    ("客户等级", "A类客户", "etAAAA0001"), ("客户等级", "B类客户", "etAAAA0002"),
    ("客户等级", "C类客户", "etAAAA0003"), ("来源", "展会", "etBBBB0001"),
    ("来源", "转介绍", "etBBBB0002"), ("来源", "官网咨询", "etBBBB0003"),
)


def _company(rng: random.Random, brand: str) -> DemoCompany:
    city, region = rng.choice(_CITIES)
    industry, industry_short = rng.choice(_INDUSTRIES)
    return DemoCompany(
        full_name=f"{city}{brand}{industry}{rng.choice(_SUFFIXES)}",
        short_name=f"{brand}{industry_short}", city=city, region=region,
    )


def demo_customer_companies(seed: int = DEFAULT_SEED) -> tuple[DemoCompany, ...]:
    """The customer companies the CRM demo should hold (one per brand, unique names)."""
    rng = random.Random(seed * 7 + 1)
    return tuple(_company(rng, brand) for brand in _BRANDS)


def _unknown_companies(seed: int) -> tuple[DemoCompany, ...]:
    rng = random.Random(seed * 7 + 2)
    return tuple(_company(rng, brand) for brand in _UNKNOWN_BRANDS)


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
    users = demo_directory(seed)
    reps_by_region: dict[str, list[DemoUser]] = {}
    for user in users:
        if user.is_sales_rep and user.status == 1:
            region = _department(user.department_id).region or ""
            reps_by_region.setdefault(region, []).append(user)
    all_reps = [u for reps in reps_by_region.values() for u in reps]
    known = demo_customer_companies(seed)
    unknown = _unknown_companies(seed)
    pool = _NamePool(random.Random(seed * 7 + 4))
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
