"""Reads of the analytics app: the cohort report every page, the API and the command line show.

    report = cohort_report(CohortFilter(condition="hallux_rigidus", procedures=("bmc", "prolotherapy")),
                           clinic_ids=access.clinic_ids(user, access.RESEARCH))

A report is a typed object (report_types.CohortReport; `.document()` is its JSON, schema "orthoreg.cohort-report/1");
`comparison_report` (a report_types.ComparisonReport) puts two side by side with their differences. Everything is aggregated in the database (see metrics.py and survival.py); a report is
cached for a few minutes under its filters, the caller's clinics, the as-of date and a stamp of the data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
from django.core.cache import cache
from django.db import connections, transaction
from django.db.models import Avg, Count, Max, Min, Q
from django.urls import reverse
from django.utils import timezone

from orthoreg import replica
from orthoreg.accounts import access
from orthoreg.registry.coding import ProcedureKind
from orthoreg.registry.models import Clinic, Patient

from . import cohorts, disclosure, facts, methods, metrics, stats, summaries, survival, weighting
from . import definitions as defs
from .filters import CohortFilter, CohortFilterError
from .report_types import Adjusted, CohortReport, ComparisonReport, DifferenceRow, SurvivalAt

SCHEMA = "orthoreg.cohort-report/1"
CACHE_SECONDS = 300
HEADLINE_TIME_POINTS = ("6m", "12m", "3m", "24m", "6w")
SURVIVAL_MONTHS = (3, 6, 12, 24, 36, 60)
DAYS_PER_MONTH = 365.25 / 12


@contextmanager
def analytics_session():
    """Run report queries with settings that suit them: on PostgreSQL inside one transaction with JIT
    compilation off (it costs seconds on these one-off aggregates) and more sort/hash memory. On SQLite nothing
    changes (a transaction there would take the write lock). On the read replica when the caller reads there."""
    alias = replica.read_alias()
    db = connections[alias]
    if db.vendor != "postgresql" or db.in_atomic_block:
        yield
        return
    with transaction.atomic(using=alias):
        with db.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off")
            cursor.execute("SET LOCAL work_mem = '64MB'")
        yield


# ------------------------------------------------------------------------------------------------ sections

def cohort_summary(members) -> tuple[dict, dict, list[int]]:
    """Who is in the cohort (counts, index dates, age and sex, grades and index procedures), its adverse events
    (adverse_events) and its clinics' ids, in two passes over the cohort's episode facts."""
    sexes = Patient.Sex.values
    data = members.aggregate(
        episodes=Count("pk"), patients=Count("patient_id", distinct=True),
        clinics=Count("clinic_id", distinct=True), index_from=Min("index_date"), index_to=Max("index_date"),
        age_mean=Avg("age"), age_min=Min("age"), age_max=Max("age"),
        ae_any=Count("pk", filter=Q(adverse_event=True)), ae_serious=Count("pk", filter=Q(serious_adverse_event=True)),
        **{f"sex_{s}": Count("pk", filter=Q(sex=s)) for s in sexes})
    grades: Counter = Counter()
    kinds: Counter = Counter()
    clinic_ids: set[int] = set()
    for grade, kind, clinic_id, n in (members.values("grade", "index_kind", "clinic_id").annotate(n=Count("pk"))
                                      .values_list("grade", "index_kind", "clinic_id", "n").order_by()):
        grades[grade] += n
        kinds[kind] += n
        clinic_ids.add(clinic_id)
    summary = {
        "episodes": data["episodes"], "patients": data["patients"], "clinics": data["clinics"],
        "index_from": _iso(data["index_from"]), "index_to": _iso(data["index_to"]),
        "age": {"mean": None if data["age_mean"] is None else round(float(data["age_mean"]), 1),
                "min": data["age_min"], "max": data["age_max"]},
        "sex": {s: data[f"sex_{s}"] for s in sexes if data[f"sex_{s}"]},
        "grades": {("none" if g is None else str(g)): n
                   for g, n in sorted(grades.items(), key=lambda x: (x[0] is None, x[0] or 0))},
        "index_procedures": [{"kind": k, "label": kind_label(k), "episodes": kinds[k]}
                             for k in sorted(kinds, key=lambda k: (-kinds[k], k))],
    }
    return summary, adverse_events(data["episodes"], data["ae_any"], data["ae_serious"]), sorted(clinic_ids)


def adverse_events(episodes: int, any_: int, serious: int) -> dict:
    """Episodes with any / a serious adverse event of the index procedure or a later non-surgical procedure
    (counted by cohort_summary), as proportions of the cohort's episodes."""
    return {"any": summaries.proportion(any_, episodes), "serious": summaries.proportion(serious, episodes)}


