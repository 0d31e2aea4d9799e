"""Deterministic, realistic seed data for the YonBIP sandbox, from the one demo universe.

``seed_state(state, scale=1.0)`` fills an empty :class:`~.state.YonyouState` with, at scale 1:

- **staff**: the universe's sales team (:func:`~connectors.kit.sandbox.universe.sales_team`),
  codes ``YG0001``…, with the mobiles and e-mails the WeCom directory and the CRM use — so
  the hub can link YonBIP's salespeople to its users by mobile;
- **2,000 customers**: every other one of the universe's customer companies
  (:func:`~connectors.kit.sandbox.universe.demo_customer_companies`) with the same name and
  credit code — the group company runs Kingdee for one legal entity and YonBIP for another,
  and these firms buy from both, so "a customer known in both ERPs" happens in the demo too —
  then companies of YonBIP's own (brands no other sandbox uses, valid credit codes). Each has
  a salesperson in charge (专管业务员) from its region;
- **sales orders with at least 20,000 lines** (one to four each) over the universe's catalogue
  and YonBIP's own products; most audited (verifystate 2), some open or submitted;
- **AR events** for about two thirds of the audited orders: paid, partly paid, overdue or not
  yet due relative to the state's ``today``.

Everything derives from one ``random.Random(seed)``; every ``pubts`` lies before ``today`` so
run-time changes are always newer. Codes (``YYC00001`` customers, ``SO…`` orders, ``ARE…`` AR
events) are guesses at a tenant's coding rules.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from connectors.kit.sandbox.universe import (
    CATALOG,
    credit_code,
    demo_customer_companies,
    regional_reps,
    sales_team,
)
from connectors.yonyou.sandbox.state import TIME_FORMAT, YonyouState

CENT = Decimal("0.01")
ORG_CODE = "global00"  # the reference's org code (§2.5 customer save example)
TRANSACTION_TYPE = "SO01"
CITIES = (("上海", "华东"), ("杭州", "华东"), ("合肥", "华东"), ("广州", "华南"), ("珠海", "华南"), ("南宁", "华南"),
          ("北京", "华北"), ("石家庄", "华北"), ("太原", "华北"), ("成都", "西南"), ("贵阳", "西南"),
          ("武汉", "华中"), ("南昌", "华中"), ("长沙", "华中"))
# Brands of YonBIP's own customers: none of them is a brand of another sandbox's companies.
BRANDS = ("用友", "云启", "数智", "友邦", "畅捷", "新道", "致远", "北斗", "鸿雁", "翔宇", "博纳", "泓信", "澜图", "朗越",
          "铭远", "弘毅", "凯旋", "华迪", "恒生", "兆丰")
TRADES = (("智能科技", "制造业"), ("仪器仪表", "制造业"), ("软件", "信息技术"), ("医疗科技", "医药健康"),
          ("建设工程", "建筑业"), ("商贸", "批发零售"), ("供应链", "物流运输"), ("能源", "能源化工"))
SUFFIXES = ("有限公司", "有限公司", "股份有限公司", "科技有限公司")
PRODUCTS = (("YY-CNC", "数控加工中心", 180000, 13), ("YY-AGV", "AGV 搬运机器人", 95000, 13),
            ("YY-VIS", "机器视觉检测站", 68000, 13), ("YY-PLC", "可编程控制器", 8800, 13),
            ("YY-SRV", "年度运维服务", 30000, 6), ("YY-TRN", "培训服务（人天）", 3500, 6))
QUANTITIES = (1, 1, 2, 3, 5, 10)


@dataclass(frozen=True)
class SeedStats:
    """How much the seed created."""

    customers: int
    shared_with_universe: int
    orders: int
    order_lines: int
    receivables: int
    staff: int


def seed_state(state: YonyouState, *, scale: float = 1.0, seed: int = 20240601) -> SeedStats:
    """Fill an empty state (module docstring); ``scale`` 0.05 gives a small set for fast tests."""
    if scale <= 0:
        raise ValueError("scale must be positive")
    rng = random.Random(seed)
    midnight = dt.datetime(state.today.year, state.today.month, state.today.day)
    with state.lock:
        state.orgs.add(ORG_CODE)
        state.transaction_types.add(TRANSACTION_TYPE)
        for code, name, _unit in CATALOG:
            state.products[code] = {"id": state.new_id(), "code": code, "name": name}
        for code, name, _price, _rate in PRODUCTS:
            state.products[code] = {"id": state.new_id(), "code": code, "name": name}
        staff_by_userid = _seed_staff(state)
        shared = _seed_customers(state, rng, max(24, round(2000 * scale)), midnight, staff_by_userid)
        orders, lines = _seed_orders(state, rng, max(200, round(20000 * scale)), midnight)
        receivables = _seed_receivables(state, rng, orders, midnight)
    return SeedStats(len(state.merchants), shared, len(orders), lines, receivables, len(state.staff))


def _stamp(moment: dt.datetime) -> str:
    return moment.strftime(TIME_FORMAT)


def _seed_staff(state: YonyouState) -> dict[str, str]:
    """The universe's sales team as YonBIP staff; returns userid → staff code."""
    codes = {}
    for number, person in enumerate(sales_team(), 1):
        code = f"YG{number:04d}"
        state.staff[code] = {"id": state.new_id(), "code": code, "name": person.name, "mobile": person.mobile,
                             "email": person.email, "dept_name": person.department,
                             "enable": 1 if person.status == 1 else 0}
        codes[person.userid] = code
    return codes


