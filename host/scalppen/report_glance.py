"""The top of the report: what a clinic reads first.

When the next session is allowed and what holds it, the active locks, the sessions
this month against what the planned interval allows, and the state of each pen's
cartridge and handpiece with a prompt when one needs replacing. Every figure comes
from the policy (rules 6, 14, 16) and the stored readings; nothing is judged here
that the policy does not judge.
"""

from __future__ import annotations

import calendar
from datetime import timedelta
from html import escape
from typing import TYPE_CHECKING

from scalppen.policy.cartridge import cartridge_refusal, minutes_left
from scalppen.policy.interval import required_interval
from scalppen.policy.rules import RULE_TITLES, PolicyConfig

if TYPE_CHECKING:
    from scalppen.report import ReportData


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _when(data: ReportData, moment: object) -> str:
    from scalppen.report import _when as when

    return when(moment)  # type: ignore[arg-type]


def _rule(rule: int) -> str:
    return f"rule {rule}: {RULE_TITLES.get(rule, '')}"


def next_session(data: ReportData) -> tuple[str, bool]:
    """(when the next session is allowed, whether something holds it back)."""
    locks = [h for h in data.holds if h.lock_id]
    if locks:
        ids = ", ".join(dict.fromkeys(h.lock_id for h in locks))
        return f"not until a clinician clears {ids}", True
    waits = [h for h in data.holds if h.lifts_at is not None]
    others = [h for h in data.holds if h.lifts_at is None and h.rule not in (7, 16)]
    parts = []
    if waits:
        last = max(waits, key=lambda h: h.lifts_at)  # type: ignore[arg-type, return-value]
        parts.append(f"from {_when(data, last.lifts_at)} ({_rule(last.rule)})")
    parts += [f"{h.lifts} ({_rule(h.rule)})" for h in others]
    if not parts:
        return "now: nothing holds it back", False
    return "; and ".join(parts), True


def lockouts_line(data: ReportData) -> tuple[str, bool]:
    """Every active lock and wait, as ``scalppen lockouts`` lists them."""
    several = len({h.who for h in data.holds}) > 1
    items = []
    for h in sorted(data.holds, key=lambda h: (h.who, h.rule)):
        who = f"{h.who}: " if several else ""
        ident = f" [{h.lock_id}]" if h.lock_id else ""
        items.append(f"{who}{_rule(h.rule)}{ident}, lifts {h.lifts}")
    return "; ".join(items) or "none", bool(items)


def month_line(data: ReportData, config: PolicyConfig) -> str:
    """Sessions this month, and the most the planned interval allows in it."""
    now = data.generated_at
    month = [s for s in data.sessions
             if s.started_at is not None and (s.started_at.year, s.started_at.month)
             == (now.year, now.month)]
    text = f"{len(month)} in {now:%B %Y}"
    if not data.sessions:
        return text
    depth = data.sessions[-1].depth_um
    interval = required_interval(depth, config)
    days = calendar.monthrange(now.year, now.month)[1]
    most = int(timedelta(days=days) / interval) + 1 if interval else days
    hours = interval.total_seconds() / 3600
    return (f"{text}; the planned interval ({hours:g} h after {depth / 1000:.2f} mm, rule 6) "
            f"allows at most {most} in a month of {days} days")


def cartridge_line(data: ReportData, serial: str, config: PolicyConfig) -> tuple[str, bool]:
    """One pen's cartridge: its use, and whether it must be replaced (rules 13-15)."""
    w = data.latest_wear.get(serial)
    if w is None:
        return "no reading yet (scalppen wear, or a session, reads it)", False
    if not w.cartridge:
        return "none inserted", False
    share = w.strokes_used / w.strokes_rated if w.strokes_rated else 1.0
    text = (f"{w.cart_id[:12]}: {w.strokes_used:,} of {w.strokes_rated:,} strokes "
            f"({share:.0%})")
    if w.cart_state:
        return f"{text}; replace it: the pen will not use it again", True
    if w.expiry is not None and w.expiry <= data.generated_at:
        return f"{text}; replace it: expired {_when(data, w.expiry)}", True
    rate = data.rate_max_sps.get(serial) or 0
    if rate:
        full = config.session_cap_s
        if cartridge_refusal(w.strokes_used, w.strokes_rated, full, rate) is not None:
            left = minutes_left(max(0, w.strokes_rated - w.strokes_used), rate)
            return (f"{text}; replace it before the next session: {left} min of needling "
                    "left at the top stroke rate (rule 14)"), True
    return text, False


def handpiece_line(data: ReportData, serial: str, config: PolicyConfig) -> tuple[str, bool]:
    """One pen's handpiece: its use, and its service (rule 16)."""
    w = data.latest_wear.get(serial)
    used = (f"{w.hp_sessions} sessions, {w.hp_strokes:,} strokes" if w is not None
            else "no reading yet")
    service = [h for h in data.holds if h.rule == 16 and serial in h.reason]
    if service:
        return f"{used}; service: {service[0].reason} ({service[0].lifts})", True
    due = data.service_due.get(serial)
    if due is None:
        return f"{used}; service life counts from its first session", False
    remind = due - config.service_lock + config.service_remind
    return (f"{used}; service or replace by {due:%Y-%m-%d} ({_rule(16)}, "
            f"reminder from {remind:%Y-%m-%d})"), due - data.generated_at <= timedelta(0)


def glance(data: ReportData, config: PolicyConfig) -> list[str]:
    """The "At a glance" section, as HTML."""
    nxt, held = next_session(data)
    lock_text, locked = lockouts_line(data)
    rows = [
        ("Next session allowed", "next", nxt, held),
        ("Active lockouts and waits", "locks", lock_text, locked),
        ("Sessions this month", "month", month_line(data, config), False),
    ]
    for pen in data.pens:
        text, prompt = cartridge_line(data, pen.serial, config)
        rows.append((f"Cartridge in {pen.serial}", f"cartridge-{pen.serial}", text, prompt))
        text, prompt = handpiece_line(data, pen.serial, config)
        rows.append((f"Handpiece {pen.serial}", f"handpiece-{pen.serial}", text, prompt))
    items = "".join(
        f'<dt>{_e(title)}</dt><dd data-item="{_e(key)}"'
        f'{" class=prompt" if prompt else ""}>{_e(text)}</dd>'
        for title, key, text, prompt in rows)
    return [f'<section class="glance"><h2>At a glance</h2><dl>{items}</dl></section>']
