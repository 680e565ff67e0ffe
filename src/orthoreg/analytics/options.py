"""Options for the next patient (issue 16 item 6): for a patient's condition, site, grade, age band (and sex if
chosen), each treatment the registry has data for, side by side, in plain words.

    page = options_for(OptionsQuery.parse({"condition": "hallux_rigidus", "site": "first_mtp", "side": "right",
                                           "grade": "3", "age_band": "40-49"}), clinic_ids=ids)

Similar patients: the same condition at the same site, the same grade, an age at treatment in the band, the same
sex when one is chosen. Left and right are pooled (the side does not change what a treatment does; the side asked
for is printed). Each option is a cohort report (selectors.cohort_report) of the similar patients whose index
procedure was that treatment; its figures keep every small-number rule of the cohort report.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from orthoreg.registry.coding import BodySite, Condition, Side
from orthoreg.registry.models import Patient

from . import cohorts, selectors, summaries
from . import definitions as defs
from .filters import CohortFilter, CohortFilterError
from .report_types import CohortReport

RESPONDER_MONTHS = (("6m", 6), ("12m", 12))
SURGERY_FREE_MONTHS = (12, 24)
AGE_BAND = re.compile(r"(\d{1,3})-(\d{1,3})")

NOTE = ("These are observational registry data: what happened to earlier patients like this one, who chose their "
        "treatment with their clinicians. They are not a promise of what will happen, and the treatments were not "
        "compared in a trial: patients who chose one may differ from those who chose another.")


def definition_code() -> str:
    """The clinic's chosen responder definition (ORTHOREG_OPTIONS_DEFINITION; default: at least the MCID less pain)."""
    code = getattr(settings, "ORTHOREG_OPTIONS_DEFINITION", None) or defs.MCID.code
    if code not in defs.DEFINITIONS:
        raise ValueError(f"ORTHOREG_OPTIONS_DEFINITION: unknown responder definition {code!r} "
                         f"(use one of {', '.join(defs.DEFINITIONS)})")
    return code


@dataclass(frozen=True)
class OptionsQuery:
    condition: str
    site: str
    side: str
    grade: int
    age_min: int
    age_max: int
    sex: str = ""

    @classmethod
    def parse(cls, params) -> OptionsQuery:
        """From a query string or command-line options; CohortFilterError naming every bad field."""
        errors: dict[str, list[str]] = {}

        def choice(name: str, choices, required: bool = True) -> str:
            value = str(params.get(name) or "").strip()
            if not value:
                if required:
                    errors[name] = ["Give a value."]
                return ""
            if value not in choices:
                errors[name] = [f"Unknown value {value!r}; use one of {', '.join(sorted(choices))}."]
            return value

        condition = choice("condition", Condition.values)
        site = choice("site", BodySite.values)
        side = choice("side", Side.values)
        sex = choice("sex", Patient.Sex.values, required=False)
        grade = -1
        raw = str(params.get("grade") or "").strip()
        if not raw.isdigit() or not 0 <= int(raw) <= 4:
            errors["grade"] = ["Give the grade as a whole number from 0 to 4."]
        else:
            grade = int(raw)
        band = AGE_BAND.fullmatch(str(params.get("age_band") or "").strip())
        low = high = 0
        if not band or int(band[1]) > int(band[2]) or int(band[2]) > 120:
            errors["age_band"] = ["Give the age band as FROM-TO in years, e.g. 40-49."]
        else:
            low, high = int(band[1]), int(band[2])
        if errors:
            raise CohortFilterError(errors)
        return cls(condition, site, side, grade, low, high, sex)

    def cohort(self, kind: str | None = None, *, consented_only: bool = False) -> CohortFilter:
        return CohortFilter(condition=self.condition, site=self.site, grade_min=self.grade, grade_max=self.grade,
                            age_min=self.age_min, age_max=self.age_max, sex=self.sex or None,
                            procedures=(kind,) if kind else (), consented_only=consented_only)

    def describe(self) -> str:
        parts = [Condition(self.condition).label, BodySite(self.site).label, f"{Side(self.side).label.lower()} side",
                 f"grade {self.grade}", f"age {self.age_min}–{self.age_max}"]
        if self.sex:
            parts.append(Patient.Sex(self.sex).label.lower())
        return " · ".join(parts)

    def as_dict(self) -> dict:
        return {"condition": self.condition, "site": self.site, "side": self.side, "grade": self.grade,
                "age_band": f"{self.age_min}-{self.age_max}", "sex": self.sex or None}


def _pct(value: float) -> str:
    return f"{value * 100:.0f}%"