def _seed_customers(state: YonyouState, rng: random.Random, count: int, midnight: dt.datetime,
                    staff_by_userid: dict[str, str]) -> int:
    """The universe's companies at even positions first (known to Kingdee too), then YonBIP's own."""
    reps = regional_reps()
    everyone = [code for code in staff_by_userid.values()]
    shared = list(demo_customer_companies())[::2]
    for number in range(1, count + 1):
        if number <= len(shared):
            company = shared[number - 1]
            name, code, region = company.full_name, company.credit_code, company.region
            trade = rng.choice(TRADES)[1]
        else:
            city, region = rng.choice(CITIES)
            brand, (word, trade) = BRANDS[number % len(BRANDS)], rng.choice(TRADES)
            name = f"{city}{brand}{word}{number:04d}{rng.choice(SUFFIXES)}"
            code = credit_code(region, 500_000 + number)
        region_reps = reps.get(region) or []
        salesperson = staff_by_userid[rng.choice(region_reps).userid] if region_reps else rng.choice(everyone)
        modified = midnight - dt.timedelta(days=min(int(rng.expovariate(1 / 90)), 900), seconds=rng.randrange(1, 86400))
        merchant = {"id": state.new_id(), "code": f"YYC{number:05d}", "name": {"simplifiedName": name},
                    "creditCode": code, "licenseType": 0, "createOrgCode": ORG_CODE, "belongOrgCode": ORG_CODE,
                    "customerClass_name": trade, "contactTel": f"0{rng.randrange(10, 99)}-{rng.randrange(10**7, 10**8)}",
                    "address": f"{name[:2]}市高新区{rng.randrange(1, 300)}号", "professSalesman_code": salesperson,
                    "transCurrency_code": "USD" if rng.random() < 0.04 else "CNY", "stopstatus": False,
                    "pubts": _stamp(modified)}
        state.merchants[str(merchant["id"])] = merchant
    return min(len(shared), count)


