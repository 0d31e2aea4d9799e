"""The demo universe every sandbox is seeded from: one company, its people, its customers.

Pure functions of a seed, no I/O. 星河精工仪器有限公司 runs the hub: its departments and 40
employees (the WeCom directory, the Kingdee salespeople, the CRM users), its customer
companies (Kingdee customers with these names and credit codes; the WeCom contacts work
for them) and the prospects only the CRM knows yet. So sandboxes started one by one agree
with each other exactly as when the demo starts them: a reminder for "王伟's customer
苏州恒瑞精密机械有限公司" lands on a WeCom user, and that company is in the ERP.

- :func:`demo_departments` — the department tree (a root, a sales centre with regional
  sales departments 华东/华南/华北/西南/华中销售部, service, finance, IT).
- :func:`demo_directory` — 40 employees with userid, Chinese name, mobile, email,
  department and manager; every sales rep has a manager (the regional manager, who is
  that department's ``department_leader``).
- :func:`demo_customer_companies` — the customer companies (in the ERP, with valid
  unified social credit codes); :func:`unknown_companies` — companies nobody's records
  hold (contacts there must stay unmatched); :func:`prospect_companies` — the CRM's own
  prospects, not in the ERP yet (their first approved order creates them there).

People's field names follow the WeCom wire format (reference/messaging-apis.md §1.2 and
the user/get page https://developer.work.weixin.qq.com/document/path/96255): userid is
the stable key every sandbox uses.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

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
    """A company: full registered name, short name, city, sales region, credit code."""

    full_name: str
    short_name: str
    city: str
    region: str
    credit_code: str = ""


def demo_departments() -> tuple[DemoDepartment, ...]:
    """The department tree (fixed: names are part of the demo script)."""
    return _DEPARTMENTS


def _department(dept_id: int) -> DemoDepartment:
    return next(d for d in _DEPARTMENTS if d.id == dept_id)


class NamePool:
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
    pool = NamePool(rng)
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
# Prospects: brands only the CRM knows (not in the ERP, not among the WeCom contacts' firms).
_PROSPECT_BRANDS = (
    "启明", "华夏", "长风", "锦程", "天诺", "卓越", "恒通", "佳禾", "明德", "东升", "新锐", "昊天",
    "同创", "和信", "通达", "安泰", "瑞丰", "光华", "金桥", "远航", "振华", "嘉业", "泰和", "宏达",
)
# GB 32100-2015 check character (the hub's identity module validates it the same way).
_CODE_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CODE_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_DIVISIONS = {"华东": "320505", "华南": "440305", "华北": "110108", "西南": "510107", "华中": "420111"}


def credit_code(region: str, serial: int) -> str:
    """A valid unified social credit code for demo company ``serial`` of ``region``."""
    body = f"91{_DIVISIONS.get(region, '310115')}MA{serial:07d}"[:17]
    total = sum(_CODE_CHARS.index(ch) * w for ch, w in zip(body, _CODE_WEIGHTS, strict=True))
    return body + _CODE_CHARS[(31 - total % 31) % 31]


def _company(rng: random.Random, brand: str, serial: int) -> DemoCompany:
    city, region = rng.choice(_CITIES)
    industry, industry_short = rng.choice(_INDUSTRIES)
    return DemoCompany(
        full_name=f"{city}{brand}{industry}{rng.choice(_SUFFIXES)}",
        short_name=f"{brand}{industry_short}", city=city, region=region, credit_code=credit_code(region, serial),
    )


def demo_customer_companies(seed: int = DEFAULT_SEED) -> tuple[DemoCompany, ...]:
    """The customer companies: in the ERP, with the WeCom contacts (one per brand, unique names)."""
    rng = random.Random(seed * 7 + 1)
    return tuple(_company(rng, brand, 100 + i) for i, brand in enumerate(_BRANDS))


def unknown_companies(seed: int = DEFAULT_SEED) -> tuple[DemoCompany, ...]:
    """Companies some WeCom contacts work for that no system's records hold."""
    rng = random.Random(seed * 7 + 2)
    return tuple(_company(rng, brand, 200 + i) for i, brand in enumerate(_UNKNOWN_BRANDS))


def prospect_companies(seed: int = DEFAULT_SEED) -> tuple[DemoCompany, ...]:
    """The CRM's own prospects, not in the ERP yet."""
    rng = random.Random(seed * 7 + 5)
    return tuple(_company(rng, brand, 300 + i) for i, brand in enumerate(_PROSPECT_BRANDS))


# What the CRM demo sells (hub.demo.data.PRODUCTS): code, name, unit. Every ERP sandbox carries
# these products, so a pushed demo order references products the ERP knows.
CATALOG = (
    ("P-1001", "工业网关 G200", "TAI"), ("P-1002", "边缘计算盒 E10", "TAI"), ("P-2001", "MES 软件许可（年）", "SET"),
    ("P-2002", "实施服务（人天）", "SET"), ("P-3001", "传感器套件 S5", "SET"),
)


def sales_team(seed: int = DEFAULT_SEED) -> tuple[DemoUser, ...]:
    """The people who sell (regional managers and reps): the ERP's salespeople (销售员)."""
    return tuple(u for u in demo_directory(seed) if u.is_sales_rep or u.position == "区域销售经理")


def regional_reps(seed: int = DEFAULT_SEED) -> dict[str, list[DemoUser]]:
    """Active sales reps by the region their department serves."""
    reps: dict[str, list[DemoUser]] = {}
    for user in demo_directory(seed):
        if user.is_sales_rep and user.status == 1:
            reps.setdefault(_department(user.department_id).region or "", []).append(user)
    return reps


def crm_seed(seed: int = DEFAULT_SEED) -> dict[str, list[dict[str, object]]]:
    """What the CRM demo data set holds: the people (as CRM users, keyed ``crm-<userid>``)
    and the CRM's own prospects. The customer companies come from the ERP."""
    users = demo_directory(seed)
    by_id = {u.userid: u for u in users}
    people: list[dict[str, object]] = [
        {"crm_id": f"crm-{u.userid}", "name": u.name, "mobile": u.mobile, "email": u.email,
         "department": u.department, "title": u.position,
         "manager_crm_id": f"crm-{u.manager_userid}" if u.manager_userid in by_id else None,
         "is_sales_rep": u.is_sales_rep}
        for u in users
    ]
    companies: list[dict[str, object]] = [{"name": c.full_name, "city": c.city, "region": c.region}
                                          for c in prospect_companies(seed)]
    return {"people": people, "companies": companies}


__all__ = [
    "CATALOG",
    "DEFAULT_SEED",
    "EMAIL_DOMAIN",
    "ROOT_DEPARTMENT_ID",
    "DemoCompany",
    "DemoDepartment",
    "DemoUser",
    "NamePool",
    "credit_code",
    "crm_seed",
    "demo_customer_companies",
    "demo_departments",
    "demo_directory",
    "prospect_companies",
    "regional_reps",
    "sales_team",
    "unknown_companies",
]
