"""Deterministic, realistic seed data for the K/3 Cloud sandbox.

``seed_state(state, scale=1.0)`` fills an empty :class:`~.state.KingdeeState` with, at scale
1: 2,000 customers (first the demo universe's customer companies, the firms the WeCom
sandbox's contacts work for, see :mod:`connectors.kit.sandbox.universe`; then Chinese company names across provinces and industries, legal-form
suffixes, valid 18-character unified social credit codes), 20,000 sales orders with about
45,000 lines, about 11,000 receivables (paid, partly paid, overdue, not yet due — relative to
the state's ``today``) and the receipts that paid them. Everything derives from one
``random.Random(seed)``, so the same (scale, today, seed) gives the same data, and every
``FModifyDate`` lies before ``today`` so run-time writes are always newer.

Numbers follow Kingdee's default coding rules as far as the reference shows (sales order
``XSDD000001``); receivable ``AR…``, receipt ``SKD…`` and customer ``CUST…`` prefixes are
guesses (coding rules are tenant settings anyway). The salespeople (``BD_Saler``) are the
universe's sales team, under the names the WeCom directory and the CRM use.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from connectors.kingdee.sandbox.state import ENTRIES, KingdeeState
from connectors.kit.sandbox.universe import CATALOG, demo_customer_companies, regional_reps, sales_team

CENT = Decimal("0.01")
SIX = Decimal("0.000001")

# Preset currencies of K/3 Cloud: PRE001–PRE007 agree in two independent public code bases
# (a Java enum "OrderCurrencyEnum" and a Kingdee integration's currency enum, found with the
# search tool); see connectors.kingdee.mapping.CURRENCY_BY_NUMBER.
CURRENCIES = (
    ("PRE001", "人民币", "CNY"), ("PRE002", "香港元", "HKD"), ("PRE003", "欧元", "EUR"),
    ("PRE004", "日本日圆", "JPY"), ("PRE005", "新台币元", "TWD"), ("PRE006", "英镑", "GBP"),
    ("PRE007", "美元", "USD"),
)
ORG_NUMBER = "100"  # Kingdee's default number of the first organisation
UNITS = (("Pcs", "个"), ("SET", "套"), ("BOX", "箱"), ("kg", "千克"), ("TAI", "台"))
BILL_TYPES = (("XSDD01_SYS", "标准销售订单"), ("YSD01_SYS", "标准应收单"), ("SKDLX01_SYS", "销售业务收款单"))

# (province, city, district, admin division code, telephone area code)
CITIES = (
    ("北京市", "北京", "海淀区", "110108", "010"), ("上海市", "上海", "浦东新区", "310115", "021"),
    ("天津市", "天津", "滨海新区", "120116", "022"), ("重庆市", "重庆", "渝北区", "500112", "023"),
    ("广东省", "广州", "天河区", "440106", "020"), ("广东省", "深圳", "南山区", "440305", "0755"),
    ("广东省", "东莞", "松山湖", "441900", "0769"), ("广东省", "佛山", "顺德区", "440606", "0757"),
    ("江苏省", "苏州", "吴中区", "320506", "0512"), ("江苏省", "南京", "江宁区", "320115", "025"),
    ("江苏省", "无锡", "新吴区", "320214", "0510"), ("江苏省", "常州", "武进区", "320412", "0519"),
    ("浙江省", "杭州", "余杭区", "330110", "0571"), ("浙江省", "宁波", "鄞州区", "330212", "0574"),
    ("浙江省", "温州", "鹿城区", "330302", "0577"), ("山东省", "青岛", "黄岛区", "370211", "0532"),
    ("山东省", "济南", "历下区", "370102", "0531"), ("四川省", "成都", "武侯区", "510107", "028"),
    ("湖北省", "武汉", "洪山区", "420111", "027"), ("湖南省", "长沙", "岳麓区", "430104", "0731"),
    ("河南省", "郑州", "金水区", "410105", "0371"), ("陕西省", "西安", "雁塔区", "610113", "029"),
    ("福建省", "厦门", "思明区", "350203", "0592"), ("福建省", "福州", "鼓楼区", "350102", "0591"),
    ("安徽省", "合肥", "蜀山区", "340104", "0551"), ("辽宁省", "沈阳", "浑南区", "210112", "024"),
    ("辽宁省", "大连", "甘井子区", "210211", "0411"), ("河北省", "石家庄", "长安区", "130102", "0311"),
    ("云南省", "昆明", "五华区", "530102", "0871"), ("江西省", "南昌", "红谷滩区", "360113", "0791"),
    ("黑龙江省", "哈尔滨", "南岗区", "230103", "0451"), ("吉林省", "长春", "朝阳区", "220104", "0431"),
    ("广西壮族自治区", "南宁", "青秀区", "450103", "0771"), ("山西省", "太原", "小店区", "140105", "0351"),
    ("贵州省", "贵阳", "观山湖区", "520115", "0851"),
)
# Industry group number, group name, words used in company names.
INDUSTRIES = (
    ("CG01", "制造业", ("精密机械", "智能装备", "汽车零部件", "五金制品", "模具", "电气设备")),
    ("CG02", "信息技术", ("信息技术", "软件", "网络科技", "数据科技", "电子科技")),
    ("CG03", "医药健康", ("医疗器械", "生物科技", "医药")),
    ("CG04", "建筑业", ("建筑工程", "建材", "装饰工程")),
    ("CG05", "批发零售", ("贸易", "商贸", "供应链管理", "实业")),
    ("CG06", "物流运输", ("物流", "国际货运代理")),
    ("CG07", "能源化工", ("新能源科技", "化工", "新材料", "环保科技")),
    ("CG08", "食品饮料", ("食品", "饮料", "农业科技")),
)
BRAND_CHARS = "华恒瑞鑫达盛源泰康宏博信诚汇联创新科通远志海天金中正立隆昌丰德润嘉安明启航卓越佳凯晟锦弘睿辰"
LEGAL_SUFFIXES = (("有限公司", 65), ("股份有限公司", 15), ("有限责任公司", 12), ("集团有限公司", 8))
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严武戴孔汤"
GIVEN_CHARS = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红鹏飞建国文斌宇浩然欣怡子涵梓轩雨婷俊凯晨阳佳琪思远"
ROADS = ("科技路", "创业大道", "工业园路", "人民路", "建设路", "解放路", "长江路", "中山路", "高新大道", "滨江路")
# Product families (name, unit, tax-inclusive base price range, tax rate %).
PRODUCTS = (
    ("伺服电机", "TAI", (800, 6000), 13), ("变频器", "TAI", (1200, 9000), 13),
    ("工业交换机", "TAI", (600, 4000), 13), ("PLC控制器", "TAI", (1500, 12000), 13),
    ("不锈钢法兰", "Pcs", (20, 300), 13), ("精密轴承", "Pcs", (15, 600), 13),
    ("液压油缸", "Pcs", (900, 5000), 13), ("传感器", "Pcs", (120, 1500), 13),
    ("电缆", "kg", (30, 90), 13), ("包装纸箱", "BOX", (8, 40), 13),
    ("实施服务", "SET", (5000, 50000), 6), ("运维服务", "SET", (2000, 20000), 6),
    ("农产品原料", "kg", (5, 60), 9), ("检测试剂盒", "BOX", (200, 2000), 13),
)
SPECS = ("A型", "B型", "C型", "标准型", "加强型", "经济型", "Pro", "Max", "mini", "II代", "III代", "定制")
MATERIALS = 200


@dataclass(frozen=True)
class SeedStats:
    """How much the seed created (and how long it took, filled in by the caller)."""

    customers: int
    sales_orders: int
    order_lines: int
    receivables: int
    receipts: int
    materials: int
    salespeople: int


def _uscc_check_char(body17: str) -> str:
    """GB 32100-2015 check character of a unified social credit code's first 17 characters.

    Characters map to 0–30 over ``0-9A-HJ-NPQRTUWXY`` (no I, O, Z, S, V); weights are
    3^i mod 31; check = 31 − (Σ value·weight mod 31), where 31 means 0. The hub core has its
    own copy for validation; this one only needs to produce valid codes.
    """
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    weights = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    total = sum(alphabet.index(ch) * w for ch, w in zip(body17, weights, strict=True))
    return alphabet[(31 - total % 31) % 31]


def _org_code(rng: random.Random) -> str:
    """A 9-character organisation code (GB 11714: 8 digits + check, 'X' for 10, '0' for 11)."""
    digits = [rng.randrange(10) for _ in range(8)]
    weights = (3, 7, 9, 10, 5, 8, 4, 2)
    check = 11 - sum(d * w for d, w in zip(digits, weights, strict=True)) % 11
    check_char = "X" if check == 10 else ("0" if check == 11 else str(check))
    return "".join(map(str, digits)) + check_char


def unified_social_credit_code(rng: random.Random, admin_code: str) -> str:
    """A valid enterprise code: '9' (market regulator) '1' (enterprise) + area + org code + check."""
    body = "91" + admin_code + _org_code(rng)
    return body + _uscc_check_char(body)


def _person(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN_CHARS) for _ in range(rng.choice((1, 2, 2))))


def _mobile(rng: random.Random) -> str:
    return rng.choice(("13", "15", "17", "18", "19")) + f"{rng.randrange(10**9):09d}"


def _stamp(day: dt.date, rng: random.Random) -> dt.datetime:
    """A working-hours time on ``day`` (whole seconds)."""
    return dt.datetime(day.year, day.month, day.day) + dt.timedelta(seconds=rng.randrange(8 * 3600, 19 * 3600))


def _before(limit: dt.datetime, candidate: dt.datetime, rng: random.Random) -> dt.datetime:
    """``candidate`` if it is before ``limit``, else a random moment in the hour before it."""
    if candidate < limit:
        return candidate
    return limit - dt.timedelta(seconds=rng.randrange(1, 3600))


def _base(state: KingdeeState, form_id: str, number: str, name: str, created: dt.datetime, **extra: Any) -> int:
    table = state.tables[form_id.lower()]
    pk = table.allocate_id()
    doc = {table.form.pk: pk, "FNumber": number, "FName": name, "FDocumentStatus": "C",
           "FForbidStatus": "A", "FCreateDate": created, "FModifyDate": created, ENTRIES: {}, **extra}
    table.insert(doc)
    return pk


def seed_state(state: KingdeeState, *, scale: float = 1.0, seed: int = 20240501) -> SeedStats:
    """Fill an empty state; returns counts. ``scale`` 0.01 gives a tiny set for fast tests."""
    if scale <= 0:
        raise ValueError("scale must be positive")
    rng = random.Random(seed)
    today = state.today
    midnight = dt.datetime(today.year, today.month, today.day)
    epoch = midnight - dt.timedelta(days=6 * 365)

    with state.lock:
        currency_ids = {number: _base(state, "BD_Currency", number, name, epoch, FCODE=iso)
                        for number, name, iso in CURRENCIES}
        org_id = _base(state, "ORG_Organizations", ORG_NUMBER, "总部", epoch)
        unit_ids = {number: _base(state, "BD_UNIT", number, name, epoch) for number, name in UNITS}
        for number, name in BILL_TYPES:
            _base(state, "BOS_BillType", number, name, epoch)
        _base(state, "BD_RateType", "HLTX01_SYS", "固定汇率", epoch)
        group_ids = {number: _base(state, "BD_CustomerGroup", number, name, epoch)
                     for number, name, _ in INDUSTRIES}
        bill_type = {number: state.tables["bos_billtype"].find_number(number)["FBILLTYPEID"]  # type: ignore[index]
                     for number, _ in BILL_TYPES}
        rate_type = state.tables["bd_ratetype"].find_number("HLTX01_SYS")["FRATETYPEID"]  # type: ignore[index]

        # the demo universe's sales team, as the ERP knows them (number, name)
        team = sales_team()
        saler_ids = [_base(state, "BD_Saler", f"SP{i:03d}", person.name, epoch) for i, person in enumerate(team, 1)]
        saler_by_userid = {person.userid: pk for person, pk in zip(team, saler_ids, strict=True)}

        materials: list[tuple[int, Decimal, Decimal, int]] = []  # (id, tax-incl price, rate, unit id)
        for i in range(1, MATERIALS + 1):
            family, unit, (low, high), rate = PRODUCTS[(i - 1) % len(PRODUCTS)]
            spec = SPECS[(i - 1) // len(PRODUCTS) % len(SPECS)]
            price = Decimal(rng.randrange(low * 100, high * 100)) / 100
            pk = _base(state, "BD_MATERIAL", f"WL{i:04d}", f"{family} {spec}", epoch,
                       FSpecification=spec, FBaseUnitId=unit_ids[unit])
            materials.append((pk, price, Decimal(rate), unit_ids[unit]))
        for number, name, unit in CATALOG:
            # Catalogue items are not used by the seeded orders; they exist for CRM orders.
            _base(state, "BD_MATERIAL", number, name, epoch, FSpecification=None, FBaseUnitId=unit_ids[unit])

        stats_customers = _seed_customers(state, rng, max(len(demo_customer_companies()), round(2000 * scale)),
                                          midnight, epoch, org_id, saler_ids, saler_by_userid, group_ids,
                                          currency_ids)
        orders, lines = _seed_orders(state, rng, max(20, round(20000 * scale)), midnight, org_id,
                                     saler_ids, materials, bill_type["XSDD01_SYS"], rate_type)
        receivables, receipts = _seed_finance(state, rng, orders, midnight, org_id,
                                              bill_type["YSD01_SYS"], bill_type["SKDLX01_SYS"])
        for table in state.tables.values():
            table.number_seq = len(table.docs)
        state.version += 1
    return SeedStats(stats_customers, len(orders), lines, receivables, receipts, MATERIALS + len(CATALOG),
                     len(saler_ids))


def _company_name(rng: random.Random, city: str, used: set[str]) -> tuple[str, str, str]:
    """(full name, short name, industry group number), unique within the seed."""
    while True:
        group, _, words = rng.choice(INDUSTRIES)
        word = rng.choice(words)
        brand = "".join(rng.sample(BRAND_CHARS, 2))
        suffix = rng.choices([s for s, _ in LEGAL_SUFFIXES], weights=[w for _, w in LEGAL_SUFFIXES])[0]
        form = rng.random()
        if form < 0.45:
            name = f"{city}市{brand}{word}{suffix}"
        elif form < 0.85:
            name = f"{city}{brand}{word}{suffix}"
        else:
            # "华创电子（深圳）有限公司": full-width parentheses, a normalisation case for the hub.
            name = f"{brand}{word}（{city}）{suffix}"
        if name not in used:
            used.add(name)
            return name, brand + word[:2], group


def _seed_customers(
    state: KingdeeState, rng: random.Random, count: int, midnight: dt.datetime, epoch: dt.datetime,
    org_id: int, saler_ids: list[int], saler_by_userid: dict[str, int], group_ids: dict[str, int],
    currency_ids: dict[str, int],
) -> int:
    """``count`` customers: first the demo universe's customer companies (the firms the WeCom
    contacts work for, each with a salesperson of its region), then generated ones."""
    table = state.tables["bd_customer"]
    universe = demo_customer_companies()
    reps = regional_reps()
    used: set[str] = {c.full_name for c in universe}
    cities = {row[1]: row for row in CITIES}
    for i in range(1, count + 1):
        if i <= len(universe):
            company = universe[i - 1]
            province, city, district, admin, area = cities.get(company.city) or rng.choice(CITIES)
            name, short = company.full_name, company.short_name
            code: str | None = company.credit_code
            group = rng.choice(INDUSTRIES)[0]
            region_reps = reps.get(company.region) or [u for rs in reps.values() for u in rs]
            seller = saler_by_userid[rng.choice(region_reps).userid]
        else:
            province, city, district, admin, area = rng.choice(CITIES)
            name, short, group = _company_name(rng, city, used)
            code = unified_social_credit_code(rng, admin) if rng.random() < 0.95 else None
            seller = rng.choice(saler_ids)
        currency = "PRE001"
        roll = rng.random()
        if roll < 0.03:
            currency = "PRE002"
        elif roll < 0.06:
            currency = "PRE007"
        created = epoch + dt.timedelta(days=rng.randrange(0, 4 * 365), seconds=rng.randrange(86400))
        # Most customers were touched recently, some long ago: exponential spread of modify dates.
        age = dt.timedelta(days=min(int(rng.expovariate(1 / 120)), 1500), seconds=rng.randrange(1, 86400))
        modified = max(created, _before(midnight, midnight - age, rng))
        status = "C" if rng.random() < 0.97 else rng.choice(("A", "B"))
        forbidden = rng.random() < 0.02
        if i <= len(universe):  # the universe's customers are live, audited ones
            status, forbidden = "C", False
        address = f"{province}{city}市{district}{rng.choice(ROADS)}{rng.randrange(1, 999)}号"
        contacts = [
            {"FENTRYID": table.allocate_entry_id(), "FNUMBER1": f"{n:03d}", "FNAME1": _person(rng),
             "FADDRESS1": address, "FMOBILE": _mobile(rng), "FIsDefaultConsignee": n == 1}
            for n in range(1, rng.choice((2, 2, 3)))
        ]
        table.insert({
            "FCUSTID": table.allocate_id(), "FNumber": f"CUST{i:05d}", "FName": name, "FShortName": short,
            "FCreateOrgId": org_id, "FUseOrgId": org_id, "FSOCIALCRECODE": code, "FTAXREGISTERCODE": code,
            "FTEL": f"{area}-{rng.randrange(10**7, 10**8)}", "FADDRESS": address,
            "FSELLER": seller, "FGroup": group_ids[group],
            "FTRADINGCURRID": currency_ids[currency], "FISCREDITCHECK": rng.random() < 0.3,
            "FDocumentStatus": status, "FForbidStatus": "B" if forbidden else "A",
            "FCreateDate": created, "FModifyDate": modified,
            ENTRIES: {"FT_BD_CUSTCONTACT": contacts},
        })
    return count


def _seed_orders(
    state: KingdeeState, rng: random.Random, count: int, midnight: dt.datetime, org_id: int,
    saler_ids: list[int], materials: list[tuple[int, Decimal, Decimal, int]], bill_type: int, rate_type: int,
) -> tuple[list[dict[str, Any]], int]:
    table = state.tables["sal_saleorder"]
    customers = [c for c in state.tables["bd_customer"].docs.values()
                 if c["FDocumentStatus"] == "C" and c["FForbidStatus"] == "A"]
    # A few customers buy a lot: Zipf-like weights over a shuffled customer list.
    rng.shuffle(customers)
    cumulative: list[float] = []
    running = 0.0
    for rank in range(len(customers)):
        running += 1 / (rank + 1) ** 0.7
        cumulative.append(running)
    quantities = (1, 2, 3, 5, 10, 20, 50, 100, 200)
    orders: list[dict[str, Any]] = []
    lines_total = 0
    hundred = Decimal(100)
    for i in range(1, count + 1):
        customer = rng.choices(customers, cum_weights=cumulative)[0]
        days_ago = rng.randrange(1, 541)
        created = _stamp(midnight.date() - dt.timedelta(days=days_ago), rng)
        modified = _before(midnight, created + dt.timedelta(seconds=int(rng.expovariate(1 / (5 * 86400)))), rng)
        roll = rng.random()
        status = "C" if roll < 0.85 else "A" if roll < 0.93 else "B" if roll < 0.97 else "D" if roll < 0.99 else "Z"
        lines = []
        total = net = Decimal(0)
        for _ in range(rng.choices((1, 2, 3, 4, 5), weights=(35, 30, 20, 10, 5))[0]):
            material_id, list_price, rate, unit_id = rng.choice(materials)
            tax_price = (list_price * Decimal(rng.randrange(85, 101)) / hundred).quantize(CENT, ROUND_HALF_UP)
            price = (tax_price / (1 + rate / hundred)).quantize(SIX, ROUND_HALF_UP)
            qty = Decimal(rng.choice(quantities))
            all_amount = (qty * tax_price).quantize(CENT, ROUND_HALF_UP)
            amount = (qty * price).quantize(CENT, ROUND_HALF_UP)
            total += all_amount
            net += amount
            lines.append({"FEntryID": table.allocate_entry_id(), "FMaterialId": material_id, "FUnitID": unit_id,
                          "FQty": qty, "FPrice": price, "FTaxPrice": tax_price, "FEntryTaxRate": rate,
                          "FAmount": amount, "FAllAmount": all_amount, "FEntryNote": None})
        lines_total += len(lines)
        doc = {
            "FID": table.allocate_id(), "FBillNo": f"XSDD{i:06d}", "FBillTypeID": bill_type,
            "FDate": dt.datetime(created.year, created.month, created.day), "FSaleOrgId": org_id,
            "FCustId": customer["FCUSTID"],
            "FSalerId": customer["FSELLER"] if rng.random() < 0.9 else rng.choice(saler_ids),
            "FNote": None, "FDocumentStatus": status,
            "FCloseStatus": "B" if status == "C" and days_ago > 180 and rng.random() < 0.7 else "A",
            "FCreateDate": created, "FModifyDate": modified,
            "FSettleCurrId": customer["FTRADINGCURRID"], "FIsIncludedTax": True, "FExchangeTypeId": rate_type,
            "FBillAmount": net, "FBillTaxAmount": total - net, "FBillAllAmount": total,
            ENTRIES: {"FSaleOrderEntry": lines},
        }
        table.insert(doc)
        orders.append(doc)
    return orders, lines_total


def _seed_finance(
    state: KingdeeState, rng: random.Random, orders: list[dict[str, Any]], midnight: dt.datetime,
    org_id: int, ar_type: int, receipt_type: int,
) -> tuple[int, int]:
    """Receivables for most audited orders, and receipts for what has been paid."""
    receivables = state.tables["ar_receivable"]
    receipts = state.tables["ar_receivebill"]
    today = midnight.date()
    yesterday = today - dt.timedelta(days=1)
    ar_seq = receipt_seq = 0
    for order in orders:
        if order["FDocumentStatus"] != "C" or rng.random() > 0.65:
            continue
        bill_day = min(order["FDate"].date() + dt.timedelta(days=rng.randrange(0, 11)), yesterday)
        due = bill_day + dt.timedelta(days=rng.choice((30, 45, 60, 90)))
        amount: Decimal = order["FBillAllAmount"]
        overdue_days = (today - due).days
        roll = rng.random()
        if overdue_days > 60:
            paid_share = 1.0 if roll < 0.85 else (rng.uniform(0.2, 0.8) if roll < 0.93 else 0.0)
        elif overdue_days > 0:
            paid_share = 1.0 if roll < 0.55 else (rng.uniform(0.2, 0.8) if roll < 0.75 else 0.0)
        else:
            paid_share = 1.0 if roll < 0.15 else (rng.uniform(0.2, 0.8) if roll < 0.30 else 0.0)
        written = amount if paid_share == 1.0 else (amount * Decimal(str(round(paid_share, 4)))).quantize(CENT)
        created = _before(midnight, _stamp(bill_day, rng), rng)
        modified = created
        ar_seq += 1
        status = "C" if written > 0 or rng.random() < 0.95 else "A"
        if written > 0:
            latest = min(due + dt.timedelta(days=30), yesterday)
            span = max((latest - bill_day).days, 0)
            paid_day = bill_day + dt.timedelta(days=rng.randrange(0, span + 1))
            paid_at = _before(midnight, _stamp(paid_day, rng), rng)
            receipt_seq += 1
            receipts.insert({
                "FID": receipts.allocate_id(), "FBillNo": f"SKD{receipt_seq:08d}", "FBillTypeID": receipt_type,
                "FDATE": dt.datetime(paid_day.year, paid_day.month, paid_day.day),
                "FCONTACTUNITTYPE": "BD_Customer", "FCONTACTUNIT": order["FCustId"],
                "FPAYUNITTYPE": "BD_Customer", "FPAYUNIT": order["FCustId"],
                "FCURRENCYID": order["FSettleCurrId"], "FPAYORGID": org_id,
                "FRECEIVEAMOUNTFOR": written, "FREALRECAMOUNTFOR": written, "FDocumentStatus": "C",
                "FCreateDate": paid_at, "FModifyDate": paid_at, ENTRIES: {},
            })
            # Writing a receipt off against the receivable touches the receivable too.
            modified = max(created, _before(midnight, paid_at + dt.timedelta(minutes=rng.randrange(1, 600)), rng))
        receivables.insert({
            "FID": receivables.allocate_id(), "FBillNo": f"AR{ar_seq:08d}", "FBillTypeID": ar_type,
            "FDATE": dt.datetime(bill_day.year, bill_day.month, bill_day.day),
            "FENDDATE_H": dt.datetime(due.year, due.month, due.day),
            "FCUSTOMERID": order["FCustId"], "FCURRENCYID": order["FSettleCurrId"], "FSETTLEORGID": org_id,
            "FALLAMOUNTFOR": amount, "FWRITTENOFFAMOUNTFOR": written, "FNOTWRITTENOFFAMOUNTFOR": amount - written,
            "FWRITTENOFFSTATUS": "A" if written == 0 else ("C" if written == amount else "B"),
            "FDocumentStatus": status, "FCancelStatus": "A",
            "FCreateDate": created, "FModifyDate": modified, ENTRIES: {},
        })
    return ar_seq, receipt_seq


__all__ = [
    "CATALOG",
    "CURRENCIES",
    "ORG_NUMBER",
    "SeedStats",
    "seed_state",
    "unified_social_credit_code",
]
