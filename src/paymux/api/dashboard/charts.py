"""Server-side SVG charts (pygal), embedded in pages as data: images.

No JavaScript and no network: pygal renders the SVG in the request, and the page shows it
as an ``<img>`` so the dashboard's strict Content-Security-Policy stays intact. Amounts are
shown in yuan as exact Decimals (minor units scaled by 10^-2), never floats.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from decimal import Decimal

import pygal
from pygal.style import Style

from paymux.service.dashboard import DayFigures, Totals

PALETTE = ("#2563eb", "#059669", "#d97706", "#7c3aed", "#dc2626", "#0891b2")
_STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#475569",
    foreground_strong="#0f172a",
    foreground_subtle="#e2e8f0",
    colors=PALETTE,
    font_family="Inter, 'Segoe UI', system-ui, -apple-system, sans-serif",
    label_font_size=11,
    major_label_font_size=11,
    legend_font_size=12,
    value_font_size=10,
    title_font_size=14,
    opacity=".9",
    opacity_hover="1",
)


def _yuan(minor: int) -> Decimal:
    return Decimal(minor).scaleb(-2)


def _labels(days: Sequence[DayFigures]) -> list[str]:
    return [d.day.strftime("%m-%d") for d in days]


def _common(chart: pygal.Graph, days: Sequence[DayFigures]) -> None:
    labels = _labels(days)
    chart.x_labels = labels
    chart.x_labels_major = [*labels[::5], labels[-1]]
    chart.show_minor_x_labels = False


def _render(chart: pygal.Graph) -> str:
    svg: bytes = chart.render()
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode()


def _config(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "style": _STYLE,
        "width": 600,
        "height": 300,
        "js": [],  # no script (pygal's tooltips load from the network)
        "legend_at_bottom": True,
        "truncate_label": -1,
        "truncate_legend": -1,
        "margin": 12,
        "margin_bottom": 40,  # room for the legend under the x labels
        "legend_box_size": 10,
        "spacing": 8,
        "print_values": False,
    }
    base.update(kw)
    return base


def per_channel_bars(
    days: Sequence[DayFigures],
    channels: Sequence[str],
    pick: Callable[[Totals], int],
    *,
    money: bool = True,
) -> str:
    """One stacked bar per day, a colour per channel."""
    chart = pygal.StackedBar(**_config())
    _common(chart, days)
    for channel in channels:
        values = [pick(d.by_channel.get(channel, Totals())) for d in days]
        chart.add(channel, [_yuan(v) if money else v for v in values])
    if not money:  # whole transfers: integer ticks, about five of them
        peak = max((sum(pick(t) for t in d.by_channel.values()) for d in days), default=0)
        step = max(1, -(-peak // 5))
        chart.y_labels = list(range(0, peak + step + 1, step))
    return _render(chart)


def margin_bars(days: Sequence[DayFigures]) -> str:
    """Fees, channel cost and margin per day, side by side (operators)."""
    chart = pygal.Bar(**_config())
    _common(chart, days)
    chart.add("fees", [_yuan(d.total.fees) or None for d in days])
    chart.add("channel cost", [_yuan(d.total.channel_cost) or None for d in days])
    chart.add("margin", [_yuan(d.total.margin) or None for d in days])
    return _render(chart)


def success_rate_line(days: Sequence[DayFigures]) -> str:
    chart = pygal.Line(**_config(range=(0, 100), dots_size=3, fill=False))
    _common(chart, days)
    chart.y_labels = [0, 25, 50, 75, 100]
    chart.add("success rate %", [d.total.success_rate for d in days])
    return _render(chart)
