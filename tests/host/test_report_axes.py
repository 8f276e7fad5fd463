"""The report's time axes (issue 14 item 14): ticks on round times chosen by the span,
labels that fit the step, a lone point (or a zero span) in the middle, one axis shared
by the plots of one history."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from scalppen.report_svg import WIDTH, time_series_svg, time_ticks

ODD = datetime(2026, 12, 4, 23, 16, 37, tzinfo=UTC)  # the time the user saw as a tick
X0, X1 = 56, WIDTH - 16  # the plot area (report_svg's margins)

SPANS = [timedelta(hours=3), timedelta(hours=20), timedelta(days=1, hours=5),
         timedelta(days=4), timedelta(days=20), timedelta(days=75), timedelta(days=200),
         timedelta(days=3 * 365), timedelta(days=12 * 365)]


@pytest.mark.parametrize("span", SPANS, ids=str)
def test_ticks_fall_on_round_times_and_labels_fit_the_step(span: timedelta) -> None:
    t0, t1 = ODD.timestamp(), (ODD + span).timestamp()
    ticks = time_ticks(t0, t1)
    assert 2 <= len(ticks) <= 6, ticks
    times = [datetime.fromtimestamp(t, UTC) for t, _ in ticks]
    labels = [label for _, label in ticks]
    assert all(t0 <= t <= t1 for t, _ in ticks)
    assert all(t.minute == 0 and t.second == 0 for t in times), times
    step = times[1] - times[0]
    if step < timedelta(days=1):  # hours: whole hours of a round step, the time shown
        assert all(t.hour % (step.seconds // 3600) == 0 for t in times), times
        assert all(re.fullmatch(r"(\d\d [A-Z][a-z]{2} )?\d\d:00", x) for x in labels), labels
        assert re.fullmatch(r"\d\d [A-Z][a-z]{2} \d\d:00", labels[0])  # the date, once
    else:  # days and longer: midnight, no time in the label
        assert all(t.hour == 0 for t in times) and not any(":" in x for x in labels)
    if step >= timedelta(days=28):  # months: the first of a month, named
        assert all(t.day == 1 for t in times), times
        assert all(re.fullmatch(r"([A-Z][a-z]{2} )?\d{4}", x) for x in labels), labels
    elif step >= timedelta(days=7):  # weeks: Mondays
        assert all(t.weekday() == 0 for t in times), times
    assert len(set(labels)) == len(labels)


def _marks(svg: str) -> list[float]:
    xs = [float(x) for x in re.findall(r'class="mark" cx="([\d.]+)"', svg)]
    bars = re.findall(r'class="mark" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', svg)
    return xs + [float(x) + float(w) / 2 for x, w in bars]


@pytest.mark.parametrize("style", ["points", "bars"])
def test_a_single_point_or_a_zero_span_sits_in_the_middle(style: str) -> None:
    middle = (X0 + X1) / 2
    one = time_series_svg("d", "D", [(ODD, 0.5)], y_label="mm", style=style)
    assert _marks(one) == [pytest.approx(middle, abs=0.5)]
    same = time_series_svg("d", "D", [(ODD, 0.5), (ODD, 0.75)], y_label="mm", style=style)
    assert _marks(same) == [pytest.approx(middle, abs=0.5)] * 2
    ticks = re.findall(r'<text x="([\d.]+)" y="\d+" text-anchor="middle">', one)
    assert ticks and all(X0 <= float(x) <= X1 for x in ticks)  # its axis labelled too


def test_points_clear_the_axes_and_plots_share_one_time_axis() -> None:
    days = [ODD + timedelta(days=d) for d in (0, 3, 10)]
    depth = time_series_svg("d", "D", [(t, 0.5) for t in days], y_label="mm")
    xs = _marks(depth)
    assert X0 + 10 < xs[0] < xs[-1] < X1 - 10  # off the axes
    # the intervals start at the second session; on the shared axis they stay under it
    interval = time_series_svg("i", "I", [(t, 3.0) for t in days[1:]], y_label="days",
                               style="bars", x_range=(days[0], days[-1]))
    assert _marks(interval) == pytest.approx(xs[1:], abs=0.2)


def test_large_values_are_labelled_with_separators() -> None:
    svg = time_series_svg("s", "S", [(ODD, 70_000.0)], y_label="strokes", style="bars")
    assert ">80,000<" in svg and ">80000<" not in svg
