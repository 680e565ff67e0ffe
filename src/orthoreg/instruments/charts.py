"""Trajectory charts: one plotting path for the web (SVG) and for PDF reports (PNG or SVG).

Uses matplotlib's object API on the Agg/SVG canvases (no pyplot, no global state), so it is safe in
web processes and threads.
"""

from __future__ import annotations

import datetime as dt
import io
import textwrap
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
from django.utils import timezone
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .definitions import UnknownInstrument, get_definition
from .selectors import Trajectory
from .types import DefinitionError, format_number

INK = "#1d2733"
MUTED = "#5d6b7a"
ACCENT = "#1f6f8b"
BAND = "#cde3ec"
LINE = "#d9e0e7"
FORMATS = {"svg": "image/svg+xml", "png": "image/png"}


# Sizes in points of the figure. The chart is drawn small (3.4 x 2 inches) and shown about 300-460 CSS px wide, so
# a point of text here is at least 1.2 CSS px on screen: 9.5 pt tick labels are >= 11 px as the browser shows them.
WIDTH_IN, HEIGHT_IN = 3.4, 2.0
TICK_PT = 10
TITLE_PT = 10.5
LABEL_PT = 10
LONGEST_LABEL = 18  # a scale's answer labels are wrapped at this many characters


def scale_labels(trajectory: Trajectory) -> dict[float, str]:
    """The answer labels of a one-question ordinal score (satisfaction: 1 = very dissatisfied ... 5 = very
    satisfied), to label the chart's scale; {} for a score that is a sum or a mean of several answers."""
    sub = trajectory.subscale
    if sub.method != "value" or len(sub.items) != 1:
        return {}
    try:
        definition = get_definition(trajectory.code)
        item = definition.items[sub.items[0]]
    except (UnknownInstrument, DefinitionError, IndexError):
        return {}
    options = item.scored_options
    if item.type != "choice" or not options or len(options) > 7:
        return {}
    if all(o.display.strip() == format_number(o.value) for o in options):
        return {}
    return {float(o.value): o.display for o in options}


def x_limits(points, today: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The time axis: from a little before the first score to the last score or today, never beyond today, so no
    axis runs into a month or a year that has not come."""
    first, last = points[0].when, points[-1].when
    span = max((last - first).total_seconds(), 60 * 86400)
    pad = dt.timedelta(seconds=span * 0.06)
    end_of_today = dt.datetime.combine(today, dt.time.max, tzinfo=last.tzinfo)
    right = min(last + pad, max(last, end_of_today))
    left = first - (pad if len(points) > 1 else dt.timedelta(days=60))
    return left, right


def trajectory_figure(trajectory: Trajectory, *, width: float = WIDTH_IN, height: float = HEIGHT_IN,
                      today: dt.date | None = None) -> Figure:
    """A small chart of the trajectory: the scores over time, the scale's full range (its answers named when it is
    one labelled question), the band of change smaller than the MCID around the baseline, and the baseline itself."""
    sub = trajectory.subscale
    labels = scale_labels(trajectory)
    fig = Figure(figsize=(width, height + (0.5 if labels else 0)), dpi=100)
    ax = fig.add_subplot()
    low, high = sub.minimum, sub.maximum
    pad = (high - low) * 0.06
    ax.set_ylim(low - pad, high + pad)
    if labels:
        ax.set_yticks(sorted(labels), [textwrap.fill(labels[v], LONGEST_LABEL) for v in sorted(labels)])
    elif float(low).is_integer() and float(high).is_integer():  # a 1-5 or 0-10 scale: whole-number ticks only
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
    else:
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
    base = trajectory.baseline
    if base is not None and sub.mcid:
        ax.axhspan(max(low, base.value - sub.mcid), min(high, base.value + sub.mcid), color=BAND, alpha=0.7,
                   linewidth=0, label=f"within MCID ({format_number(sub.mcid)}) of baseline")
    if base is not None:
        ax.axhline(base.value, color=MUTED, linewidth=0.8, linestyle="--")
    if sub.method == "signed_amount":
        ax.axhline(0, color=MUTED, linewidth=0.8)
    points = trajectory.points
    if points:
        xs = [p.when for p in points]
        ys = [p.value for p in points]
        ax.plot(xs, ys, color=ACCENT, linewidth=1.8, marker="o", markersize=4.5, clip_on=False)  # type: ignore[arg-type]
        for p in points:
            ax.annotate(format_number(round(p.value, 1)), (p.when, p.value), textcoords="offset points",
                        xytext=(0, 5), ha="center", fontsize=LABEL_PT, color=INK)
        ax.set_xlim(*x_limits(points, today or timezone.localdate()))  # type: ignore[arg-type]
        locator = mdates.AutoDateLocator(minticks=2, maxticks=4)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    else:
        ax.text(0.5, 0.5, "no scores yet", transform=ax.transAxes, ha="center", va="center", color=MUTED,
                fontsize=LABEL_PT)
        ax.set_xticks([])
    better = "higher" if sub.higher_is_better else "lower"
    ax.set_title(f"{trajectory.title} ({better} is better)", fontsize=TITLE_PT, color=INK, loc="left")
    ax.tick_params(labelsize=TICK_PT, colors=MUTED)
    ax.xaxis.get_offset_text().set(fontsize=TICK_PT, color=MUTED)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(LINE)
    if base is not None and sub.mcid:
        ax.legend(loc="upper right", fontsize=TICK_PT, frameon=False, handlelength=1.2, borderaxespad=0.1)
    fig.tight_layout(pad=0.4)
    return fig


def render(fig: Figure, fmt: str = "svg") -> bytes:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    buf = io.BytesIO()
    options: dict[str, Any] = {"metadata": {"Date": None}} if fmt == "svg" else {"dpi": 200}
    fig.savefig(buf, format=fmt, bbox_inches="tight", pad_inches=0.04, **options)  # no tick label cut off
    return buf.getvalue()


def trajectory_chart(trajectory: Trajectory, fmt: str = "svg", **size) -> bytes:
    """The trajectory chart as SVG or PNG bytes (reports put the PNG in PDFs). The SVG keeps its text as text
    (readable, searchable, and its font sizes checkable as shown)."""
    with matplotlib.rc_context({"svg.fonttype": "none", "font.family": "DejaVu Sans"}):
        return render(trajectory_figure(trajectory, **size), fmt)