def survival_section(pairs: list[tuple[int, bool]]) -> dict:
    """Kaplan-Meier survival free of conversion. Under the small-number rule (summaries.too_few) there is no
    estimate at a time when fewer than 5 are still followed, and the drawn curve stops where they become fewer."""
    km = stats.kaplan_meier([d for d, _ in pairs], [e for _, e in pairs])
    at = []
    for months in SURVIVAL_MONTHS:
        days = round(months * DAYS_PER_MONTH)
        row = km.at(days)
        at_risk = km.at_risk(days)
        estimate = {"survival": None if row is None else round(row.survival, 6),
                    "ci_low": None if row is None else round(row.ci_low, 6),
                    "ci_high": None if row is None else round(row.ci_high, 6),
                    "events": None if row is None else km.events_by(days)}
        at.append({"months": months, "days": days, "at_risk": at_risk,
                   **summaries.withhold(estimate, at_risk, ("survival", "ci_low", "ci_high", "events"))})
    few = summaries.too_few(km.n)
    durations = sorted(d for d, _ in pairs)
    # The last day with at least MIN_ESTIMATE_N still followed: the curve is drawn up to it and no further.
    horizon = None if few else durations[-summaries.MIN_ESTIMATE_N]
    return {
        "event": "conversion to surgery", "time_unit": "days", "n": km.n, "events": km.events,
        "censored": km.censored, "too_few": few,
        "median_event_free_days": None if few else km.median,
        "median_follow_up_days": None if few else km.median_follow_up,
        "max_follow_up_days": None if few else km.durations_max, "estimable_until_days": horizon, "at": at,
        "table": [] if few else [r.as_dict() for r in km.table if r.time <= horizon],
        "curve": [] if few else [r for r in _band(km) if r["time"] <= horizon]}


CURVE_MIN_AT_RISK = 10  # every curve is cut where fewer than this many remain at risk


