"""Small hand-written SVG plots for the HTML report (no plotting library).

Every function returns one ``<svg>`` element as text; every piece of text in it is
escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from typing import Final

WIDTH: Final = 760
HEIGHT: Final = 240
_M_LEFT: Final = 56
_M_RIGHT: Final = 16
_M_TOP: Final = 28
_M_BOTTOM: Final = 36
COLOUR: Final = "#2b6cb0"
ALERT: Final = "#c53030"
MUTED: Final = "#718096"


def _open(kind: str, title: str, width: int, height: int) -> list[str]:
    t = escape(title)
    return [
        f'<svg class="plot plot-{escape(kind)}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{t}">',
        f"<title>{t}</title>",
        f'<text x="{_M_LEFT}" y="18" font-size="14" font-weight="bold">{t}</text>',
    ]


def empty_svg(kind: str, title: str, message: str = "No data yet.") -> str:
    """A plot frame that says there is nothing to plot."""
    parts = _open(kind, title, WIDTH, 80)
    parts.append(
        f'<text x="{_M_LEFT}" y="50" font-size="12" fill="{MUTED}">{escape(message)}</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


def _nice_step(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is >= ``value``."""
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude * (1 + 1e-9):
            return step * magnitude
    return 10 * magnitude


def _ticks(top: float) -> tuple[float, list[float]]:
    """A round axis top at or above ``top`` and its 3 to 5 round ticks."""
    step = _nice_step(top / 4)
    n = max(1, math.ceil(top / step - 1e-9))
    return step * n, [step * i for i in range(n + 1)]


def _compact(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f} M".replace(".0 M", " M")
    if n >= 10_000:
        return f"{n / 1000:.0f} k"
    return f"{n:,}"


def _fmt(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value % 1 else f"{int(value)}"


#: Tick steps for a time axis (s): round hours, days, weeks, then 30 days.
_TIME_STEPS: Final = (3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400,
                      14 * 86400, 30 * 86400, 91 * 86400)


def time_ticks(t0: float, t1: float, most: int = 6) -> list[tuple[float, str]]:
    """Ticks on round times (UTC) within [t0, t1]: whole hours, days or weeks, at most
    ``most``, labelled to fit the step (hours: ``12-04 18:00``; days: ``2026-12-04``)."""
    step = next((s for s in _TIME_STEPS if (t1 - t0) / s <= most), _TIME_STEPS[-1])
    if step >= 7 * 86400:  # weeks from a Monday (1970-01-05 was one)
        base = 4 * 86400
        first = base + math.ceil((t0 - base) / step) * step
    else:
        first = math.ceil(t0 / step) * step
    fmt = "%m-%d %H:%M" if step < 86400 else "%Y-%m-%d"
    ticks: list[tuple[float, str]] = []
    t: float = first
    while t <= t1:
        ticks.append((t, datetime.fromtimestamp(t, UTC).strftime(fmt)))
        t += step
    return ticks


def time_series_svg(
    kind: str,
    title: str,
    points: Sequence[tuple[datetime, float]],
    *,
    y_label: str,
    style: str = "points",
    alerts: Sequence[bool] | None = None,
    y_max: float | None = None,
    ref_lines: Sequence[tuple[float, str]] = (),
) -> str:
    """Values over time, as points joined by a line, or as bars.

    Args:
        kind: a short name used in the element's class (``plot-<kind>``).
        title: the plot's title.
        points: (time, value) pairs.
        y_label: the y axis label (with its unit).
        style: ``points`` or ``bars``.
        alerts: per point, True to draw it in the alert colour.
        y_max: the top of the y axis (default: a round number above the largest value).
        ref_lines: horizontal reference lines (value, label).

    Returns:
        The ``<svg>`` element.
    """
    if not points:
        return empty_svg(kind, title)
    pts = sorted(zip(points, alerts or [False] * len(points), strict=True), key=lambda p: p[0][0])
    first = pts[0][0][0].timestamp()
    last = pts[-1][0][0].timestamp()
    span = max(last - first, 86400.0)
    t0 = (first + last) / 2 - span / 2  # one point, or a short stretch: in the middle
    t0 -= span * 0.06  # keep the first and last marks off the axes
    span *= 1.12
    top = y_max if y_max is not None else max(v for (_, v), _ in pts)
    top = max(top, max((r for r, _ in ref_lines), default=0.0)) or 1.0
    top, yticks = _ticks(top)
    x0, x1 = _M_LEFT, WIDTH - _M_RIGHT
    y0, y1 = HEIGHT - _M_BOTTOM, _M_TOP

    def sx(t: float) -> float:
        return x0 + (t - t0) / span * (x1 - x0)

    def sy(v: float) -> float:
        return y0 - min(v, top) / top * (y0 - y1)

    parts = _open(kind, title, WIDTH, HEIGHT)
    parts.append(
        f'<g stroke="{MUTED}" stroke-width="1"><line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}"/>'
        f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}"/></g>'
    )
    parts.append('<g font-size="10" fill="#4a5568">')
    for v in yticks:
        parts.append(
            f'<text x="{x0 - 6}" y="{sy(v) + 3:.1f}" text-anchor="end">{escape(_fmt(v))}</text>'
        )
    for tick, label in time_ticks(t0, t0 + span):
        parts.append(
            f'<text x="{sx(tick):.1f}" y="{y0 + 14}" text-anchor="middle">{escape(label)}</text>'
        )
    parts.append(
        f'<text x="12" y="{(y0 + y1) / 2:.1f}" transform="rotate(-90 12 {(y0 + y1) / 2:.1f})" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    parts.append("</g>")
    for value, label in ref_lines:
        y = sy(value)
        parts.append(
            f'<line class="ref" x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="{ALERT}" '
            f'stroke-dasharray="4 3" stroke-width="1"/>'
            f'<text x="{x1}" y="{y - 3:.1f}" font-size="10" text-anchor="end" fill="{ALERT}">'
            f"{escape(label)}</text>"
        )
    if style == "bars":
        bar = max(1.0, min(12.0, (x1 - x0) / max(len(pts), 1) * 0.8))
        for (t, v), alert in pts:
            x = sx(t.timestamp()) - bar / 2
            y = sy(v)
            colour = ALERT if alert else COLOUR
            parts.append(
                f'<rect class="mark" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                f'height="{max(y0 - y, 0):.1f}" fill="{colour}"><title>'
                f"{escape(f'{t:%Y-%m-%d %H:%M}: {_fmt(v)}')}</title></rect>"
            )
    else:
        path = " ".join(f"{sx(t.timestamp()):.1f},{sy(v):.1f}" for (t, v), _ in pts)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{COLOUR}" stroke-width="1" '
            'stroke-opacity="0.5"/>'
        )
        for (t, v), alert in pts:
            colour = ALERT if alert else COLOUR
            parts.append(
                f'<circle class="mark" cx="{sx(t.timestamp()):.1f}" cy="{sy(v):.1f}" r="2.5" '
                f'fill="{colour}"><title>{escape(f"{t:%Y-%m-%d %H:%M}: {_fmt(v)}")}</title>'
                "</circle>"
            )
    parts.append("</svg>")
    return "\n".join(parts)


