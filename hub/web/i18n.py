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
    # navigation and shared words (the page header and footer of base.html: every page)
    "brand": ("客户360", "Customer 360"),
    "search": ("搜索", "Search"),
    "search_customers": ("搜索客户", "Search customers"),
    "search_placeholder": ("公司名称 / 信用代码 / 编号", "Company name / credit code / number"),
    "sign_out": ("退出", "Sign out"),
    "footer_sources": ("数据来自各业务系统，以“来源”标注；时间为", "Data from the business systems, each marked with "
                       "its source; times are"),
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
    "back": ("返回", "Back"),
    "prev_page": ("上一页", "Previous"),
    "next_page": ("下一页", "Next"),
    "page_of": ("第", "Page"),
    "as_of_now": ("数据截至", "Data as of"),
    "computed_at": ("汇总计算于", "summary computed"),
    "ar_not_computed": ("汇总尚未生成：应收或收款数据同步一次后显示。", "Not computed yet: shown after the next receivables or receipts sync."),
    # receivables report (hub.web.reports.receivables) and operations page (hub.web.reports.operations)
    "ar_as_of": ("数据截至", "As of"),
    "ar_aging": ("账龄分布（按币种）", "Aging by bucket (per currency)"),
    "ar_open": ("未结金额", "Open"),
    "ar_overdue": ("逾期金额", "Overdue"),
    "ar_bills": ("未结单据", "Open bills"),
    "ar_customers_n": ("客户数", "Customers"),
    "ar_not_due": ("未到期", "Not due"),
    "ar_1_30": ("逾期 1–30 天", "1–30 days"),
    "ar_31_60": ("逾期 31–60 天", "31–60 days"),
    "ar_61_90": ("逾期 61–90 天", "61–90 days"),
    "ar_over_90": ("逾期 >90 天", ">90 days"),
    "ar_top_overdue": ("逾期金额最高的客户", "Top overdue customers"),
    "ar_customer": ("客户", "Customer"),
    "ar_oldest_days": ("最长逾期天数", "Oldest overdue (days)"),
    "ar_dso": ("应收账款周转天数（DSO）趋势", "DSO trend"),
    "ar_dso_formula": ("DSO = 月末未结应收 ÷ 近 90 天赊销额 × 90。月末未结应收 = 截至月末开具的应收单金额合计 − "
                       "截至月末的收款合计；近 90 天赊销额 = 月末前 90 天内（含月末）开具的应收单金额合计；"
                       "当月按截至今日计算。各币种分别计算，不折算。",
                       "DSO = open receivables at month end ÷ credit sales of the last 90 days × 90. Open "
                       "receivables at month end = receivable bills issued up to the month end − receipts up to "
                       "the month end; credit sales of the last 90 days = bills issued in the 90 days up to and "
                       "including the month end; the current month counts up to today. Each currency on its own, "
                       "never converted."),
    "ar_month": ("月份", "Month"),
    "ar_month_end": ("月末", "Month end"),
    "ar_open_at_end": ("月末未结应收", "Open at month end"),
    "ar_sales_90": ("近 90 天赊销额", "Credit sales, 90 days"),
    "ar_dso_days": ("DSO（天）", "DSO (days)"),
    "ar_over_limit": ("超出信用额度的客户", "Customers over their credit limit"),
    "ar_credit_limit": ("信用额度", "Credit limit"),
    "ar_credit_used": ("已用额度", "Credit used"),
    "ar_over_by": ("超出", "Over by"),
    "ar_over_limit_note": ("已用额度 = 客户结算币种的未结应收合计（与客户资料页相同）。",
                           "Credit used = open receivables in the customer's own currency (as on the profile)."),
    "ops_streams": ("同步流", "Sync streams"),
    "ops_system": ("系统", "System"),
    "ops_stream": ("数据流", "Stream"),
    "ops_last_run": ("最近运行", "Last run"),
    "ops_status": ("状态", "Status"),
    "ops_read": ("读取", "Read"),
    "ops_written": ("写入", "Written"),
    "ops_quarantined": ("隔离", "Quarantined"),
    "ops_lag": ("延迟", "Lag"),
    "ops_lag_note": ("延迟 = 现在 − 游标（已读到的最新源数据时间）；游标不是时间时为 现在 − 最近一次成功运行结束时间。",
                     "Lag = now − the cursor (newest source stamp read); when the cursor is not a time, now − "
                     "the end of the last successful run."),
    "ops_lag_cursor": ("按游标", "by cursor"),
    "ops_lag_last_ok": ("按最近成功运行", "by last success"),
    "ops_never": ("从未运行", "never ran"),
    "ops_dagster": ("Dagster", "Dagster"),
    "ops_backlog": ("发件箱积压（按类型）", "Outbox backlog per kind"),
    "ops_kind": ("类型", "Kind"),
    "ops_pending": ("待发送", "Pending"),
    "ops_in_flight": ("发送中", "In flight"),
    "ops_retrying": ("重试中", "Retrying"),
    "ops_dead": ("死信", "Dead"),
    "ops_failed": ("永久失败", "Failed"),
    "ops_dead_letters": ("死信", "Dead letters"),
    "ops_key": ("幂等键", "Key"),
    "ops_attempts": ("尝试次数", "Attempts"),
    "ops_last_error": ("最后错误", "Last error"),
    "ops_replay": ("重新投递", "Replay"),
    "ops_quarantine": ("隔离记录", "Quarantine"),
    "ops_reason": ("原因", "Reason"),
    "ops_reference": ("来源编号", "Reference"),
    "ops_payload": ("记录内容（已脱敏）", "Record (masked)"),
    "ops_retry": ("重试该数据流的隔离记录", "Retry this stream's quarantine"),
    "ops_open": ("未处理", "Open"),
    "ops_conflicts": ("身份冲突", "Identity conflicts"),
    "ops_record": ("记录", "Record"),
    "ops_candidates": ("候选", "Candidates"),
    "ops_merge_into": ("合并到", "Merge into"),
    "ops_merge": ("合并", "Merge"),
    "ops_keep_apart": ("保持独立", "Keep apart"),
    "ops_resolution": ("处理结果", "Resolution"),
    "ops_resolved_by": ("处理人", "Resolved by"),
    "ops_notice_replayed": ("已重新排队，等待投递的条数：", "Requeued for delivery:"),
    "ops_notice_retried": ("重试后接受的记录数：", "Accepted on retry:"),
    "ops_notice_resolved": ("已处理的冲突数：", "Conflicts resolved:"),
    "ops_bad_form": ("表单内容不完整或无效。", "The form is incomplete or invalid."),
    "ops_not_dead": ("该记录不是死信（可能已被重新投递）。", "That row is not a dead letter (already replayed?)."),
    "ops_no_conflict": ("该冲突不存在或已处理。", "No such open conflict (already resolved?)."),
    "ops_when": ("时间", "When"),
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
