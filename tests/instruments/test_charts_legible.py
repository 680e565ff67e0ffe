"""The patient's charts (issue 11 item 18): text legible at the size shown, a labelled satisfaction scale, and no
time axis running past today."""

from __future__ import annotations

import datetime as dt
import re

import matplotlib.dates as mdates

from orthoreg.instruments import charts
from orthoreg.instruments.definitions import get_definition
from orthoreg.instruments.selectors import Point, Trajectory

UTC = dt.UTC
PHONE_CHART_PX = 290  # the chart's width on DF's page in a 390 px wide phone (tests/browser checks it as shown)


def trajectory(code: str, points: list[tuple[dt.datetime, float, str]]) -> Trajectory:
    definition = get_definition(code)
    return Trajectory(code=code, title=definition.short_title, subscale=definition.primary,
                      points=[Point(when=w, value=v, time_point=tp) for w, v, tp in points])


def svg_font_px(svg: str, shown_width: float) -> float:
    """The smallest text of an SVG in CSS px when the SVG is shown `shown_width` px wide."""
    view_width = float(re.search(r'viewBox="[\d.]+ [\d.]+ ([\d.]+) [\d.]+"', svg).group(1))
    sizes = [float(s) for s in re.findall(r"font[^;\"]*?([\d.]+)px", svg)]
    assert sizes, "the chart's text is drawn as paths: its size cannot be read"
    return min(sizes) * shown_width / view_width


PAIN = [(dt.datetime(2026, 5, 20, 12, tzinfo=UTC), 7, "baseline"), (dt.datetime(2026, 7, 1, tzinfo=UTC), 5, "6w"),
        (dt.datetime(2026, 8, 28, tzinfo=UTC), 4, "3m"), (dt.datetime(2026, 11, 25, tzinfo=UTC), 2.8, "6m")]


def test_axis_text_is_at_least_11_px_on_a_phone():
    for code, points in (("nprs", PAIN), ("satisfaction", [(PAIN[-1][0], 5, "6m")])):
        svg = charts.trajectory_chart(trajectory(code, points), "svg").decode()
        assert svg_font_px(svg, PHONE_CHART_PX) >= 11, code


def test_satisfaction_scale_is_labelled():
    svg = charts.trajectory_chart(trajectory("satisfaction", [(PAIN[-1][0], 5, "6m")]), "svg").decode()
    for label in ("Very satisfied", "Very dissatisfied", "Fairly satisfied"):
        assert label in svg
    assert charts.scale_labels(trajectory("nprs", PAIN)) == {}  # 0-10 numbers need no words on the axis


def test_time_axis_ends_at_the_last_score_or_today():
    today = dt.date(2026, 12, 4)
    single = charts.trajectory_figure(trajectory("satisfaction", [(PAIN[-1][0], 5, "6m")]), today=today)
    right = mdates.num2date(single.axes[0].get_xlim()[1]).date()
    assert PAIN[-1][0].date() <= right <= today  # it ran to February of next year
    series = charts.trajectory_figure(trajectory("nprs", PAIN), today=today)
    ax = series.axes[0]
    right = mdates.num2date(ax.get_xlim()[1]).date()
    assert right <= today and right.year == 2026
    ticks = [mdates.num2date(t).date() for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and max(ticks) <= today