def budget_bars_svg(
    kind: str, title: str, items: Sequence[tuple[str, int, int]], *, unit: str = "punctures"
) -> str:
    """Horizontal bars of use against a budget (one row per item).

    Args:
        kind: a short name used in the element's class.
        title: the plot's title.
        items: (label, used, rated) per row.
        unit: what is counted.

    Returns:
        The ``<svg>`` element.
    """
    if not items:
        return empty_svg(kind, title)
    row_h = 22
    label_w = 150
    height = _M_TOP + row_h * len(items) + 24
    x0, x1 = label_w, WIDTH - 150
    parts = _open(kind, title, WIDTH, height)
    for i, (label, used, rated) in enumerate(items):
        y = _M_TOP + i * row_h
        frac = used / rated if rated > 0 else 1.0
        colour = ALERT if frac >= 1.0 else COLOUR
        width = (x1 - x0) * min(frac, 1.0)
        pct = f"{100 * frac:.0f} %" if rated > 0 else "no budget"
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 14}" font-size="11" text-anchor="end">'
            f"{escape(label)}</text>"
            f'<rect x="{x0}" y="{y + 3}" width="{x1 - x0}" height="14" fill="#edf2f7" '
            f'stroke="{MUTED}"/>'
            f'<rect class="mark" x="{x0}" y="{y + 3}" width="{width:.1f}" height="14" '
            f'fill="{colour}"><title>{escape(f"{used:,} of {rated:,} {unit}")}</title></rect>'
            f'<text x="{x1 + 6}" y="{y + 14}" font-size="11">'
            f"{escape(f'{pct} ({_compact(used)} / {_compact(rated)})')}</text>"
        )
    parts.append(
        f'<text x="{x0}" y="{height - 6}" font-size="10" fill="{MUTED}">'
        f"{escape(f'bar = {unit} used; frame = rated budget')}</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts)
