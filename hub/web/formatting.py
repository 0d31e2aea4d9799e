"""How values look on the pages: money, times in the hub's timezone, Chinese labels.

Kept apart from the templates so that the tests can format an expected value exactly
the way the page does (and compare it with what the SQL says).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

AGING_LABELS = {"not_due": "未到期", "1_30": "1–30 天", "31_60": "31–60 天", "61_90": "61–90 天",
                "over_90": ">90 天"}

FIELD_LABELS = {
    "name": "公司名称", "credit_code": "统一社会信用代码", "region": "地区", "industry": "行业", "size": "规模",
    "phone": "电话", "address": "地址", "owner_id": "负责人", "credit_limit": "信用额度", "currency": "币种",
    "stage": "销售阶段", "tags": "标签", "contacts": "联系人",
}

SYSTEM_LABELS = {"kingdee": "金蝶", "yonyou": "用友", "wecom": "企业微信", "dingtalk": "钉钉", "crm": "CRM"}

ORDER_STATUS = {"draft": "草稿", "submitted": "已提交", "approved": "已审批", "in_erp": "已下达 ERP",
                "in_erp_unaudited": "已下达 ERP（待审核）", "in_erp_stalled": "已下达 ERP（审核未完成，需处理）",
                "erp_unknown": "ERP 状态待核对", "erp_failed": "推送 ERP 失败", "erp": "ERP 订单",
                "erp_unrouted": "未配置 ERP（法人主体）", "reopened": "已重开（审批通过后撤销，需 ERP 冲销）",
                "cancelled": "已取消", "closed": "已关闭"}
APPROVAL_STATE = {"none": "无需审批", "pending": "审批中", "approved": "已通过", "rejected": "已驳回",
                  "withdrawn": "已撤回", "revoked": "通过后撤销", "failed": "提交失败"}
# K/3 Cloud FDocumentStatus; YonBIP verifystate as the Yonyou connector names it
ERP_STATUS = {"Z": "暂存", "A": "创建", "B": "审核中", "C": "已审核", "D": "重新审核",
              "open": "开立", "submitted": "审批中", "audited": "审批通过"}
APPROVAL_KIND = {"quote": "报价", "contract": "合同", "discount": "特价折扣", "order": "订单"}
INTERACTION_KIND = {"call": "电话", "visit": "拜访", "meeting": "会议", "chat": "聊天", "marketing": "营销触点",
                    "note": "备注", "email": "邮件"}
TASK_KIND = {"follow_up": "跟进", "first_followup": "首次跟进", "lead_followup": "线索首次跟进", "collection": "催款", "quote": "报价",
             "invoice": "开票准备", "order_rejected": "订单驳回",
             "erp_compensation": "ERP 冲销"}
PLAN_STATES = {"planned": "计划中", "invoiced": "已开票", "paid": "已回款", "cancelled": "已取消"}
TASK_STATUS = {"open": "待办", "done": "已完成", "cancelled": "已取消"}
REMINDER_KIND = {"due": "到期提醒", "overdue": "逾期提醒", "overdue_manager": "逾期提醒（主管）",
                 "uncontacted_24h": "超时未跟进", "lead_assigned": "新线索", "uncontacted_24h_manager": "超时未跟进（主管）", "todo": "待办"}
PUSH_STATE = {"sent": "已推送", "failed": "推送失败", "invalid_recipient": "收件人无效", "pending": "待推送",
              "queued": "同步中", "open": "已同步", "done": "已完成", "not_created": "未创建"}


def label(table: dict[str, str], value: Any) -> str:
    """The Chinese label of a code, or the code itself when there is none (never hide data)."""
    if value is None or value == "":
        return "—"
    return table.get(str(value), str(value))


def money(value: Decimal | int | float | None) -> str:
    """``1234567.5`` → ``1,234,567.50``; None → ``—``."""
    if value is None:
        return "—"
    return f"{Decimal(value):,.2f}"


def parse_money(text: str) -> Decimal:
    """Inverse of :func:`money` (tests read amounts back from the page)."""
    return Decimal(text.replace(",", "").strip())


def percent(value: float | Decimal | None) -> str:
    """``0.875`` → ``88%``."""
    return "—" if value is None else f"{float(value):.0%}"


class Clock:
    """Formats timestamps in the hub's timezone (salespeople read local time)."""

    def __init__(self, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)

    def when(self, value: Any) -> str:
        """A datetime (or ISO text) as ``2026-11-25 22:07`` local; a date as ``2026-11-25``."""
        if value is None or value == "":
            return "—"
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value)
            except ValueError:
                return value
        if isinstance(value, dt.datetime):
            if value.tzinfo is not None:
                value = value.astimezone(self.zone)
            return value.strftime("%Y-%m-%d %H:%M")
        if isinstance(value, dt.date):
            return value.isoformat()
        return str(value)

    def today(self) -> dt.date:
        """Today's date in the hub's timezone (aging is counted from it)."""
        return dt.datetime.now(self.zone).date()
