"""The methods section every cohort report ends with, written by the software from the report itself: the RECORD
items (the STROBE extension for routinely collected data, PLoS Med 2015;12:e1001885) a reader needs to judge it —
data source and clinics, time span and as-of date, inclusion rules in words, outcome definitions with their
sources, completeness, statistical methods, and the limits."""

from __future__ import annotations

from . import definitions as defs
from .filters import CohortFilter
from .report_types import CohortReport, MethodsItem

RECORD_SOURCE = "RECORD statement, PLoS Med 2015;12:e1001885"
ALL = CohortFilter().describe()  # the description of a cohort with no filter

STATISTICS = (
    "Every rate is given with its numerator and denominator and a Wilson score 95% interval; differences of rates with "
    "Newcombe's hybrid score interval; means with t intervals (Welch for differences); medians with order-statistic "
    "intervals. Survival free of conversion to surgery: Kaplan-Meier with exponential Greenwood intervals "
    "(lifelines), median follow-up by reverse Kaplan-Meier, log-rank test between two cohorts. Cumulative incidence "
    "of conversion with death as the competing event: Aalen-Johansen, 95% interval by the delta method on "
    "log(-log) (as lifelines; " + defs.COMPETING_SOURCE + "). Responders at every threshold: the share of patients "
    "improved from baseline by at least each amount. Two cohorts compared: inverse probability of treatment weighting "
    "(propensity by logistic regression, statsmodels; stabilised weights truncated at the 1st and 99th percentiles), "
    "balance by standardised mean differences (flagged above 0.1), bootstrap 95% percentile intervals (Poisson "
    "resampling within each cohort, seeded). Small numbers: no estimate from fewer than 5 patients, and no curve "
    "where fewer than 10 remain at risk.")


def _words(f: CohortFilter) -> str:
    text = f.describe()
    rules = [f"Treated episodes (an episode with an index procedure) matching: {text}." if text != ALL else
             "Every treated episode (an episode with an index procedure) of the clinics."]
    if f.consented_only:
        rules.append("Only patients who consented to the registry are counted.")
    if f.exclude_episodes:
        rules.append(f"{len(f.exclude_episodes)} episode(s) excluded by name (e.g. the patient the report is for).")
    return " ".join(rules)


def methods(report: CohortReport, f: CohortFilter, *, clinic_names: list[str]) -> list[MethodsItem]:
    """The items in RECORD order, from a cohort report (analytics.selectors) and its filter."""
    c = report.cohort
    points = [row for row in report.flow if row.time_point != "baseline"]
    completeness = "; ".join(
        f"{row.label}: {row.responded} of {row.eligible} due answered"
        + (f" ({row.completeness:.0%})" if row.completeness is not None else "")
        for row in points) or "no follow-up time point due yet"
    instruments: dict = {}
    for tp in report.time_points:
        for row in tp.instruments:
            marks = row.change_marks
            text = row.title
            if row.mcid is not None:
                text += f" (MCID {row.mcid:g}"
                text += f" or {row.mcid_percent:g}%" if row.mcid_percent else ""
                text += ")"
            if marks and marks.pass_:
                text += f"; PASS {marks.pass_.value:g}: {marks.pass_.source}"
            instruments.setdefault(row.instrument, text)
    definitions = " ".join(f"{d['title']}: {d['description']}" + (f" Source: {d['source']}." if d["source"] else "")
                           for d in report.definitions["responders"].values())
    lost = [row for row in report.loss_to_follow_up if row.level in ("serious", "some")]
    limits = report.limits
    if lost:
        limits += " Completeness: " + "; ".join(f"{row.label} {row.judgement}" for row in lost) + "."
    limits += (" Outcomes are patient-reported and unblinded; scores after a conversion to surgery are not counted "
               "as scores (the conversion is a failure). Adjustment, where shown, removes only measured differences.")
    items = [
        ("Data source", (
            f"orthoreg registry records of {len(clinic_names)} clinic(s): {', '.join(clinic_names) or 'none'}. "
            "Procedures, grades, exams and adverse events are entered by clinic staff; questionnaires are answered by "
            "patients at scheduled follow-ups. Analysis facts are rebuilt from the records before each report.")),
        ("Time span", (
            f"Index procedures from {c.index_from or '—'} to {c.index_to or '—'}; data as of {report.as_of}.")),
        ("Inclusion", _words(f)),
        ("Outcomes", (
            "Instruments: " + ("; ".join(instruments.values()) or "none answered") + ". " + defs.ELIGIBLE_TEXT + " "
            + defs.CONVERSION_TEXT + " " + definitions)),
        ("Completeness", completeness + ". " + defs.RESPONDED_TEXT),
        ("Statistical methods", STATISTICS),
        ("Limits", limits),
        ("Reporting", f"Items after the {RECORD_SOURCE}."),
    ]
    return [MethodsItem(item=item, text=text) for item, text in items]
