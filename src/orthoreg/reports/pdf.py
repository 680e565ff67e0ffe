"""PDF reports (reportlab): the cohort report and the case report, with the charts of plots.py as PNG.

Text uses DejaVu Sans (shipped with matplotlib) so that ≥, →, χ² and the like print.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import matplotlib
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import (
    CondPageBreak,
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from orthoreg import replica
from orthoreg.analytics import definitions as defs
from orthoreg.analytics.report_types import (
    Adjusted,
    AdjustedInterval,
    CohortReport,
    ComparisonReport,
    Difference,
    Rate,
    ResponderRate,
    Summary,
)
from orthoreg.formats import format_date
from orthoreg.instruments.charts import render, trajectory_chart

from . import plots
from .case import comparison_png
from .templatetags.report_tags import (
    diff_rows,
    loss_sentence,
    months,
    num,
    pct,
    percent_ci,
    percent_range,
    pretty_group,
    shown_responders,
    signed,
)

INK = colors.HexColor("#1d2733")
MUTED = colors.HexColor("#5d6b7a")
LINE = colors.HexColor("#d9e0e7")
HEAD = colors.HexColor("#fafbfc")
WARN_BG = colors.HexColor("#fdf0dc")
WARN = colors.HexColor("#b26a00")
WIDTH = A4[0] - 30 * mm


def _fonts() -> tuple[str, str]:
    if "DejaVuSans" not in pdfmetrics.getRegisteredFontNames():
        folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
        pdfmetrics.registerFont(TTFont("DejaVuSans", str(folder / "DejaVuSans.ttf")))
        pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", str(folder / "DejaVuSans-Bold.ttf")))
        pdfmetrics.registerFontFamily("DejaVuSans", normal="DejaVuSans", bold="DejaVuSans-Bold",
                                      italic="DejaVuSans", boldItalic="DejaVuSans-Bold")
    return "DejaVuSans", "DejaVuSans-Bold"


def _styles() -> dict[str, ParagraphStyle]:
    regular, bold = _fonts()
    base = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=base["BodyText"], fontName=regular, fontSize=9, leading=12, textColor=INK)
    return {
        "title": ParagraphStyle("title", parent=body, fontName=bold, fontSize=16, leading=20, spaceAfter=4),
        "subtitle": ParagraphStyle("subtitle", parent=body, textColor=MUTED, spaceAfter=8),
        "h2": ParagraphStyle("h2", parent=body, fontName=bold, fontSize=11.5, leading=15, spaceBefore=10,
                             spaceAfter=4),
        "body": body,
        "small": ParagraphStyle("small", parent=body, fontSize=7.5, leading=9.5, textColor=MUTED),
        "cell": ParagraphStyle("cell", parent=body, fontSize=7.5, leading=9.5, alignment=TA_LEFT),
        "cellb": ParagraphStyle("cellb", parent=body, fontName=bold, fontSize=7.5, leading=9.5),
        "result": ParagraphStyle("result", parent=body, fontSize=11, leading=15, spaceAfter=4),
        "box": ParagraphStyle("box", parent=body, fontName=bold, backColor=WARN_BG, borderColor=WARN,
                              borderWidth=0, borderPadding=6, spaceBefore=6, spaceAfter=10),
        "limits": ParagraphStyle("limits", parent=body, backColor=WARN_BG, borderPadding=6, spaceBefore=6,
                                 spaceAfter=10),
    }


def _p(text, style) -> Paragraph:
    return Paragraph(escape(str(text)), style)


def _table(rows, widths, styles, header: bool = True) -> Table:
    cells = [[c if not isinstance(c, str) else _p(c, styles["cellb" if header and i == 0 else "cell"])
              for c in row] for i, row in enumerate(rows)]
    table = Table(cells, colWidths=widths, repeatRows=1 if header else 0, hAlign="LEFT")
    commands = [("LINEBELOW", (0, 0), (-1, -1), 0.4, LINE), ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3),
                ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2)]
    if header:
        commands.append(("BACKGROUND", (0, 0), (-1, 0), HEAD))
    table.setStyle(TableStyle(commands))
    return table


def _png(data: bytes, width: float = WIDTH) -> Image:
    image = Image(io.BytesIO(data))
    ratio = image.imageHeight / image.imageWidth
    image.drawWidth, image.drawHeight = width, width * ratio
    return image


def _chart(figure, width: float = WIDTH) -> Image:
    return _png(render(figure, "png"), width)


def _rate_text(r: Rate | ResponderRate | None, worst: bool = True) -> str:
    if not r or not r.denominator:
        return "—"
    if r.too_few:  # the small-number rule (analytics.summaries.too_few): the count only
        return f"too few to estimate (n={r.denominator})"
    text = f"{pct(r.rate)} ({r.numerator}/{r.denominator}; 95% CI {percent_range(r.ci_low, r.ci_high)})"
    if worst and isinstance(r, ResponderRate) and r.worst_case_rate is not None:
        text += f"; worst case {pct(r.worst_case_rate)} ({r.worst_case_numerator}/{r.eligible})"
    return text


def _stat_text(s: Summary | None) -> str:
    """"3.2 (2.1 to 4.3); median 3 (2 to 4), n=12"; "too few to estimate (n=3)" below five."""
    if not s or not s.n:
        return "—"
    if s.too_few:  # fewer than summaries.MIN_ESTIMATE_N values (weighted_summary says so)
        return f"too few to estimate (n={s.n})"
    text = f"{num(s.mean)}"
    if s.ci_low is not None:
        text += f" ({num(s.ci_low)} to {num(s.ci_high)})"
    text += f"; median {num(s.median)}"
    if s.median_ci_low is not None:
        text += f" ({num(s.median_ci_low)} to {num(s.median_ci_high)})"
    text += f", n={s.n}"
    return text


def _document(buffer, title: str) -> SimpleDocTemplate:
    return SimpleDocTemplate(buffer, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=14 * mm,
                             bottomMargin=16 * mm, title=title, author="orthoreg", creator="orthoreg")


def _footer(text: str):
    regular, _ = _fonts()

    def draw(canvas, doc):
        canvas.saveState()
        canvas.setFont(regular, 7)
        canvas.setFillColor(MUTED)
        canvas.drawString(15 * mm, 9 * mm, text)
        canvas.drawRightString(A4[0] - 15 * mm, 9 * mm, f"page {doc.page}")
        canvas.restoreState()

    return draw


def _build(story, title: str, footer: str) -> bytes:
    buffer = io.BytesIO()
    doc = _document(buffer, title)
    draw = _footer(footer)
    doc.build(story, onFirstPage=draw, onLaterPages=draw)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------ cohort

def _cohort_section(report: CohortReport, label: str, s: dict) -> list:
    c = report.cohort
    story = [_p(f"{label + ' · ' if label else ''}{report.description}", s["h2"])]
    rows = [["Treated episodes", f"{c.episodes} ({c.patients} patients, {c.clinics} clinic(s))"]]
    if c.episodes:
        rows += [["Treated", f"{c.index_from} to {c.index_to}"],
                 ["Age at treatment", f"mean {c.age.mean} (range {c.age.min}–{c.age.max})"],
                 ["Sex", ", ".join(f"{k} {v}" for k, v in c.sex.items())],
                 ["Grade at treatment", ", ".join(f"{'not graded' if k == 'none' else 'grade ' + k} {v}"
                                                  for k, v in c.grades.items())],
                 ["Index procedure", ", ".join(f"{k.label} {k.episodes}" for k in c.index_procedures)],
                 ["Median follow-up", months(report.survival.median_follow_up_days)],
                 ["Converted to surgery", f"{report.survival.events} of {report.survival.n}"]]
    story.append(_table(rows, [45 * mm, WIDTH - 45 * mm], s, header=False))
    if not c.episodes:
        story.append(_p("No treated episode matches this cohort.", s["body"]))
        return story
    head = report.headline
    if head:
        story.append(_p(f"At {head.label.lower()}: {head.responded} of {head.eligible} due answered "
                        f"({head.lost} did not).", s["body"]))
        story.append(_table([["Responder definition", "Rate (responders / known outcome) and worst case"]] +
                            [[defs.DEFINITIONS[k].title, _rate_text(v)] for k, v in head.responders.items()],
                            [45 * mm, WIDTH - 45 * mm], s))
    if not label:
        story.append(_p(report.limits, s["limits"]))
    return story


def _cohort_tables(report: CohortReport, label: str, s: dict) -> list:
    story = [CondPageBreak(60 * mm), _p(f"{label + ' · ' if label else ''}Scores per time point", s["h2"])]
    rows = [["Time point", "Questionnaire", "Eligible", "Answered", "Score, mean (95% CI)",
             "Change from baseline, mean (95% CI)"]]
    for tp in report.time_points:
        for i, row in enumerate(tp.instruments):
            rows.append([tp.label if i == 0 else "", f"{row.title} ({row.better} is better)",
                         str(row.eligible), f"{row.responded} ({pct(row.completeness.rate)})",
                         _stat_text(row.score), _stat_text(row.change) if row.change else "—"])
    story.append(_table(rows, [18 * mm, 30 * mm, 14 * mm, 20 * mm, 49 * mm, WIDTH - 131 * mm], s))
    story += [CondPageBreak(60 * mm), _p(f"{label + ' · ' if label else ''}Responders per time point", s["h2"])]
    rows = [["Time point", "Questionnaire", "Definition", "Rate (95% CI); worst case"]]
    for tp in report.time_points:
        for row in tp.instruments:
            for code, r in shown_responders(row).items():
                rows.append([tp.label, row.title, defs.DEFINITIONS[code].title, _rate_text(r)])
    story.append(_table(rows, [18 * mm, 24 * mm, 34 * mm, WIDTH - 76 * mm], s))
    sv = report.survival
    story += [CondPageBreak(50 * mm), _p(f"{label + ' · ' if label else ''}Free of conversion to surgery", s["h2"]),
              _p(f"{sv.events} conversions among {sv.n} treated; {sv.censored} censored at their last "
                 f"contact. " + ("Too few to estimate survival (fewer than 5 treated)." if sv.too_few else
                                 f"Median follow-up {months(sv.median_follow_up_days)}."), s["body"])]
    rows = [["After", "At risk", "Free of surgery (95% CI)"]]
    for a in sv.at:
        rows.append([f"{a.months} months", str(a.at_risk),
                     "too few to estimate" if a.too_few and a.at_risk else
                     "no one followed this long yet" if a.survival is None else
                     f"{pct(a.survival, 1)} ({percent_range(a.ci_low, a.ci_high)})"])
    story.append(_table(rows, [30 * mm, 25 * mm, 60 * mm], s))
    c = report.competing_risks
    if c:
        story += [CondPageBreak(50 * mm),
                  _p(f"{label + ' · ' if label else ''}Converted to surgery, death competing", s["h2"]),
                  _p(f"{c.events} conversions and {c.deaths} deaths without conversion among {c.n} treated; "
                     f"{c.censored} censored (withdrawn, lost or still followed).", s["body"])]
        rows = [["After", "At risk", "Converted (cumulative incidence, 95% CI)"]]
        for x in c.at:
            rows.append([f"{x.months} months", str(x.at_risk),
                         f"{pct(x.incidence, 1)} ({percent_range(x.ci_low, x.ci_high)})"
                         if x.incidence is not None else
                         f"fewer than {c.min_at_risk} at risk: not shown" if x.too_few else
                         "no one followed this long yet"])
        story += [_table(rows, [30 * mm, 25 * mm, 80 * mm], s), _p(c.shown, s["small"])]
    story += _loss(report, label, s)
    ae = report.adverse_events
    story += [_p(f"{label + ' · ' if label else ''}Adverse events", s["h2"]),
              _table([["Any adverse event", _rate_text(ae.any, False)],
                      ["Serious adverse event", _rate_text(ae.serious, False)]], [45 * mm, WIDTH - 45 * mm], s,
                     header=False)]
    return story


def _loss(report: CohortReport, label: str, s: dict) -> list:
    """Loss to follow-up, judged: completeness and its label, complete / worst / best case, baseline of the groups."""
    rows_in = report.loss_to_follow_up or []
    if not rows_in:
        return []
    story = [CondPageBreak(50 * mm), _p(f"{label + ' · ' if label else ''}Loss to follow-up, judged", s["h2"])]
    rows = [["Time point", "Answered / due", "Judgement", "Complete · worst · best case"]]
    for row in rows_in:
        cases = "; ".join(
            f"{defs.DEFINITIONS[code].title}: " + ("too few" if c.too_few else
                                                   f"{pct(c.complete_case)} · {pct(c.worst_case)} · "
                                                   f"{pct(c.best_case)}")
            for code, c in row.cases.items() if code != defs.NO_CONVERSION.code)
        rows.append([row.label, f"{row.responded} / {row.eligible}", row.judgement, cases])
    story.append(_table(rows, [18 * mm, 22 * mm, 45 * mm, WIDTH - 85 * mm], s))
    rows = [["Time point", "Group", "n", "Age, mean (SD)", "Grade, mean (SD)", "Baseline pain, mean (SD)"]]
    for row in rows_in:
        for i, g in enumerate(row.groups):
            rows.append([row.label if i == 0 else "", pretty_group(g.group), str(g.n),
                         *[("too few" if x.n else "—") if x.too_few else
                           f"{num(x.mean)}" + (f" ({num(x.sd)})" if x.sd is not None else "")
                           for x in (g.age, g.grade, g.baseline)]])
        if row.groups:
            rows.append(["", loss_sentence(row), "", "", "", ""])
    table = _table(rows, [18 * mm, 34 * mm, 12 * mm, 28 * mm, 28 * mm, WIDTH - 120 * mm], s)
    story += [table, _p("Complete case: among those whose outcome is known; worst case: everyone who did not answer "
                        "counted as a failure; best case: as a success. Responders by the pain MCID.", s["small"])]
    return story


def _definitions(d: dict[str, Any], s: dict) -> list:
    story = [CondPageBreak(50 * mm), _p("How these numbers are counted", s["h2"])]
    for key in ("eligible", "responded", "rates", "conversion", "adverse_events"):
        story.append(_p(d[key], s["small"]))
    for x in d["responders"].values():
        extra = f" Source: {x['source']}." if x["source"] else ""
        story.append(_p(f"{x['title']}: {x['description']}{extra}", s["small"]))
    story.append(_p("Intervals: Wilson for rates, Newcombe hybrid score for differences of rates, t for means "
                    "(Welch for differences), order statistics for medians, Kaplan-Meier with exponential Greenwood "
                    "intervals (lifelines); median follow-up by reverse Kaplan-Meier.", s["small"]))
    return story


def cohort_pdf(report: CohortReport | ComparisonReport) -> bytes:
    """The cohort report (or the comparison of two) as PDF bytes."""
    s = _styles()
    cohorts = plots.cohorts_of(report)
    comparison = isinstance(report, ComparisonReport)
    title = "Cohort outcomes" + (" — comparison" if comparison else "")
    story = [_p(title, s["title"]),
             _p(f"As of {report.as_of} · generated {report.generated_at} · aggregates only, every rate with "
                "its denominator and 95% CI" + (f" · {note}" if (note := replica.describe(report)) else ""),
                s["subtitle"])]
    members = report.cohorts if isinstance(report, ComparisonReport) else [report]
    letters = ["A", "B"] if comparison else [""]
    for letter, member in zip(letters, members):
        story += _cohort_section(member, letter, s)
    if isinstance(report, ComparisonReport):
        story += _differences(report, s)
    if any(m.cohort.episodes for m in members):
        for name in ("flow", "responders", "trajectory", "change", "survival", "incidence"):
            figure = plots.chart(name, cohorts)
            story.append(KeepTogether([Spacer(1, 4), _chart(figure, WIDTH * 0.92)]))
        story.append(_p((members[0].competing_risks.shown if members[0].competing_risks else ""), s["small"]))
        for code, _ in plots.distribution_instruments(cohorts):
            figure = plots.chart(plots.DISTRIBUTION + code, cohorts)
            story.append(KeepTogether([Spacer(1, 4), _chart(figure, WIDTH * 0.92)]))
        for letter, member in zip(letters, members):
            if member.cohort.episodes:
                story += _cohort_tables(member, letter, s)
    story += _definitions(members[0].definitions, s)
    for letter, member in zip(letters, members):
        if member.methods:
            story += [CondPageBreak(50 * mm), _p(f"Methods{' · ' + letter if letter else ''}", s["h2"])]
            story += [_p(f"{x.item}: {x.text}", s["small"]) for x in member.methods]
    return _build(story, title, f"orthoreg · {title} · as of {report.as_of}")


def _differences(report: ComparisonReport, s: dict) -> list:
    story = [_p("Differences (A minus B)", s["h2"])]
    test = report.survival_test
    story.append(_p(f"Survival free of surgery, log-rank test: χ² = {num(test.statistic, 2)}, "
                    f"p = {num(test.p_value, 4)}." if test else
                    "Survival free of surgery: no log-rank test (too few treated in a cohort)."
                    if any(c.survival.too_few for c in report.cohorts) else
                    "Survival free of surgery: no log-rank test (no conversion to surgery in either cohort yet).",
                    s["body"]))
    rows = [["Time point", "Questionnaire", "Definition", "Difference (95% CI)"]]
    for row in diff_rows(report.differences):
        if not row.instrument:
            for code, x in row.adverse_events.items():
                rows.append([row.label, "Adverse events", code, _diff(x)])
            continue
        for code, x in shown_responders(row).items():
            rows.append([row.label, row.title, defs.DEFINITIONS[code].title, _diff(x)])
        if row.mean_change:
            x = row.mean_change
            rows.append([row.label, row.title, "mean change", _diff(x, percent=False)])
    story.append(_table(rows, [20 * mm, 26 * mm, 40 * mm, WIDTH - 86 * mm], s))
    story.append(_p(report.limits, s["limits"]))
    story += _adjusted(report, s)
    return story


def _adjusted(report: ComparisonReport, s: dict) -> list:
    adj = report.adjusted
    if not adj:
        return []
    story = [CondPageBreak(60 * mm), _p("Adjusted for case mix (A minus B)", s["h2"])]
    if adj.reason:
        return story + [_p(adj.reason, s["body"]), _p(adj.sentence, s["limits"])]
    rows = [["Outcome", "Unadjusted", "Weighted for case mix (bootstrap 95% CI)"],
            [f"Pain ≥ MCID at {adj.label.lower()}", signed(adj.unadjusted["difference"], True),
             _diff(adj)],
            [f"Free of surgery at {adj.horizon_months} months", signed(adj.unadjusted["surgery_free"], True),
             _diff(adj.surgery_free)]]
    story.append(_table(rows, [55 * mm, 30 * mm, WIDTH - 85 * mm], s))
    rows = [["Covariate", "Standardised difference before", "after weighting"]]
    rows += [[b.covariate, f"{num(b.smd_before, 2)}{' (> 0.1)' if b.flagged_before else ''}",
              f"{num(b.smd_after, 2)}{' (> 0.1)' if b.flagged else ''}"] for b in adj.balance]
    story.append(_table(rows, [55 * mm, 45 * mm, WIDTH - 100 * mm], s))
    story.append(KeepTogether([Spacer(1, 4), _chart(plots.overlap_figure(report), WIDTH * 0.85)]))
    story += [_p(adj.sentence, s["limits"]),
              _p(f"Method: {adj.method} ({adj.replicates} resamples, seed {adj.seed}). Propensity from: "
                 f"{', '.join(adj.covariates)}.", s["small"])]
    return story


def _diff(x: Difference | Adjusted | AdjustedInterval, percent: bool = True) -> str:
    if getattr(x, "too_few", False):
        return "too few"
    if x.difference is None:
        return "—"
    low, high = signed(x.ci_low, percent), signed(x.ci_high, percent)
    return f"{signed(x.difference, percent)} (95% CI {low} to {high})"


# ------------------------------------------------------------------------------------------------ case

def case_pdf(case) -> bytes:
    """The case report of one episode (reports.case.CaseReport) as PDF bytes."""
    s = _styles()
    e = case.episode
    t = case.timeline
    title = f"Case report: {case.initials}, {e}"
    sub = []
    if case.age_at_index is not None:
        sub.append(f"{case.age_at_index}-year-old {case.sex} at treatment")
    if e.icd10_code:
        sub.append(f"ICD-10-CM {e.icd10_code}")
    if case.grade:
        sub.append(f"{case.grade.get_system_display()} grade {case.grade.grade}")
    story = [_p(title, s["title"]), _p(" · ".join(sub), s["subtitle"]), _p("Result", s["h2"])]
    treated = f", {format_date(t.index_procedure.date)}" if t.index_procedure else ""
    story += [_p(f"Treatment: {case.treatment}{treated}.", s["body"]), _p(case.result, s["result"])]
    if case.time_point:
        story.append(_table([["Definition", f"At {case.time_point_label.lower()}", "Detail"]] +
                            [[v.title, v.label, v.detail] for v in case.verdicts],
                            [45 * mm, 25 * mm, WIDTH - 70 * mm], s))
    story.append(_p(case.not_evidence, s["box"]))
    story += _similar(case, s)
    # The questionnaires come before the radiographs: a chart row is small enough to fill the rest of the first
    # page, where the radiograph pair (kept in one piece) would leave it half empty.
    if case.trajectories:
        story += [CondPageBreak(45 * mm), _p("Questionnaires", s["h2"])]
        cells = [[_png(trajectory_chart(tr, "png"), WIDTH / 2 - 4 * mm), _p(tr.words, s["cell"])]
                 for tr in case.trajectories]
        for i in range(0, len(cells), 2):  # one table per row of two charts, so a page may break between rows
            pair = cells[i:i + 2] + ([["", ""]] if len(cells[i:i + 2]) == 1 else [])
            story.append(Table([[c[0] for c in pair], [c[1] for c in pair]], colWidths=[WIDTH / 2, WIDTH / 2],
                               hAlign="LEFT"))
    if case.images:
        png = comparison_png(e)
        if png:
            story.append(KeepTogether([_p("Radiographs before and after", s["h2"]), _png(png, WIDTH)]))
    story += [CondPageBreak(50 * mm), _p("Timeline", s["h2"])]
    story.append(_table([["Date", "Event"]] + [[f"{format_date(entry.date)}", _entry_text(entry, t)]
                                               for entry in t.entries], [25 * mm, WIDTH - 25 * mm], s))
    # the date and the disclaimer are in every page's footer rather than on a last line that may fall alone on a
    # page of its own
    return _build(story, title, f"orthoreg · case report · {case.initials} · as of {format_date(case.as_of)} · "
                                "suggestions, not medical advice")


def _similar(case, s: dict) -> list:
    story = [_p("What similar patients experienced", s["h2"])]
    sim = case.similar
    if not sim:
        return story + [_p("No similar patients can be selected.", s["body"])]
    text = f"{sim['n']} other patient(s) in the registry: {sim['description']}."
    if sim["relaxed"]:
        text += " Too few matched exactly, so the match was widened: " + "; ".join(sim["relaxed"]) + "."
    story.append(_p(text, s["body"]))
    p, tp = sim["pain"], sim["time_point"]
    if p:
        when = tp.label.lower()
        own = case.own_pain or {}
        mine = [num(own.get("baseline")), num(own.get("score")), num(own.get("change"))]
        story.append(_table(
            [["Pain, 0 to 10 (lower is better)", case.initials, "Similar patients: mean (95% CI); median, n"],
             ["Before treatment", mine[0], _stat_text(sim["baseline"])],
             [f"At {when}", mine[1], _stat_text(p.score)],
             [f"Change by {when}", mine[2], _stat_text(p.change)]],
            [45 * mm, 18 * mm, WIDTH - 63 * mm], s))
        story.append(Spacer(1, 4))
        rows = [["Due at " + when, f"{p.eligible}; {p.responded} answered "
                                   f"({pct(p.completeness.rate)}), {p.converted} converted"]]
        rows += [[defs.DEFINITIONS[k].title, _rate_text(v)] for k, v in p.responders.items()]
        twelve = sim["survival_12"]
        if twelve and twelve.survival is not None:
            rows.append(["Free of surgery at 12 months",
                         f"{percent_ci(twelve.survival, twelve.ci_low, twelve.ci_high)}, "
                         f"{twelve.at_risk} still followed"])
        story.append(_table(rows, [45 * mm, WIDTH - 45 * mm], s, header=False))
    if sim["too_few"]:
        story.append(_p("Fewer than 10 similar patients: these numbers are too uncertain to guide a decision.",
                        s["limits"]))
    story.append(_p(sim["report"].limits, s["small"]))
    return story


def _entry_text(entry, timeline) -> str:
    obj = entry.obj
    if entry.kind == "grade":
        return f"{obj.get_system_display()} grade {obj.grade}"
    if entry.kind in ("procedure", "surgery"):
        text = obj.get_kind_display()
        if obj.is_index:
            text += " (index procedure)"
        if obj == timeline.conversion:
            text += " (conversion to surgery)"
        return f"{text} · {obj.get_target_structure_display()}"
    if entry.kind == "adverse":
        return f"Adverse event ({obj.get_severity_display().lower()}{', serious' if obj.serious else ''}): " \
               f"{obj.description}"
    if entry.kind == "exam":
        parts = ["Exam"]
        if obj.dorsiflexion_deg is not None:
            parts.append(f"dorsiflexion {obj.dorsiflexion_deg}°")
        if obj.stability_findings:
            parts.append(obj.stability_findings)
        return "; ".join(parts)
    return str(getattr(obj, "text", obj))


# ------------------------------------------------------------------------------------------------ options

def options_pdf(page: dict) -> bytes:
    """The options for the next patient as a printable PDF to go through with the patient."""
    s = _styles()
    title = "Options for the next patient"
    story = [_p(title, s["title"]), _p(f"Patients like this one: {page['description']} · data as of {page['as_of']}",
                                       s["subtitle"]),
             _p(page["similar_rule"], s["body"]), _p(page["note"], s["limits"]),
             _p(f"“Better” here means: {page['definition']['title']} — {page['definition']['description']}",
                s["small"])]
    if not page["options"]:
        story.append(_p("The registry has no similar patients yet, so there is nothing to compare. That is not "
                        "evidence for or against any treatment.", s["body"]))
    for o in page["options"]:
        block = [_p(f"{o['label']}: {o['similar']} similar patient{'s' if o['similar'] != 1 else ''}", s["h2"])]
        if o["too_few"]:
            block.append(_p(f"Too few to say. {o['words']}", s["body"]))
        else:
            rows = [["Were they better?", " ".join(r["words"] for r in o["responders"])],
                    ["Did they need surgery later?", " ".join(x["words"] for x in o["surgery_free"])],
                    ["Serious problems", o["serious_adverse_events"]["words"]],
                    ["Not heard from", o["lost"]["words"]]]
            block.append(_table(rows, [45 * mm, WIDTH - 45 * mm], s, header=False))
        story.append(KeepTogether(block))
    return _build(story, title, f"orthoreg · {title} · {page['description']} · as of {page['as_of']}")
