"""The report charts: one matplotlib code path (Figure API on the Agg/SVG canvases, no pyplot state) giving SVG for
the web pages and PNG for the PDFs. Each function takes cohort reports (analytics.report_types.CohortReport), one per cohort.

    svg = render(survival_figure([("All", report)]), "svg")
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from orthoreg.analytics import definitions as defs
from orthoreg.analytics.report_types import (
    CohortReport,
    ComparisonReport,
    CurvePoint,
    InstrumentRow,
    KMRow,
    Summary,
    Survival,
    TimePoint,
)
from orthoreg.instruments.charts import ACCENT, INK, LINE, MUTED, render  # noqa: F401

COLOURS = (ACCENT, "#b26a00", "#6a4c93")
BANDS = ("#cde3ec", "#f6dfb8", "#ddd3ea")
DAYS_PER_MONTH = 365.25 / 12
CHARTS = ("trajectory", "change", "responders", "responders_over_time", "survival", "incidence", "flow", "overlap")
DISTRIBUTION = "distribution-"  # chart name prefix: "distribution-nprs", one chart per instrument
MIN_AT_RISK = 10  # analytics.selectors.CURVE_MIN_AT_RISK: curves are dashed (Kaplan-Meier) or stop below it

Cohorts = list[tuple[str, CohortReport]]  # (label, report)


def months_of(time_point: str) -> float:
    """Months after the index procedure of a time point label ("baseline" 0, "6w" 1.4, "12m" 12)."""
    match = re.fullmatch(r"(\d{1,3})([dwmy])", time_point or "")
    if not match:
        return 0.0
    n, unit = int(match[1]), match[2]
    return {"d": n / DAYS_PER_MONTH, "w": n * 7 / DAYS_PER_MONTH, "m": float(n), "y": 12.0 * n}[unit]


def _short(label: str) -> str:
    """"6 months" -> "6m", "6 weeks" -> "6w", "Baseline" -> "0" (axis ticks)."""
    return label.replace(" months", "m").replace(" month", "m").replace(" weeks", "w").replace("Baseline", "0")


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=100, facecolor="white")


def style_axes(ax, title: str = "") -> None:
    if title:
        ax.set_title(title, fontsize=9.5, color=INK, loc="left")
    ax.tick_params(labelsize=7.5, colors=MUTED)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(LINE)


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color=MUTED, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


TOO_FEW = "too few to estimate (fewer than 5)"


def _count(summary: Summary) -> str:
    """A count under a chart: "3 (too few)" below the small-number rule, where the chart has no point."""
    return f"{summary.n} (too few)" if summary.too_few else str(summary.n)


def _rows(report: CohortReport, instrument: str) -> list[tuple[TimePoint, InstrumentRow]]:
    return [(tp, row) for tp in report.time_points for row in tp.instruments if row.instrument == instrument]


def _count_table(fig, grid_cell, ax, rows: Sequence[tuple[str, Mapping[Any, Any]]],
                 title: str) -> None:
    """A small table of counts under a chart, aligned with its x axis (numbers at risk, numbers answering)."""
    table = fig.add_subplot(grid_cell, sharex=ax)
    table.axis("off")
    table.text(-0.01, 1.0, title, transform=table.transAxes, ha="right", va="top", fontsize=7, color=MUTED)
    for n, (_, counts) in enumerate(rows):
        y = 1.0 - 0.45 * (n + 1)
        for x, count in counts.items():
            table.text(x, y, str(count), ha="center", va="center", fontsize=7, color=COLOURS[n % len(COLOURS)],
                       transform=table.get_xaxis_transform())


def trajectory_figure(cohorts: Cohorts, *, instrument: str = defs.PAIN_INSTRUMENT, measure: str = "score",
                      width: float = 6.4, height: float = 3.2) -> Figure:
    """Mean score (or change from baseline) per time point with its 95% CI band; the numbers answering below."""
    fig = _figure(width, height)
    grid = fig.add_gridspec(2, 1, height_ratios=[4, 0.35 + 0.3 * len(cohorts)], hspace=0.45)
    ax = fig.add_subplot(grid[0])
    title, better = instrument, None
    scale = None
    counts: list[tuple[str, dict[float, str]]] = []
    ticks: dict[float, str] = {}
    for n, (label, report) in enumerate(cohorts):
        answered = [(tp, row) for tp, row in _rows(report, instrument) if getattr(row, measure) and getattr(row, measure).n]
        # The small-number rule: a time point with too few answers is a count under the axis, never a point.
        counts.append((label, {months_of(tp.time_point): _count(getattr(row, measure)) for tp, row in answered}))
        ticks.update({months_of(tp.time_point): _short(tp.label) for tp, _ in answered})
        points = [(tp, row) for tp, row in answered if getattr(row, measure).mean is not None]
        if answered:
            title, better = answered[0][1].title, answered[0][1].better
        if not points:
            continue
        xs = [months_of(tp.time_point) for tp, _ in points]
        summaries = [getattr(row, measure) for _, row in points]
        ys = [s.mean for s in summaries]
        lows = [s.ci_low if s.ci_low is not None else s.mean for s in summaries]
        highs = [s.ci_high if s.ci_high is not None else s.mean for s in summaries]
        row = points[0][1]
        if measure == "score" and row.minimum is not None:
            low_end, high_end = row.minimum, row.maximum
            scale = (low_end, high_end)
            lows = [min(max(v, low_end), high_end) for v in lows]
            highs = [min(max(v, low_end), high_end) for v in highs]
        colour = COLOURS[n % len(COLOURS)]
        ax.fill_between(xs, lows, highs, color=BANDS[n % len(BANDS)], alpha=0.7, linewidth=0)
        ax.plot(xs, ys, color=colour, marker="o", markersize=4, linewidth=1.8, label=f"{label} (mean, 95% CI)")
    what = "change from baseline" if measure == "change" else "score"
    direction = f" ({better} is better)" if better else ""
    if not ticks:
        _empty(ax, "no answers yet")
        style_axes(ax, f"{title}: {what}")
        return fig
    if not ax.lines:
        ax.text(0.5, 0.5, TOO_FEW, transform=ax.transAxes, ha="center", va="center", color=MUTED, fontsize=9)
    if measure == "change":
        ax.axhline(0, color=MUTED, linewidth=0.8)
    if scale is not None:
        pad = (scale[1] - scale[0]) * 0.04
        ax.set_ylim(scale[0] - pad, scale[1] + pad)
    ax.set_xticks(sorted(ticks), [ticks[x] for x in sorted(ticks)])
    ax.set_xlabel("months after the index procedure", fontsize=7.5, color=MUTED)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, frameon=False, loc="best")
    style_axes(ax, f"{title}: {what}{direction}")
    _count_table(fig, grid[1], ax, counts, "answered")
    fig.subplots_adjust(left=0.1, right=0.97, top=0.9, bottom=0.05)
    return fig


def responder_figure(cohorts: Cohorts, *, width: float = 6.4, height: float = 3.0) -> Figure:
    """Responder rates under each definition at each cohort's headline time point: bars with 95% CIs, the worst
    case marked, numerator/denominator written."""
    fig = _figure(width, height)
    ax = fig.add_subplot()
    order = [d.code for d in defs.DEFINITIONS.values()]
    titles = {d.code: d.title for d in defs.DEFINITIONS.values()}
    heads = [(label, r.headline) for label, r in cohorts if r.headline]
    if not heads:
        _empty(ax, "no time point with answers yet")
        style_axes(ax, "Responders")
        return fig
    codes = [c for c in order if any(c in h.responders for _, h in heads)]
    height_each = 0.8 / len(heads)
    for n, (label, head) in enumerate(heads):
        colour = COLOURS[n % len(COLOURS)]
        for k, code in enumerate(codes):
            r = head.responders.get(code)
            if not r:
                continue
            y = k + (n - (len(heads) - 1) / 2) * height_each
            if r.rate is None:  # too few (the small-number rule): the count only, no bar
                if r.denominator:
                    ax.text(0.01, y, f"too few to estimate (n={r.denominator})", va="center", fontsize=7,
                            color=MUTED)
                continue
            ax.barh(y, r.rate, height=height_each * 0.9, color=BANDS[n % len(BANDS)], edgecolor=colour,
                    linewidth=1, label=f"{label} ({head.label.lower()})" if k == 0 else None)
            ax.errorbar(r.rate, y, xerr=[[r.rate - r.ci_low], [r.ci_high - r.rate]], fmt="none",
                        ecolor=INK, elinewidth=1, capsize=2.5)
            if r.worst_case_rate is not None:
                ax.plot(r.worst_case_rate, y, marker="|", markersize=9, color="#b3261e", markeredgewidth=1.6,
                        label="worst case" if n == 0 and k == 0 else None)
            ax.text(1.02, y, f"{r.numerator}/{r.denominator}", va="center", fontsize=7, color=colour,
                    transform=ax.get_yaxis_transform())
    ax.set_yticks(range(len(codes)), [textwrap.fill(titles[c], 16) for c in codes], fontsize=7.5)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=len(heads) + 1)
    style_axes(ax, "Responders with 95% CI · red tick: worst case (non-responders as failures)")
    fig.tight_layout(pad=0.5, rect=(0, 0, 0.95, 1))
    return fig


def responders_over_time_figure(cohorts: Cohorts, *, instrument: str = defs.PAIN_INSTRUMENT,
                                definition: str = defs.PAIN_50.code, width: float = 6.4,
                                height: float = 2.8) -> Figure:
    """One responder definition across the time points: rate with 95% CI and the worst case."""
    fig = _figure(width, height)
    ax = fig.add_subplot()
    drawn = False
    ticks: dict[float, str] = {}
    for n, (label, report) in enumerate(cohorts):
        points = [(tp, row.responders[definition]) for tp, row in _rows(report, instrument)
                  if definition in row.responders and row.responders[definition].rate is not None]
        if not points:
            continue
        colour = COLOURS[n % len(COLOURS)]
        xs = [months_of(tp.time_point) + 0.25 * (n - (len(cohorts) - 1) / 2) for tp, _ in points]
        ys = [r.rate for _, r in points]
        ax.errorbar(xs, ys, yerr=[[r.rate - r.ci_low for _, r in points],
                                  [r.ci_high - r.rate for _, r in points]],
                    fmt="o-", color=colour, ecolor=colour, elinewidth=1, capsize=2.5, markersize=4, label=label)
        ax.plot(xs, [r.worst_case_rate for _, r in points], linestyle=":", color=colour, linewidth=1,
                label=f"{label}, worst case")
        ticks.update({months_of(tp.time_point): _short(tp.label) for tp, _ in points})
        drawn = True
    if not drawn:
        _empty(ax, "no answers yet")
    else:
        ax.set_ylim(0, 1.02)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xticks(sorted(ticks), [ticks[x] for x in sorted(ticks)])
        ax.set_xlabel("months after the index procedure", fontsize=7.5, color=MUTED)
        ax.legend(fontsize=7, frameon=False, loc="best")
    style_axes(ax, f"{defs.DEFINITIONS[definition].title} over time (95% CI)")
    fig.tight_layout(pad=0.5)
    return fig


def survival_steps(s: Survival) -> tuple[list[float], list[float], list[float], list[float]]:
    """Months, survival and the 95% band of a report's survival section as post-steps to the longest follow-up.
    Drawn from the curve, whose interval after time 0 is never the empty [1, 1] and is the one the estimates at 3,
    6, 12... months report (a cohort with no conversion has a band); the event table only for a report made
    before the curve was part of it."""
    steps = s.curve or s.table
    if not steps:  # too few to estimate (the small-number rule): nothing to draw
        return [], [], [], []
    last = s.estimable_until_days  # the curve stops where fewer than 5 are followed
    end = max((last or 0) / DAYS_PER_MONTH, steps[-1].time / DAYS_PER_MONTH)
    xs = [r.time / DAYS_PER_MONTH for r in steps] + [end]
    ys = [r.survival for r in steps] + [steps[-1].survival]
    lows = [r.ci_low for r in steps] + [steps[-1].ci_low]
    highs = [r.ci_high for r in steps] + [steps[-1].ci_high]
    return xs, ys, lows, highs


def survival_figure(cohorts: Cohorts, *, width: float = 6.4, height: float = 3.4) -> Figure:
    """Kaplan-Meier survival free of conversion to surgery with 95% CI bands and the numbers at risk below."""
    fig = _figure(width, height)
    grid = fig.add_gridspec(2, 1, height_ratios=[4, 0.35 + 0.3 * len(cohorts)], hspace=0.5)
    ax = fig.add_subplot(grid[0])
    horizon = 0.0
    for n, (label, report) in enumerate(cohorts):
        s = report.survival
        if not s.n:
            continue
        xs, ys, lows, highs = survival_steps(s)
        if not xs:  # too few to estimate: the count only, in the table under the chart
            horizon = max(horizon, (s.max_follow_up_days or 0) / DAYS_PER_MONTH, 1.0)
            ax.text(0.5, 0.5 - 0.1 * n, f"{label}: too few to estimate (n={s.n})", transform=ax.transAxes,
                    ha="center", color=COLOURS[n % len(COLOURS)], fontsize=8)
            continue
        horizon = max(horizon, xs[-1])
        colour = COLOURS[n % len(COLOURS)]
        steps: Sequence[CurvePoint | KMRow] = s.curve or s.table
        # where fewer than MIN_AT_RISK remain at risk the curve goes on dashed, without its band
        short = next((i for i, r in enumerate(steps) if r.at_risk < MIN_AT_RISK), None)
        solid = len(xs) if short is None else max(short, 1)
        ax.fill_between(xs[:solid + 1], lows[:solid + 1], highs[:solid + 1], step="post",
                        color=BANDS[n % len(BANDS)], alpha=0.7, linewidth=0)
        ax.step(xs[:solid + 1], ys[:solid + 1], where="post", color=colour, linewidth=1.8,
                label=f"{label}: {s.events} conversions of {s.n}")
        if solid < len(xs) - 1:
            ax.step(xs[solid:], ys[solid:], where="post", color=colour, linewidth=1.2, linestyle="--",
                    label=f"fewer than {MIN_AT_RISK} at risk" if n == 0 else None)
    if not horizon:
        _empty(ax, "nobody treated in this cohort")
        style_axes(ax, "Free of conversion to surgery")
        return fig
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, horizon)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    if ax.lines:
        ax.legend(fontsize=7, frameon=False, loc="lower left")
    style_axes(ax, "Free of conversion to surgery (Kaplan-Meier, 95% CI)")
    ticks = [m for m in (0, 3, 6, 12, 24, 36, 48, 60) if m <= horizon]
    ax.set_xticks(ticks)
    ax.tick_params(labelbottom=True)
    ax.set_xlabel("months after the index procedure", fontsize=7.5, color=MUTED)
    rows = []
    for label, report in cohorts:
        at = {round(a.months): a.at_risk for a in report.survival.at}
        at[0] = report.survival.n
        rows.append((label, {m: at[m] for m in ticks if m in at}))
    _count_table(fig, grid[1], ax, rows, "at risk")
    fig.subplots_adjust(left=0.1, right=0.97, top=0.9, bottom=0.06)
    return fig


def incidence_figure(cohorts: Cohorts, *, width: float = 6.4, height: float = 3.4) -> Figure:
    """The cumulative incidence of conversion to surgery with death as the competing event (Aalen-Johansen) with its
    95% band and the numbers at risk below; each curve stops where fewer than MIN_AT_RISK remain at risk."""
    fig = _figure(width, height)
    grid = fig.add_gridspec(2, 1, height_ratios=[4, 0.35 + 0.3 * len(cohorts)], hspace=0.5)
    ax = fig.add_subplot(grid[0])
    horizon, top = 0.0, 0.1
    for n, (label, report) in enumerate(cohorts):
        rows = report.cumulative_incidence or []
        c = report.competing_risks
        if not rows or c is None:
            if c and c.n:
                ax.text(0.5, 0.5 - 0.1 * n, f"{label}: too few to estimate (n={c.n})", transform=ax.transAxes,
                        ha="center", color=COLOURS[n % len(COLOURS)], fontsize=8)
            continue
        end = c.cut_at_days or (report.survival.max_follow_up_days or rows[-1].time)
        xs = [r.time / DAYS_PER_MONTH for r in rows] + [end / DAYS_PER_MONTH]
        ys = [r.incidence for r in rows] + [rows[-1].incidence]
        lows = [r.ci_low for r in rows] + [rows[-1].ci_low]
        highs = [r.ci_high for r in rows] + [rows[-1].ci_high]
        horizon, top = max(horizon, xs[-1]), max(top, max(highs))
        ax.fill_between(xs, lows, highs, step="post", color=BANDS[n % len(BANDS)], alpha=0.7, linewidth=0)
        ax.step(xs, ys, where="post", color=COLOURS[n % len(COLOURS)], linewidth=1.8,
                label=f"{label}: {c.events} conversion{'s' if c.events != 1 else ''}, {c.deaths} "
                      f"death{'s' if c.deaths != 1 else ''}, of {c.n}")
    if not horizon:
        # with patients, each cohort's "too few to estimate (n=...)" is written above; without, say why it is empty
        _empty(ax, "" if any(r.competing_risks and r.competing_risks.n for _, r in cohorts)
               else "nobody treated in this cohort")
        style_axes(ax, "Converted to surgery (cumulative incidence)")
        return fig
    ax.set_ylim(0, min(1.0, top * 1.15))
    ax.set_xlim(0, horizon)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    style_axes(ax, f"Converted to surgery, death competing (Aalen-Johansen, 95% CI; stops below {MIN_AT_RISK} at risk)")
    ticks = [m for m in (0, 3, 6, 12, 24, 36, 48, 60) if m <= horizon]
    ax.set_xticks(ticks)
    ax.set_xlabel("months after the index procedure", fontsize=7.5, color=MUTED)
    rows_at = []
    for label, report in cohorts:
        c = report.competing_risks
        at = {round(a.months): a.at_risk for a in c.at} if c else {}
        at[0] = c.n if c else 0
        rows_at.append((label, {m: at[m] for m in ticks if m in at}))
    _count_table(fig, grid[1], ax, rows_at, "at risk")
    fig.subplots_adjust(left=0.1, right=0.97, top=0.9, bottom=0.06)
    return fig


def distribution_instruments(cohorts: Cohorts) -> list[tuple[str, str]]:
    """(code, title) of the instruments with a change distribution in any cohort, in report order."""
    seen: dict[str, str] = {}
    for _, report in cohorts:
        for tp in report.time_points:
            for row in tp.instruments:
                if row.change_marks and row.change_marks.n:  # someone answered with a baseline
                    seen.setdefault(row.instrument, row.title)
    return list(seen.items())


LINESTYLES = ("-", "--", ":")
TIME_COLOURS = (ACCENT, "#b26a00", "#6a4c93", "#2e7d32", "#b3261e", "#5d6b7a", "#0b3954")


def distribution_figure(cohorts: Cohorts, instrument: str, *, width: float = 6.4, height: float = 3.3) -> Figure:
    """Responders at every threshold: for each time point (and cohort) the share of patients improved by at least x
    points, for every x, with the MCID and the OMERACT-OARSI absolute thresholds marked and the PASS rate given."""
    fig = _figure(width, height)
    ax = fig.add_subplot()
    title, marks, notes = instrument, None, []
    drawn = 0
    for n, (label, report) in enumerate(cohorts):
        rows = [(tp, row) for tp, row in _rows(report, instrument) if row.change_marks is not None]
        if len(cohorts) > 1:  # two cohorts: each at its headline time point only (else the lines crowd out)
            head = report.headline.time_point if report.headline else None
            rows = [(tp, row) for tp, row in rows if tp.time_point == head] or rows[-1:]
        for k, (tp, row) in enumerate(rows):
            title = row.title
            marks = marks or row.change_marks
            dist = row.change_distribution or []
            if not dist:
                notes.append(f"{tp.label}: too few (n={row.change_marks.n})")
                continue
            xs = [d.threshold for d in dist]
            ys = [d.share for d in dist]
            name = f"{tp.label} (n={row.change_marks.n})"
            ax.step(xs, ys, where="post", color=TIME_COLOURS[k % len(TIME_COLOURS)] if len(cohorts) == 1 else
                    COLOURS[n % len(COLOURS)], linestyle=LINESTYLES[(k if len(cohorts) > 1 else n) % 3],
                    linewidth=1.5, label=f"{label}: {name}" if len(cohorts) > 1 else name)
            drawn += 1
    if not drawn:
        _empty(ax, "too few answers with a baseline to draw")
        style_axes(ax, f"{title}: improved by at least x")
        return fig
    if marks:
        for k, (value, name, colour) in enumerate(((marks.mcid, "MCID", "#b3261e"),
                                                   (marks.oarsi_moderate, "OARSI moderate", MUTED),
                                                   (marks.oarsi_high, "OARSI high", INK))):
            if value is not None:
                ax.axvline(value, color=colour, linewidth=0.9, linestyle=":")
                ax.text(value, 0.97 - 0.07 * k, f" {name} ({value:g})", fontsize=6.5, color=colour, va="top",
                        transform=ax.get_xaxis_transform())
        if marks.pass_:
            notes.append(f"PASS (absolute score {marks.pass_.value:g}): see the responder table")
    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("improved from baseline by at least x points (below 0: worse by at most -x)", fontsize=7.5,
                  color=MUTED)
    ax.legend(fontsize=6.5, frameon=False, loc="lower left")
    style_axes(ax, f"{title}: share improved by at least x, every x")
    if notes:
        ax.text(0.99, 0.98, "; ".join(notes), transform=ax.transAxes, ha="right", va="top", fontsize=6.5,
                color=MUTED)
    fig.tight_layout(pad=0.5, rect=(0, 0, 1, 0.93))
    return fig


def overlap_figure(report: CohortReport | ComparisonReport | None, *, width: float = 6.4, height: float = 2.4) -> Figure:
    """The propensity scores of the two cohorts of a comparison (analytics.weighting.overlap), mirrored bars."""
    fig = _figure(width, height)
    ax = fig.add_subplot()
    adj = report.adjusted if isinstance(report, ComparisonReport) else None
    ov = adj.overlap if adj else None
    if not ov:
        _empty(ax, adj and adj.reason and "no adjusted comparison" or "only for a comparison of two cohorts")
        style_axes(ax, "Propensity scores")
        return fig
    mids = [(lo + hi) / 2 for lo, hi in zip(ov.bins, ov.bins[1:])]
    ax.bar(mids, ov.a, width=0.09, color=BANDS[0], edgecolor=COLOURS[0], label="A")
    ax.bar(mids, [-v for v in ov.b], width=0.09, color=BANDS[1], edgecolor=COLOURS[1], label="B")
    ax.axhline(0, color=LINE, linewidth=0.8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("propensity score (probability of being in cohort A given the covariates)", fontsize=7.5,
                  color=MUTED)
    ax.legend(fontsize=7, frameon=False, loc="upper right")
    style_axes(ax, "Overlap of propensity scores: A above, B below (patients per bin)")
    fig.tight_layout(pad=0.5)
    return fig


def flow_figure(cohorts: Cohorts, *, width: float = 6.4, height: float | None = None) -> Figure:
    """Treated -> eligible (due) -> responded at each time point, one panel per cohort."""
    height = height or 0.9 + 1.9 * len(cohorts)
    fig = _figure(width, height)
    axes = fig.subplots(len(cohorts), 1, squeeze=False)[:, 0]
    for ax, (n, (label, report)) in zip(axes, enumerate(cohorts)):
        rows = report.flow
        if not rows:
            _empty(ax, "nothing due yet")
            style_axes(ax, label)
            continue
        ys = list(range(len(rows)))
        treated = [r.treated for r in rows]
        ax.barh(ys, treated, color="#eef2f5", edgecolor=LINE, height=0.8, label="treated")
        ax.barh(ys, [r.eligible for r in rows], color=BANDS[n % len(BANDS)], height=0.8, label="eligible (due)")
        ax.barh(ys, [r.responded for r in rows], color=COLOURS[n % len(COLOURS)], height=0.5, label="responded")
        for y, r in zip(ys, rows):
            pct = f" ({r.completeness:.0%})" if r.completeness is not None else ""
            ax.text(max(treated) * 1.01, y, f"{r.responded} of {r.eligible} due{pct}", va="center",
                    fontsize=7, color=INK)
        ax.set_yticks(ys, [r.label for r in rows], fontsize=7.5)
        ax.invert_yaxis()
        ax.set_xlim(0, max(treated) * 1.45 or 1)
        style_axes(ax, f"{label}: {treated[0]} treated → due → answered")
    handles, names = axes[-1].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, fontsize=7, frameon=False, loc="lower center", ncols=3)
    fig.tight_layout(pad=0.5, rect=(0, 0.06 if handles else 0, 1, 1))
    return fig


def chart(name: str, cohorts: Cohorts, **options) -> Figure:
    """A chart by name (the names views and PDFs use)."""
    builders = {
        "trajectory": lambda: trajectory_figure(cohorts, measure="score", **options),
        "change": lambda: trajectory_figure(cohorts, measure="change", **options),
        "responders": lambda: responder_figure(cohorts, **options),
        "responders_over_time": lambda: responders_over_time_figure(cohorts, **options),
        "survival": lambda: survival_figure(cohorts, **options),
        "flow": lambda: flow_figure(cohorts, **options),
        "incidence": lambda: incidence_figure(cohorts, **options),
        "overlap": lambda: overlap_figure(options.pop("report", None), **options),
    }
    if name.startswith(DISTRIBUTION):
        return distribution_figure(cohorts, name.removeprefix(DISTRIBUTION), **options)
    if name not in builders:
        raise KeyError(name)
    return builders[name]()


def cohort_labels(first: str, second: str) -> tuple[str, str]:
    """Short labels of two cohorts from their descriptions: what differs ("A: Bone marrow concentrate injection")."""
    a, b = first.split(" · "), second.split(" · ")
    only_a = [p for p in a if p not in b] or ["all"]
    only_b = [p for p in b if p not in a] or ["all"]
    return (textwrap.shorten("A: " + ", ".join(only_a), 46, placeholder="…"),
            textwrap.shorten("B: " + ", ".join(only_b), 46, placeholder="…"))


def sections_of(report: CohortReport | ComparisonReport) -> Cohorts:
    """("A", report), ("B", report) of a comparison; ("", report) of one cohort (headings of the report pages)."""
    if isinstance(report, ComparisonReport):
        return list(zip(("A", "B"), report.cohorts))
    return [("", report)]


def cohorts_of(report: CohortReport | ComparisonReport) -> Cohorts:
    """(label, report) pairs of a cohort report or a comparison."""
    if isinstance(report, ComparisonReport):
        a, b = report.cohorts
        la, lb = cohort_labels(a.description, b.description)
        return [(la, a), (lb, b)]
    return [("Cohort", report)]