def _seed_orders(state: YonyouState, rng: random.Random, line_target: int,
                 midnight: dt.datetime) -> tuple[list[dict[str, object]], int]:
    """Orders until ``line_target`` lines exist; a few customers buy a lot."""
    customers = list(state.merchants.values())
    weights = [1 / (rank + 1) ** 0.6 for rank in range(len(customers))]
    catalogue = [(code, name, Decimal(price), Decimal(rate)) for code, name, price, rate in PRODUCTS] + [
        (code, name, Decimal(rng.choice((980, 2600, 15000, 1200, 450))), Decimal(13)) for code, name, _ in CATALOG]
    orders: list[dict[str, object]] = []
    lines_total = 0
    while lines_total < line_target:
        customer = rng.choices(customers, weights=weights)[0]
        day = midnight - dt.timedelta(days=rng.randrange(1, 400))
        created = day + dt.timedelta(seconds=rng.randrange(8 * 3600, 19 * 3600))
        modified = min(created + dt.timedelta(hours=rng.randrange(0, 240)), midnight - dt.timedelta(seconds=1))
        lines = []
        for lineno in range(1, rng.choice((1, 1, 2, 2, 3, 4)) + 1):
            code, name, price, rate = rng.choice(catalogue)
            unit_price = (price * Decimal(rng.randrange(85, 101)) / 100).quantize(CENT, ROUND_HALF_UP)
            qty = Decimal(rng.choice(QUANTITIES))
            lines.append({"id": state.new_id(), "lineno": lineno, "productId": state.products[str(code)]["id"],
                          "productId_code": code, "productId_name": name, "qty": qty, "oriTaxUnitPrice": unit_price,
                          "oriSum": (qty * unit_price).quantize(CENT, ROUND_HALF_UP), "taxRate": rate, "memo": None})
        staff = state.staff[str(customer["professSalesman_code"])]
        roll = rng.random()
        order = {"id": state.new_id(), "code": f"SO{day:%Y%m%d}{len(orders) + 1:06d}",
                 "vouchdate": _stamp(day), "agentId": customer["id"], "agentId_code": customer["code"],
                 "agentId_name": customer["name"]["simplifiedName"], "salesOrgId": ORG_CODE, "salesOrgId_code": ORG_CODE,
                 "transactionTypeId_code": TRANSACTION_TYPE, "corpContact": staff["id"],
                 "corpContact_code": staff["code"], "corpContactUserName": staff["name"],
                 "verifystate": 2 if roll < 0.85 else 0 if roll < 0.93 else 1,
                 "payMoney": sum((line["oriSum"] for line in lines), Decimal(0)),
                 "orderPrices!currency": customer["transCurrency_code"], "orderPrices!exchRate": 1,
                 "orderPrices!taxInclusive": True, "memo": None, "pubts": _stamp(modified), "orderDetails": lines}
        state.orders[order["id"]] = order
        orders.append(order)
        lines_total += len(lines)
    return orders, lines_total


def _seed_receivables(state: YonyouState, rng: random.Random, orders: list[dict[str, object]],
                      midnight: dt.datetime) -> int:
    """AR events for about two thirds of the audited orders, paid in part or whole or not yet."""
    today = midnight.date()
    number = 0
    for order in orders:
        if order["verifystate"] != 2 or rng.random() > 0.65:
            continue
        number += 1
        bill_day = min(dt.datetime.strptime(str(order["vouchdate"]), TIME_FORMAT).date()
                       + dt.timedelta(days=rng.randrange(0, 8)), today - dt.timedelta(days=1))
        due = bill_day + dt.timedelta(days=rng.choice((30, 60, 90)))
        amount = Decimal(str(order["payMoney"]))
        late = (today - due).days
        share = rng.random()
        paid = amount if (late > 60 and share < 0.85) or (late > 0 and share < 0.5) or share < 0.1 else (
            (amount * Decimal(rng.randrange(20, 80)) / 100).quantize(CENT) if share < 0.75 else Decimal(0))
        touched = min(dt.datetime(bill_day.year, bill_day.month, bill_day.day, 10)
                      + dt.timedelta(days=rng.randrange(0, 60)), midnight - dt.timedelta(seconds=1))
        customer = state.merchants[str(order["agentId"])]
        row_id = state.new_id()
        state.receivables[row_id] = {
            "id": row_id, "code": f"ARE{number:08d}", "accDate": f"{bill_day.isoformat()} 00:00:00",
            "customer": customer["id"], "customer_code": customer["code"],
            "customerName": customer["name"]["simplifiedName"], "currency_code": order["orderPrices!currency"],
            "oriAmount": amount, "bodyItem_oriBalance": amount - paid,
            "bodyItem_grandsonItem_expireDate": f"{due.isoformat()} 00:00:00", "srcBillCode": order["code"],
            "financeOrg_code": ORG_CODE, "balanceState": 2 if paid == amount else 1 if paid else 0,
            "verifystate": 2, "pubts": _stamp(touched)}
    return number


__all__ = ["ORG_CODE", "TRANSACTION_TYPE", "SeedStats", "seed_state"]