def incidence_section(rows: list[tuple[int, int, int]]) -> tuple[list[dict], dict]:
    """The Aalen-Johansen cumulative incidence of conversion with death as the competing event (stats.aalen_johansen)
    from (days, status, count) rows: its table (`cumulative_incidence`: time 0 and every time with an event, up to
    where fewer than CURVE_MIN_AT_RISK remain at risk, no further) and what goes with it (`competing_risks`: counts,
    estimates at 1, 2 ... years, where the curve was cut, and the sentence saying which curve is shown and why)."""
    ci = stats.aalen_johansen([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    n = ci.n
    events = int(ci.events.sum()) if n else 0
    deaths = int(ci.competing.sum()) if n else 0
    few = summaries.too_few(n)
    table: list[dict] = []
    cut = None
    if n and not few:
        short = np.nonzero(ci.at_risk < CURVE_MIN_AT_RISK)[0]
        stop = int(short[0]) if len(short) else len(ci.time)
        cut = float(ci.time[stop]) if stop < len(ci.time) else None
        shown = np.arange(stop)
        shown = shown[(shown == 0) | (ci.events[:stop] > 0) | (ci.competing[:stop] > 0)]
        table = [{"time": float(ci.time[i]), "at_risk": int(ci.at_risk[i]), "events": int(ci.events[i]),
                  "competing": int(ci.competing[i]), "incidence": _round(ci.incidence[i]),
                  "ci_low": _round(ci.ci_low[i]), "ci_high": _round(ci.ci_high[i])} for i in shown]
    at = []
    for months in SURVIVAL_MONTHS:
        days = round(months * DAYS_PER_MONTH)
        at_risk = ci.at_risk_at(days) if n else 0
        i = ci.index_at(days) if n else None
        shown_here = i is not None and not few and at_risk >= CURVE_MIN_AT_RISK
        at.append({"months": months, "days": days, "at_risk": at_risk,
                   "incidence": _round(ci.incidence[i]) if shown_here else None,
                   "ci_low": _round(ci.ci_low[i]) if shown_here else None,
                   "ci_high": _round(ci.ci_high[i]) if shown_here else None,
                   "too_few": not shown_here and at_risk > 0})
    return table, {
        "event": "conversion to surgery", "competing_event": "death", "time_unit": "days", "n": n,
        "events": events, "deaths": deaths, "censored": n - events - deaths, "too_few": few,
        "min_at_risk": CURVE_MIN_AT_RISK, "cut_at_days": cut, "at": at,
        "shown": defs.competing_sentence(deaths=deaths, cut_days=cut, min_at_risk=CURVE_MIN_AT_RISK)}


def _band(km: stats.KaplanMeier) -> list[dict]:
    """The steps of the drawn curve and its 95% band (KaplanMeier.band), only where the estimate or its interval
    changes: what the charts draw, the same numbers as the estimates at given times."""
    out, last = [], None
    for row in km.band():
        d = row.as_dict()
        key = (d["survival"], d["ci_low"], d["ci_high"])
        if key != last:
            out.append({k: d[k] for k in ("time", "at_risk", "survival", "ci_low", "ci_high")})
            last = key
    return out


def headline(points: list[dict]) -> dict | None:
    """The time point a report leads with (6 months when it has answers), its pain row and main rates."""
    by_tp = {tp["time_point"]: tp for tp in points}
    for label in HEADLINE_TIME_POINTS:
        tp = by_tp.get(label)
        if not tp:
            continue
        pain = next((i for i in tp["instruments"] if i["instrument"] == defs.PAIN_INSTRUMENT), None)
        if pain and pain["eligible"]:
            return {"time_point": tp["time_point"], "label": tp["label"], "instrument": pain["instrument"],
                    "eligible": pain["eligible"], "responded": pain["responded"], "lost": pain["lost"],
                    "responders": pain["responders"]}
    return None


def _iso(day) -> str | None:
    return day.isoformat() if day else None


def _definitions() -> dict:
    return {
        "eligible": defs.ELIGIBLE_TEXT, "responded": defs.RESPONDED_TEXT, "rates": defs.RATE_TEXT,
        "conversion": defs.CONVERSION_TEXT, "adverse_events": defs.ADVERSE_TEXT,
        "responders": {d.code: {"title": d.title, "description": d.description, "source": d.source,
                                "verify": d.verify} for d in defs.DEFINITIONS.values()},
        "oarsi_thresholds": defs.oarsi_thresholds(),
    }


# ------------------------------------------------------------------------------------------------ reports

def _compute(f: CohortFilter, *, clinic_ids, as_of: dt.date, analyses: bool = True, cells: list[dict] | None = None,
             rows_at: Callable[[str], list[tuple]] | None = None) -> tuple[CohortReport, list[tuple[int, bool]]]:
    """The report of one cohort; `cells` its outcome table when the caller has counted it (outcome_cells), `rows_at`
    its per-episode rows at a time point (metrics.comparison_rows) when the caller reads them anyway: the baseline
    of the groups is then taken from them instead of another pass over the outcome facts."""
    infos = metrics.instrument_infos()
    members = cohorts.cohort_episodes(f, clinic_ids=clinic_ids)
    summary, events, clinic_ids_in = cohort_summary(members)
    treated = summary["episodes"]
    if not treated:
        cells = []
    elif cells is None:
        cells = outcome_cells([f], clinic_ids=clinic_ids, as_of=as_of)[0]
    competing = survival.competing_rows(members, as_of=as_of) if treated and analyses else []
    if analyses:  # the Kaplan-Meier pairs are the same rows with death as censoring
        pairs = [(d, st == 1) for d, st, k in competing for _ in range(k)]
    else:
        pairs = survival.survival_pairs(members, as_of=as_of) if treated else []
    passes = {code: p for code, p in metrics.pass_infos().items() if p.applies(f.condition, f.site)} \
        if analyses else {}
    points = summaries.time_points(cells, infos, treated=treated, passes=passes, distributions=analyses)
    top = headline(points)
    sections = {
        "schema": SCHEMA, "generated_at": timezone.now().isoformat(timespec="seconds"), "as_of": as_of.isoformat(),
        "filters": f.as_dict(), "description": f.describe(), "cohort": summary,
        "headline": top, "time_points": points, "flow": summaries.flow(points, treated),
        "adverse_events": events, "survival": survival_section(pairs),
        "limits": defs.limits_sentence(lost=top["lost"] if top else 0, eligible=top["eligible"] if top else 0,
                                       time_point_label=(top["label"].lower() if top else "")),
        "definitions": _definitions(),
    }
    if analyses:
        sections["cumulative_incidence"], sections["competing_risks"] = incidence_section(competing)
        anchor = infos.get(defs.PAIN_INSTRUMENT)
        # the baseline of the groups at the headline time point only: one pass over that time point's facts
        groups = [] if anchor is None or not treated or not top else \
            summaries.baseline_groups(rows_at(top["time_point"]), anchor, top["time_point"]) if rows_at else \
            metrics.baseline_by_group(metrics.eligible_outcomes(members, as_of=as_of)
                                      .filter(time_point=top["time_point"]), anchor)
        sections["loss_to_follow_up"] = summaries.loss_to_follow_up(points, groups, defs.PAIN_INSTRUMENT)
    report = CohortReport.model_validate(sections)
    if analyses:
        names = list(Clinic.objects.filter(pk__in=clinic_ids_in).order_by("name")
                     .values_list("name", flat=True)) if treated else []
        report.methods = methods.methods(report, f, clinic_names=names)
    return report, pairs


def data_stamp() -> str:
    """Changes whenever the facts a report reads change (facts.version: one primary-key look-up); other edits
    (a clinic's name) are covered by the cache's time limit."""
    return facts.version()


def _cache_key(kind: str, filters: list[CohortFilter], clinic_ids, as_of: dt.date) -> str:
    payload = json.dumps([SCHEMA, kind, [f.as_dict() for f in filters], sorted(clinic_ids), as_of.isoformat(),
                          data_stamp()], default=str, sort_keys=True)
    return "orthoreg:analytics:" + hashlib.sha256(payload.encode()).hexdigest()


def cohort_report(f: CohortFilter, *, clinic_ids, as_of: dt.date | None = None, use_cache: bool = True,
                  analyses: bool = True) -> CohortReport:
    """The full report of one cohort among the clinics `clinic_ids` (the caller's scope)."""
    as_of = as_of or timezone.localdate()
    key = _cache_key("cohort" if analyses else "cohort-plain", [f], clinic_ids, as_of) if use_cache else None
    if key and (hit := cache.get(key)) is not None:
        return hit
    with analytics_session():
        report, _ = _compute(f, clinic_ids=clinic_ids, as_of=as_of, analyses=analyses)
    if key:
        cache.set(key, report, CACHE_SECONDS)
    return report


def outcome_cells(filters: list[CohortFilter], *, clinic_ids, as_of: dt.date, disjoint: bool = False
                  ) -> list[list[dict]]:
    """The outcome table of each cohort: from the clinics' counted cells for whole clinics or one index procedure in
    whole clinics, else counted from the cohort's outcome facts (metrics.outcome_cells); cohorts without a common
    episode (`disjoint`) in one pass where the database does that faster (metrics.outcome_cells_of)."""
    out: list[list[dict] | None] = [None] * len(filters)
    counted = []
    for i, f in enumerate(filters):
        # the whole of some clinics, or all of their episodes of one index procedure: their counted cells give
        # the outcome table
        whole, one_kind = cohorts.clinics_only(f), cohorts.clinics_and_kind_only(f)
        if whole or one_kind:
            everyone = list(Clinic.objects.filter(pk__in=list(clinic_ids), code__in=f.clinics).values_list(
                "pk", flat=True)) if f.clinics else list(clinic_ids)
            out[i] = metrics.clinic_cells(everyone, as_of=as_of, index_kind=f.index_kind if one_kind else None)
        else:
            counted.append(i)
    tables = metrics.outcome_cells_of([cohorts.cohort_episodes(filters[i], clinic_ids=clinic_ids) for i in counted],
                                      as_of=as_of, disjoint=disjoint)
    for i, table in zip(counted, tables):
        out[i] = table
    return [table or [] for table in out]


class CohortRows:
    """The per-episode rows (metrics.comparison_rows) of the two cohorts of a comparison at a time point, read once:
    the baseline of the groups of each report and the adjusted section both use them."""

    def __init__(self, a: CohortFilter, b: CohortFilter, *, clinic_ids, as_of: dt.date):
        self.filters = {True: a, False: b}
        self.clinic_ids, self.as_of = clinic_ids, as_of
        self.info = metrics.instrument_infos().get(defs.PAIN_INSTRUMENT)
        self.read: dict[tuple[bool, str], list[tuple]] = {}

    def at(self, first: bool, time_point: str) -> list[tuple]:
        key = (first, time_point)
        if key not in self.read:
            members = cohorts.cohort_episodes(self.filters[first], clinic_ids=self.clinic_ids)
            self.read[key] = [] if self.info is None else metrics.comparison_rows(
                members, as_of=self.as_of, time_point=time_point, info=self.info)
        return self.read[key]

    def reader(self, first: bool) -> Callable[[str], list[tuple]]:
        return lambda time_point: self.at(first, time_point)


def comparison_report(a: CohortFilter, b: CohortFilter, *, clinic_ids, as_of: dt.date | None = None,
                      use_cache: bool = True, analyses: bool = True) -> ComparisonReport:
    """Two cohorts side by side: both reports, their differences with 95% CIs and the log-rank test."""
    as_of = as_of or timezone.localdate()
    key = _cache_key("comparison" if analyses else "comparison-plain", [a, b], clinic_ids, as_of) \
        if use_cache else None
    if key and (hit := cache.get(key)) is not None:
        return hit
    rows = CohortRows(a, b, clinic_ids=clinic_ids, as_of=as_of)
    with analytics_session():
        overlap = 0 if cohorts.disjoint(a, b) else cohorts.cohort_episodes(a, clinic_ids=clinic_ids).filter(
            pk__in=cohorts.cohort_episodes(b, clinic_ids=clinic_ids).values("pk")).count()
        # both outcome tables in one pass over the outcome facts where the database does that faster
        cells_a, cells_b = outcome_cells([a, b], clinic_ids=clinic_ids, as_of=as_of, disjoint=not overlap)
        first, pairs_a = _compute(a, clinic_ids=clinic_ids, as_of=as_of, analyses=analyses, cells=cells_a,
                                  rows_at=rows.reader(True))
        second, pairs_b = _compute(b, clinic_ids=clinic_ids, as_of=as_of, analyses=analyses, cells=cells_b,
                                   rows_at=rows.reader(False))
    report = ComparisonReport.model_validate({
        "schema": SCHEMA, "comparison": True, "generated_at": first.generated_at, "as_of": as_of.isoformat(),
        "cohorts": [first, second],
        "differences": differences(first, second),
        "survival_test": None if summaries.too_few(len(pairs_a)) or summaries.too_few(len(pairs_b)) else
        stats.logrank([d for d, _ in pairs_a], [e for _, e in pairs_a], [d for d, _ in pairs_b],
                      [e for _, e in pairs_b]),
        "overlap": overlap,
        "limits": comparison_limits(first, second, overlap),
    })
    if analyses:
        with analytics_session():
            report.adjusted = adjusted_section(a, b, first, second, overlap, clinic_ids=clinic_ids, as_of=as_of,
                                               rows=rows)
    if key:
        cache.set(key, report, CACHE_SECONDS)
    return report


ADJUSTED_HORIZON_MONTHS = 12


def adjusted_section(a: CohortFilter, b: CohortFilter, first: CohortReport, second: CohortReport, overlap: int, *,
                     clinic_ids, as_of: dt.date, rows: CohortRows | None = None) -> Adjusted:
    """The case-mix adjusted comparison (weighting.py): the difference (A minus B) in the pain MCID responder rate at
    the headline time point and in survival free of surgery at 12 months, weighted for the measured differences;
    or `reason` when no adjusted figure can be given."""
    head = first.headline or second.headline
    info = metrics.instrument_infos().get(defs.PAIN_INSTRUMENT)
    base = {"definition": defs.MCID.code, "instrument": defs.PAIN_INSTRUMENT,
            "time_point": head.time_point if head else None, "label": head.label if head else None,
            "horizon_months": ADJUSTED_HORIZON_MONTHS,
            "sentence": weighting.SENTENCE.format(covariates="age, sex, condition, grade, baseline pain and clinic, "
                                                             "as far as they were recorded")}
    if overlap:
        return Adjusted.model_validate({
            **base, "reason": "The two cohorts share patients, so they cannot be weighted against each other: no "
                              "adjusted figure."})
    if head is None or info is None:
        return Adjusted.model_validate({**base, "reason": "No time point with pain answers yet: no adjusted figure."})
    rows = rows or CohortRows(a, b, clinic_ids=clinic_ids, as_of=as_of)
    both = rows.at(True, head.time_point) + rows.at(False, head.time_point)
    if not both:
        return Adjusted.model_validate({**base, "reason": "Nobody treated in either cohort: no adjusted figure."})
    in_a = np.arange(len(both)) < len(rows.at(True, head.time_point))
    (_pk, age, sex, condition, grade, clinic, baseline, answered, score, bl_out, converted_tp, eligible, days,
     converted) = zip(*both)
    score_, base_ = np.array(score, dtype=float), np.array(bl_out, dtype=float)
    with np.errstate(invalid="ignore"):
        met = summaries.mcid_met(info, score_, base_)
    known = np.array(answered, dtype=bool) & ~np.isnan(score_) & ~np.isnan(base_)
    # not eligible: unknown; converted by then: a failure; answered with a score and a baseline: the MCID decides
    responder = np.select([~np.array(eligible, dtype=bool), np.array(converted_tp, dtype=bool), known],
                          [np.nan, 0.0, met.astype(float)], np.nan)
    x, names = weighting.design({
        "age": ("number", age), "sex": ("category", sex), "condition": ("category", condition),
        "grade": ("number", grade), "baseline pain": ("number", baseline), "clinic": ("category", clinic)})
    result = weighting.adjusted_difference(
        x, names, in_a, responder, np.array(days, dtype=float), np.array(converted, dtype=bool),
        horizon_days=round(ADJUSTED_HORIZON_MONTHS * DAYS_PER_MONTH))
    return Adjusted.model_validate({**base, **result})


def differences(first: CohortReport, second: CohortReport) -> list[DifferenceRow]:
    """Per time point and instrument: first minus second, for every responder rate (Newcombe 95% CI) and the mean
    change from baseline (Welch 95% CI)."""
    theirs = {(tp.time_point, i.instrument): i for tp in second.time_points for i in tp.instruments}
    out = []
    for tp in first.time_points:
        for mine in tp.instruments:
            other = theirs.get((tp.time_point, mine.instrument))
            if other is None:
                continue
            rates = {}
            for code, r1 in mine.responders.items():
                r2 = other.responders.get(code)
                if r2 is None:
                    continue
                if r1.too_few or r2.too_few:  # the small-number rule: no difference, "too few"
                    rates[code] = {"difference": None, "ci_low": None, "ci_high": None, "too_few": True}
                    continue
                d, low, high = stats.newcombe_difference(r1.numerator, r1.denominator, r2.numerator, r2.denominator)
                rates[code] = {"difference": _round(d), "ci_low": _round(low), "ci_high": _round(high),
                               "too_few": False}
            change = None
            if mine.change and other.change and (mine.change.too_few or other.change.too_few):
                change = {"difference": None, "ci_low": None, "ci_high": None, "too_few": True}
            elif mine.change and other.change:
                c1, c2 = mine.change, other.change
                d, low, high = stats.mean_difference_ci(c1.n, c1.mean, c1.sd, c2.n, c2.mean, c2.sd)
                change = {"difference": _round(d), "ci_low": _round(low), "ci_high": _round(high), "too_few": False}
            out.append(DifferenceRow.model_validate({
                "time_point": tp.time_point, "label": tp.label, "instrument": mine.instrument, "title": mine.title,
                "responders": rates, "mean_change": change}))
    ae = {}
    for code in ("any", "serious"):
        r1, r2 = getattr(first.adverse_events, code), getattr(second.adverse_events, code)
        if r1.too_few or r2.too_few:
            ae[code] = {"difference": None, "ci_low": None, "ci_high": None, "too_few": True}
            continue
        d, low, high = stats.newcombe_difference(r1.numerator, r1.denominator, r2.numerator, r2.denominator)
        ae[code] = {"difference": _round(d), "ci_low": _round(low), "ci_high": _round(high), "too_few": False}
    out.append(DifferenceRow.model_validate({
        "time_point": None, "label": "Any time", "instrument": None, "title": "Adverse events", "responders": {},
        "mean_change": None, "adverse_events": ae}))
    return out


def _round(value):
    return None if value is None else round(float(value), 6)


def comparison_limits(first: CohortReport, second: CohortReport, overlap: int) -> str:
    """The limits of a comparison: each cohort's loss to follow-up stated on its own (never pooled)."""
    losses = [(letter, r.headline.lost, r.headline.eligible, r.headline.label.lower())
              for letter, r in zip(("A", "B"), (first, second)) if r.headline]
    text = defs.comparison_limits_sentence(losses)
    if overlap:
        text += (f" {overlap} episode{'s are' if overlap != 1 else ' is'} in both cohorts, so they are not "
                 "independent and the intervals of the differences are too narrow.")
    return text


def report_for(cohort: CohortFilter, versus: CohortFilter | None, *, clinic_ids, as_of: dt.date | None = None
               ) -> CohortReport | ComparisonReport:
    """The cohort report, or the comparison when a second cohort is given: what the page, API and CLI call."""
    if versus is None:
        return cohort_report(cohort, clinic_ids=clinic_ids, as_of=as_of)
    return comparison_report(cohort, versus, clinic_ids=clinic_ids, as_of=as_of)


def kind_label(kind: str) -> str:
    try:
        return ProcedureKind(kind).label
    except ValueError:
        return kind


def clinic_glance(user) -> dict | None:
    """The user's clinics' outcomes at a glance (the home page): None for users without the research capability.
    The numbers come from the cached cohort report of all treated episodes of the user's clinics, the same cohort as
    the cohort page with no filter: for a researcher, patients with registry consent only, under the same disclosure
    rules. The caller brings the facts up to date first (facts.ensure_current), as for any report."""
    ids = access.clinic_ids(user, access.RESEARCH)
    if not ids:
        return None
    f = CohortFilter(consented_only=access.research_needs_consent(user))  # a researcher: consented patients only
    try:
        disclosure.check(f, None, clinic_ids=ids, user=user)
    except CohortFilterError as exc:
        return {"withheld": " ".join(m for msgs in exc.errors.values() for m in msgs),
                "url": reverse("reports:cohort")}
    report = cohort_report(f, clinic_ids=ids)
    head = report.headline
    twelve: SurvivalAt | None = next((a for a in report.survival.at if a.months == 12), None)
    return {
        "consented_only": f.consented_only,
        "clinics": list(Clinic.objects.filter(pk__in=ids).order_by("name").values_list("name", flat=True)),
        "treated": report.cohort.episodes, "headline": head,
        "pain_50": head.responders.get(defs.PAIN_50.code) if head else None,
        "survival_12": twelve, "serious": report.adverse_events.serious,
        "follow_up_days": report.survival.median_follow_up_days,
        "url": reverse("reports:cohort") + "?show=1",
    }
