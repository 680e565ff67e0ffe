"""Trajectory charts: one plotting path for the web (SVG) and for PDF reports (PNG or SVG).

Uses matplotlib's object API on the Agg/SVG canvases (no pyplot, no global state), so it is safe in
web processes and threads.
"""

from __future__ import annotations

import datetime as dt
import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
from matplotlib.ticker import MaxNLocator  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .definitions import format_number  # noqa: E402
from .selectors import Trajectory  # noqa: E402

INK = "#1d2733"
MUTED = "#5d6b7a"
ACCENT = "#1f6f8b"
BAND = "#cde3ec"
LINE = "#d9e0e7"
FORMATS = {"svg": "image/svg+xml", "png": "image/png"}


def trajectory_figure(trajectory: Trajectory, *, width: float = 4.6, height: float = 2.4) -> Figure:
    """A small chart of the trajectory: the scores over time, the scale's full range, the band of change
    smaller than the MCID around the baseline, and the baseline itself."""
    sub = trajectory.subscale
    fig = Figure(figsize=(width, height), dpi=100)
    ax = fig.add_subplot()
    low, high = sub.minimum, sub.maximum
    pad = (high - low) * 0.06
    ax.set_ylim(low - pad, high + pad)
    if float(low).is_integer() and float(high).is_integer():  # a 1-5 or 0-10 scale: whole-number ticks only
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
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
        ax.plot(xs, ys, color=ACCENT, linewidth=1.8, marker="o", markersize=4.5)
        for p in points:
            ax.annotate(format_number(round(p.value, 1)), (p.when, p.value), textcoords="offset points",
                        xytext=(0, 6), ha="center", fontsize=7.5, color=INK)
        locator = mdates.AutoDateLocator(minticks=2, maxticks=6)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        if len(points) == 1:
            ax.set_xlim(xs[0] - dt.timedelta(days=75), xs[0] + dt.timedelta(days=75))  # month ticks
    else:
        ax.text(0.5, 0.5, "no scores yet", transform=ax.transAxes, ha="center", va="center", color=MUTED)
        ax.set_xticks([])
    better = "higher" if sub.higher_is_better else "lower"
    ax.set_title(f"{trajectory.title} ({better} is better)", fontsize=9, color=INK, loc="left")
    ax.tick_params(labelsize=7.5, colors=MUTED)
    ax.xaxis.get_offset_text().set(fontsize=7.5, color=MUTED)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(LINE)
    if base is not None and sub.mcid:
        ax.legend(loc="upper right", fontsize=6.5, frameon=False)
    fig.tight_layout(pad=0.4)
    return fig


def render(fig: Figure, fmt: str = "svg") -> bytes:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    buf = io.BytesIO()
    options = {"metadata": {"Date": None}} if fmt == "svg" else {"dpi": 200}
    fig.savefig(buf, format=fmt, bbox_inches="tight", pad_inches=0.04, **options)  # no tick label cut off
    return buf.getvalue()


def trajectory_chart(trajectory: Trajectory, fmt: str = "svg", **size) -> bytes:
    """The trajectory chart as SVG or PNG bytes (reports put the PNG in PDFs)."""
    return render(trajectory_figure(trajectory, **size), fmt)
