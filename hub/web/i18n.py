"""Labels of the report pages in Chinese (the default) and English (``HUB_WEB__LANGUAGE=en``).

One table, key → (中文, English), so a label is added once for both languages and a
missing translation is impossible: :class:`Labels` raises on an unknown key (a typo in a
template shows in the tests, not as a blank on a page).
"""

from __future__ import annotations

from typing import Literal

Language = Literal["zh", "en"]

# key: (zh, en). Report modules add their own keys here, grouped by page.
LABELS: dict[str, tuple[str, str]] = {
    # navigation and shared words
    "reports": ("报表", "Reports"),
    "customers": ("客户", "Customers"),
    "funnel": ("销售漏斗", "Sales funnel"),
    "rfm": ("客户价值（RFM）", "Customer value (RFM)"),
    "receivables": ("应收账款", "Receivables"),
    "performance": ("销售业绩", "Sales performance"),
    "operations": ("运维", "Operations"),
    "filter": ("筛选", "Filter"),
    "owner": ("负责人", "Owner"),
    "team": ("团队", "Team"),
    "region": ("地区", "Region"),
    "period": ("期间", "Period"),
    "from": ("开始", "From"),
    "to": ("结束", "To"),
    "currency": ("币种", "Currency"),
    "amount": ("金额", "Amount"),
    "count": ("数量", "Count"),
    "total": ("合计", "Total"),
    "none": ("暂无数据", "No data"),
    "all": ("全部", "All"),
    "export_csv": ("导出 CSV", "Export CSV"),
    "export_xlsx": ("导出 Excel", "Export Excel"),
    # sales funnel, RFM, sales performance (hub.web.reports.funnel / rfm / performance)
    "funnel_stages": ("各阶段", "Stages"),
    "stage": ("阶段", "Stage"),
    "reached": ("到达数", "Reached"),
    "conversion": ("转化率", "Conversion"),
    "dwell_days": ("平均停留天数", "Average days in stage"),
    "dwell_long": ("停留过长", "unusually long"),
    "dwell_rule": ("停留过长的标准", "Unusually long means"),
    "days": ("天", "days"),
    "subject": ("对象", "Subject"),
    "subject_lead": ("线索", "Leads"),
    "subject_customer": ("客户", "Customers"),
    "funnel_note": ("统计期间内创建的对象；到达某阶段指历史中出现过该阶段或其后阶段；停留天数为已离开该阶段的平均天数。",
                    "Subjects created in the period; a stage is reached when the history shows it or a later stage; "
                    "dwell averages the stays that have ended."),
    "segment": ("客户分层", "Segment"),
    "segments": ("客户分层", "Segments"),
    "recency": ("最近购买（天）", "Recency (days)"),
    "frequency": ("购买频次", "Frequency (orders)"),
    "monetary": ("回款金额", "Monetary (received)"),
    "thresholds": ("分层标准", "Thresholds"),
    "threshold_median": ("中位数", "median"),
    "threshold_set": ("已配置", "configured"),
    "rfm_note": ("R：距最近一张 ERP 订单的天数（越小越好）；F：窗口内 ERP 订单数；M：窗口内回款额（按币种）。达到标准为“高”。",
                 "R: days since the last ERP order (lower is better); F: ERP orders in the window; M: received in "
                 "the window (per currency). Meeting a threshold counts as high."),
    "window_months": ("统计窗口（月）", "Window (months)"),
    "customer": ("客户", "Customer"),
    "orders": ("订单数", "Orders"),
    "order_amount": ("订单金额", "Order amount"),
    "target": ("目标", "Target"),
    "attainment": ("达成率", "Attainment"),
    "receipts": ("回款额", "Received"),
    "contracts": ("签约合同", "Contracts signed"),
    "followups": ("跟进次数", "Follow-ups"),
    "tasks_done": ("完成任务", "Tasks done"),
    "done_in_chat": ("在聊天中完成", "Done in chat"),
    "reminders_acted": ("提醒后完成", "Reminders acted on"),
    "month": ("月份", "Month"),
    "by_owner": ("按负责人", "By owner"),
    "by_team": ("按团队", "By team"),
    "set_target": ("设置目标", "Set target"),
    "save": ("保存", "Save"),
    "performance_note": ("订单按下单日期（不含草稿、已取消）；回款按客户当前负责人；合同按签约时间；提醒后完成＝本月到期且已发送提醒的任务中已完成的比例。",
                         "Orders by order date (drafts and cancelled excluded); receipts by the customer's current "
                         "owner; contracts by signing time; reminders acted on = of the tasks due this month whose "
                         "reminder was sent, the share done."),
    "unassigned": ("（未分配）", "(unassigned)"),
}


class Labels:
    """``t = Labels("zh"); t("funnel")`` → ``销售漏斗``; an unknown key is a KeyError."""

    def __init__(self, language: Language = "zh") -> None:
        self.language: Language = language
        self._index = 0 if language == "zh" else 1

    def __call__(self, key: str) -> str:
        """The label of ``key`` in this language."""
        return LABELS[key][self._index]

    @property
    def html_lang(self) -> str:
        """The page's ``<html lang>``."""
        return "zh-CN" if self.language == "zh" else "en"
