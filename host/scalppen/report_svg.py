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
        f'viewBox="0 0 {width} {height}" width="100%" role="img" '
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
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.2f}".rstrip("0").rstrip(".") if value % 1 else f"{int(value)}"


_HOUR: Final = 3600
_DAY: Final = 86400
#: Tick steps for a time axis: whole hours, then days, then weeks (from a Monday).
_CLOCK_STEPS: Final = (_HOUR, 2 * _HOUR, 3 * _HOUR, 6 * _HOUR, 12 * _HOUR, _DAY, 2 * _DAY,
                       7 * _DAY, 14 * _DAY)
#: Then calendar months: ticks on the first of a month.
_MONTH_STEPS: Final = (1, 2, 3, 6, 12)
#: 1970-01-05 00:00 UTC was a Monday: weeks count from it.
_MONDAY: Final = 4 * _DAY


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _clock_ticks(t0: float, t1: float, step: int) -> list[float]:
    base = _MONDAY if step >= 7 * _DAY else 0
    t = base + math.ceil((t0 - base) / step) * step
    out: list[float] = []
    while t <= t1:
        out.append(float(t))
        t += step
    return out


def _month_ticks(t0: float, t1: float, months: int) -> list[float]:
    start = _utc(t0)
    index = start.year * 12 + start.month - 1  # the month t0 falls in
    if datetime(start.year, start.month, 1, tzinfo=UTC).timestamp() < t0:
        index += 1
    index += -index % months  # months counted from January
    out: list[float] = []
    while True:
        t = datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC).timestamp()
        if t > t1:
            return out
        out.append(t)
        index += months


def _labels(ticks: list[float], step_days: float) -> list[str]:
    """Labels that fit the step: hours show the time (and the date where it changes),
    days and weeks the day and month (the year where it changes), months the month."""
    out: list[str] = []
    seen_day, seen_year = "", 0
    for t in ticks:
        d = _utc(t)
        if step_days >= 28:
            out.append(f"{d:%Y}" if step_days >= 365 else f"{d:%b %Y}")
        elif step_days >= 1:
            out.append(f"{d:%d %b}" if d.year == seen_year else f"{d:%d %b %Y}")
        else:
            day = f"{d:%d %b}"
            out.append(f"{d:%H:%M}" if day == seen_day else f"{day} {d:%H:%M}")
            seen_day = day
        seen_year = d.year
    return out


def time_ticks(t0: float, t1: float, most: int = 6) -> list[tuple[float, str]]:
    """Ticks on round times (UTC) within [t0, t1], at most ``most`` of them: whole
    hours, days, weeks from a Monday, or the first of a month, by the span; labelled
    to fit the step (``18:00``, ``04 Dec``, ``Dec 2026``)."""
    span = t1 - t0
    for step in _CLOCK_STEPS:
        if span / step <= most:
            ticks = _clock_ticks(t0, t1, step)
            return list(zip(ticks, _labels(ticks, step / _DAY), strict=True))
    for months in _MONTH_STEPS:
        if span / (months * 30.4 * _DAY) <= most:
            break
    else:
        months = 12 * math.ceil(span / (most * 365.25 * _DAY))
    ticks = _month_ticks(t0, t1, months)
    return list(zip(ticks, _labels(ticks, months * 30.4), strict=True))


#: The shortest stretch a time axis shows: one point, or a few hours, sits in a day.
MIN_SPAN_S: Final = float(_DAY)
#: Room left at each end of a time axis, as a share of its span (marks clear the axes).
PAD: Final = 0.06


def time_axis(first: datetime, last: datetime) -> tuple[float, float]:
    """(start, span) in Unix seconds of an axis that shows ``first`` to ``last`` with
    room at both ends; a single time, or a short stretch, is centred in a day."""
    a, b = sorted((first.timestamp(), last.timestamp()))
    span = max(b - a, MIN_SPAN_S)
    t0 = (a + b) / 2 - span / 2
    return t0 - span * PAD, span * (1 + 2 * PAD)


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
    x_range: tuple[datetime, datetime] | None = None,
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
        x_range: the first and last time the axis must show (default: the points'), so
            that plots of one history share one time axis.

    Returns:
        The ``<svg>`` element.
    """
    if not points:
        return empty_svg(kind, title)
    pts = sorted(zip(points, alerts or [False] * len(points), strict=True), key=lambda p: p[0][0])
    t0, span = time_axis(*(x_range or (pts[0][0][0], pts[-1][0][0])))
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
            f'<text x="{x0 + 4}" y="{y - 3:.1f}" font-size="10" fill="{ALERT}">'
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
