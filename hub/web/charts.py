"""Charts drawn on the server as inline SVG: no scripts, no CDN, nothing to build.

The report pages (:mod:`hub.web.reports`) put these straight into their HTML. Each chart is
an ``<svg role="img">`` with a ``<title>`` (what a screen reader says) and a ``viewBox``, so
it scales down to a 375 px phone screen without a horizontal scroll; every figure a chart
shows is also in a table beside it (a chart is never the only place a number is), which is
also what the tests read.

Everything that comes from data (labels, links) is escaped here: a customer called
``<script>`` is drawn as text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup

WIDTH = 600
ROW = 28
LABEL_W = 150
VALUE_W = 110


@dataclass(frozen=True)
class Bar:
    """One bar: its label, its value, the text shown for the value, an optional link
    (the bar's label becomes a link) and whether it is flagged (drawn in the warning colour,
    e.g. a stage whose dwell is unusually long)."""

    label: str
    value: float
    text: str | None = None
    href: str | None = None
    flagged: bool = False


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def bar_chart(bars: Sequence[Bar], *, title: str, centred: bool = False,
              value_text: Callable[[float], str] = _fmt) -> Markup:
    """Horizontal bars, longest = full width; ``centred`` draws a funnel (bars centred on
    one axis). An empty chart says so instead of drawing nothing."""
    if not bars:
        return Markup('<p class="empty">{}</p>').format(title + "：—")
    top = max((max(b.value, 0.0) for b in bars), default=0.0) or 1.0
    span = WIDTH - LABEL_W - VALUE_W
    height = ROW * len(bars) + 8
    parts = [Markup('<svg class="chart" role="img" viewBox="0 0 {w} {h}" width="100%" '
                    'preserveAspectRatio="xMinYMin meet"><title>{t}</title>').format(w=WIDTH, h=height, t=title)]
    for i, bar in enumerate(bars):
        y = 4 + i * ROW
        length = max(span * max(bar.value, 0.0) / top, 1.0 if bar.value > 0 else 0.0)
        x = LABEL_W + ((span - length) / 2 if centred else 0)
        label = Markup('<text x="{x}" y="{y}" text-anchor="end" class="chart-label">{t}</text>').format(
            x=LABEL_W - 6, y=y + ROW / 2 + 4, t=_clip(bar.label))
        if bar.href:
            label = Markup('<a href="{h}">{l}</a>').format(h=bar.href, l=label)
        parts.append(label)
        parts.append(Markup('<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{h}" rx="3" class="{c}"/>').format(
            x=x, y=y + 4, w=length, h=ROW - 8, c="chart-bar flagged" if bar.flagged else "chart-bar"))
        parts.append(Markup('<text x="{x}" y="{y}" class="chart-value">{t}</text>').format(
            x=WIDTH - VALUE_W + 6, y=y + ROW / 2 + 4, t=bar.text if bar.text is not None else value_text(bar.value)))
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def line_chart(points: Sequence[tuple[str, float]], *, title: str,
               value_text: Callable[[float], str] = _fmt) -> Markup:
    """A line over labelled points (e.g. months), the first and last label and the highest
    value written on the axes."""
    if not points:
        return Markup('<p class="empty">{}</p>').format(title + "：—")
    height, pad_l, pad_r, pad_y = 220, 60, 20, 24
    values = [v for _, v in points]
    low, high = min(0.0, *values), max(values) or 1.0
    span_x = WIDTH - pad_l - pad_r
    step = span_x / max(len(points) - 1, 1)

    def y_of(v: float) -> float:
        return pad_y + (height - 2 * pad_y) * (1 - (v - low) / ((high - low) or 1.0))

    coords = [(pad_l + i * step, y_of(v)) for i, (_, v) in enumerate(points)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    parts = [Markup('<svg class="chart" role="img" viewBox="0 0 {w} {h}" width="100%" '
                    'preserveAspectRatio="xMinYMin meet"><title>{t}</title>').format(w=WIDTH, h=height, t=title),
             Markup('<line x1="{x}" y1="{y0}" x2="{x}" y2="{y1}" class="chart-axis"/>').format(
                 x=pad_l, y0=pad_y, y1=height - pad_y),
             Markup('<line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" class="chart-axis"/>').format(
                 x0=pad_l, x1=WIDTH - pad_r, y=height - pad_y),
             Markup('<text x="{x}" y="{y}" text-anchor="end" class="chart-label">{t}</text>').format(
                 x=pad_l - 4, y=pad_y + 4, t=value_text(high)),
             Markup('<polyline points="{p}" class="chart-line"/>').format(p=path)]
    for (x, y), (label, value) in zip(coords, points, strict=True):
        parts.append(Markup('<circle cx="{x:.1f}" cy="{y:.1f}" r="3" class="chart-dot"><title>{l}: {v}</title>'
                            '</circle>').format(x=x, y=y, l=label, v=value_text(value)))
    parts.append(Markup('<text x="{x}" y="{y}" class="chart-label">{t}</text>').format(
        x=pad_l, y=height - 6, t=points[0][0]))
    if len(points) > 1:
        parts.append(Markup('<text x="{x}" y="{y}" text-anchor="end" class="chart-label">{t}</text>').format(
            x=WIDTH - pad_r, y=height - 6, t=points[-1][0]))
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def _clip(text: str, limit: int = 14) -> str:
    """Long labels are cut (the table beside the chart has them whole)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = ["Bar", "bar_chart", "line_chart"]