def _responders(report: CohortReport, code: str) -> list[dict]:
    out = []
    rows = {tp.time_point: tp for tp in report.time_points}
    title = defs.DEFINITIONS[code].title
    for tp, months in RESPONDER_MONTHS:
        point = rows.get(tp)
        pain = next((i for i in point.instruments if i.instrument == defs.PAIN_INSTRUMENT), None) if point else None
        r = pain.responders.get(code) if pain else None
        if r is None or not r.denominator or r.too_few or r.rate is None or r.ci_low is None or r.ci_high is None:
            known = r.denominator if r else 0
            out.append({"months": months, "definition": code, "rate": None, "ci_low": None, "ci_high": None,
                        "numerator": None, "denominator": known, "too_few": True,
                        "words": f"At {months} months: too few to say ({known} with a known result)." if known else
                        f"At {months} months: nobody has reached this point yet."})
            continue
        out.append({"months": months, "definition": code, "rate": r.rate, "ci_low": r.ci_low,
                    "ci_high": r.ci_high, "numerator": r.numerator, "denominator": r.denominator,
                    "too_few": False,
                    "words": (f"At {months} months: {r.numerator} of {r.denominator} whose result is known "
                              f"({_pct(r.rate)}) were better ({title}); the true share is likely between "
                              f"{_pct(r.ci_low)} and {_pct(r.ci_high)}.")})
    return out


def _surgery_free(report: CohortReport) -> list[dict]:
    c = report.competing_risks
    by = {a.months: a for a in c.at} if c else {}
    out = []
    for months in SURGERY_FREE_MONTHS:
        a = by.get(months)
        if not a or a.incidence is None or a.ci_low is None or a.ci_high is None:
            out.append({"months": months, "free": None, "ci_low": None, "ci_high": None, "at_risk": a.at_risk if a
                        else 0, "too_few": True,
                        "words": f"After {months // 12} year{'s' if months > 12 else ''}: too few followed this long "
                                 "to say."})
            continue
        free, low, high = 1 - a.incidence, 1 - a.ci_high, 1 - a.ci_low
        out.append({"months": months, "free": round(free, 6), "ci_low": round(low, 6), "ci_high": round(high, 6),
                    "at_risk": a.at_risk, "too_few": False,
                    "words": f"After {months // 12} year{'s' if months > 12 else ''}: about {_pct(free)} had not needed "
                             f"surgery (likely between {_pct(low)} and {_pct(high)})."})
    return out


def _lost(report: CohortReport) -> dict:
    flow = {row.time_point: row for row in report.flow}
    for tp, months in reversed(RESPONDER_MONTHS):
        row = flow.get(tp)
        if row and row.eligible:
            return {"months": months, "lost": row.lost, "eligible": row.eligible,
                    "words": f"{row.lost} of {row.eligible} due at {months} months did not answer, so their "
                             "result is not known."}
    return {"months": None, "lost": 0, "eligible": 0, "words": "Nobody has been due for a follow-up yet."}


def options_for(q: OptionsQuery, *, clinic_ids, consented_only: bool = False, as_of: dt.date | None = None) -> dict:
    """Every treatment similar patients had, with what happened to them (JSON-able; `options` one per treatment)."""
    as_of = as_of or timezone.localdate()
    code = definition_code()
    kinds = (cohorts.cohort_episodes(q.cohort(consented_only=consented_only), clinic_ids=clinic_ids)
             .values("index_kind").annotate(n=Count("pk")).order_by("-n", "index_kind"))
    options = []
    for row in kinds:
        kind = row["index_kind"]
        report = selectors.cohort_report(q.cohort(kind, consented_only=consented_only), clinic_ids=clinic_ids,
                                         as_of=as_of)
        similar = report.cohort.episodes
        serious = report.adverse_events.serious
        few = summaries.too_few(similar)
        options.append({
            "treatment": kind, "label": selectors.kind_label(kind), "similar": similar, "too_few": few,
            "responders": [] if few else _responders(report, code),
            "surgery_free": [] if few else _surgery_free(report),
            "serious_adverse_events": {**serious.document(), "words": (
                "Too few to say." if serious.too_few or serious.rate is None else
                f"{serious.numerator} of {serious.denominator} had a serious side effect or complication "
                f"({_pct(serious.rate)}).")},
            "lost": _lost(report),
            "words": (f"{similar} similar patient{'s' if similar != 1 else ''} had {selectors.kind_label(kind).lower()}"
                      + (": too few to say anything about how it went." if few else ".")),
        })
    return {"schema": "orthoreg.options/1", "as_of": as_of.isoformat(),
            "generated_at": timezone.now().isoformat(timespec="seconds"), "query": q.as_dict(),
            "description": q.describe(), "definition": {"code": code, "title": defs.DEFINITIONS[code].title,
                                                        "description": defs.DEFINITIONS[code].description},
            "options": options, "note": NOTE,
            "similar_rule": ("Similar: the same condition at the same site, the same grade, an age at treatment "
                             f"from {q.age_min} to {q.age_max}" + (", the same sex" if q.sex else "") +
                             ". Left and right sides are counted together.")}

