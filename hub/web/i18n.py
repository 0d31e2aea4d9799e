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
