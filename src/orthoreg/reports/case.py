"""The case report of one episode: what happened, the patient's result stated plainly, what similar patients
experienced (with N and CIs), and the reminder that one patient's result is not evidence.

Reads only; the views check access (clinical capability for the episode's clinic) and audit.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from orthoreg.accounts import access
from orthoreg.analytics import cohorts, selectors, summaries
from orthoreg.analytics import definitions as defs
from orthoreg.analytics.filters import CohortFilter
from orthoreg.analytics.metrics import instrument_infos
from orthoreg.analytics.report_types import CohortReport, InstrumentRow, TimePoint
from orthoreg.followup.models import Assessment
from orthoreg.formats import format_date
from orthoreg.instruments.selectors import Trajectory, episode_trajectories
from orthoreg.instruments.types import format_number
from orthoreg.registry import rules
from orthoreg.registry import selectors as registry_selectors
from orthoreg.registry.coding import ProcedureKind
from orthoreg.registry.models import Clinic, Episode

log = logging.getLogger(__name__)

MIN_SIMILAR = 10  # fewer similar patients than this: the match is widened step by step (and says so)
PROTOCOL_TIME_POINTS = rules.FOLLOW_UP_CODES


@dataclass
class Verdict:
    code: str
    title: str
    met: bool | None  # None: cannot be told (no baseline, no answer)
    detail: str = ""

    @property
    def label(self) -> str:
        return "yes" if self.met else ("no" if self.met is False else "cannot tell")


@dataclass
class CaseReport:
    episode: Episode
    initials: str
    age_at_index: int | None
    sex: str
    possessive: str
    timeline: registry_selectors.EpisodeTimeline
    combination: list
    grade: object | None
    trajectories: list[Trajectory]
    time_point: str | None  # the latest protocol time point the patient answered
    time_point_label: str
    result: str
    verdicts: list[Verdict]
    not_evidence: str
    similar: dict | None
    similar_url: str
    images: dict | None
    as_of: dt.date
    notes: list[str] = field(default_factory=list)

    @property
    def treatment(self) -> str:
        return treatment_words(self.timeline.index_procedure, self.combination)

    @property
    def own_pain(self) -> dict | None:
        return patient_pain(self)


def treatment_words(index, combination) -> str:
    if index is None:
        return "no index procedure"
    kinds = [index.get_kind_display()] + sorted({ProcedureKind(p.kind).label for p in combination})
    first, *rest = kinds
    text = first[:1].lower() + first[1:]
    if rest:
        text += " with " + " and ".join(k[:1].lower() + k[1:] for k in rest)
    return text


def _latest_protocol_point(trajectory: Trajectory | None):
    if trajectory is None:
        return None
    points = [p for p in trajectory.points if p.time_point in PROTOCOL_TIME_POINTS]
    return points[-1] if points else None


def _value_at(trajectory: Trajectory | None, time_point: str):
    if trajectory is None:
        return None
    found = [p for p in trajectory.points if p.time_point == time_point]
    return found[-1].value if found else None


def patient_verdicts(trajectories: list[Trajectory], time_point: str | None, conversion, due: dt.date | None
                     ) -> list[Verdict]:
    """The patient's own result at a time point under each responder definition (the same rules as the cohort)."""
    infos = instrument_infos()
    by_code = {t.code: t for t in trajectories}
    verdicts = []
    converted = conversion is not None and (due is None or conversion.date <= due)
    if time_point is None:
        return [Verdict(d.code, d.title, None, "no follow-up answer yet") for d in defs.DEFINITIONS.values()]

    def pair(code):
        t = by_code.get(code)
        base = t.baseline.value if t is not None and t.baseline is not None else None
        return infos.get(code), _value_at(t, time_point), base

    info, score, base = pair(defs.PAIN_INSTRUMENT)
    if converted:
        failed = f"converted to surgery ({conversion.get_kind_display().lower()}, {format_date(conversion.date)})"
        verdicts = [Verdict(d.code, d.title, False, failed) for d in defs.DEFINITIONS.values()]
        return verdicts
    if score is None or base is None:
        verdicts.append(Verdict(defs.PAIN_50.code, defs.PAIN_50.title, None, "no pain score at baseline and then"))
    else:
        verdicts.append(Verdict(defs.PAIN_50.code, defs.PAIN_50.title, summaries.pain_50_met(score, base),
                                f"pain {format_number(base)} → {format_number(score)}"))
    mcid_parts = []
    for t in trajectories:
        i, s, b = pair(t.code)
        if i is None or s is None or b is None or (i.mcid is None and i.mcid_percent is None):
            continue
        mcid_parts.append((i, summaries.mcid_met(i, s, b)))
    if mcid_parts:
        met = any(ok for _, ok in mcid_parts) if len(mcid_parts) > 1 else mcid_parts[0][1]
        detail = ", ".join(f"{i.title}: {'better by at least the MCID' if ok else 'not better by the MCID'}"
                           for i, ok in mcid_parts)
        verdicts.append(Verdict(defs.MCID.code, defs.MCID.title, met, detail))
    else:
        verdicts.append(Verdict(defs.MCID.code, defs.MCID.title, None, "no instrument with an MCID answered"))
    if score is None or base is None or info is None:
        verdicts.append(Verdict(defs.OARSI.code, defs.OARSI.title, None, "needs the pain score"))
    else:
        function = next((pair(c) for c in defs.OARSI_FUNCTION if pair(c)[1] is not None and pair(c)[2] is not None),
                        None)
        glob = pair(defs.OARSI_GLOBAL)
        met = summaries.oarsi_met((info, score, base), function,
                                  glob if glob[0] is not None and glob[1] is not None and glob[2] is not None else None)
        verdicts.append(Verdict(defs.OARSI.code, defs.OARSI.title, met,
                                "pain" + (", function" if function else "") + (", global (SANE)" if glob[1] is not None
                                                                              and glob[2] is not None else "")))
    verdicts.append(Verdict(defs.NO_CONVERSION.code, defs.NO_CONVERSION.title, True,
                            "no surgery recorded" if conversion is None else
                            f"surgery later, on {format_date(conversion.date)}"))
    return verdicts


def _similar(episode: Episode, clinic_ids, as_of: dt.date) -> tuple[CohortFilter | None, list[str]]:
    """The matching cohort (the episode itself excluded), widened until it has MIN_SIMILAR patients."""
    base = cohorts.matching_filter(episode)
    if base is None:
        return None, []
    base = base.replace(exclude_episodes=(episode.pk,))
    steps: list[tuple[CohortFilter, list[str]]] = [(base, [])]
    if base.grade_min is not None:
        steps.append((base.replace(grade_min=None, grade_max=None), ["any grade"]))
    if base.combined_kinds:
        steps.append((steps[-1][0].replace(procedures=base.procedures[:1]), steps[-1][1] + [
            f"{ProcedureKind(base.index_kind).label.lower()} with or without "
            f"{', '.join(ProcedureKind(k).label.lower() for k in base.combined_kinds)}"]))
    for candidate, relaxed in steps:
        if cohorts.cohort_episodes(candidate, clinic_ids=clinic_ids).count() >= MIN_SIMILAR:
            return candidate, relaxed
    return steps[-1]


def case_report(episode: Episode, *, user=None, as_of: dt.date | None = None) -> CaseReport:
    """Everything the case report page and PDF show. `user` scopes "similar patients" to the clinics whose
    outcomes they may analyse (all clinics from the command line)."""
    as_of = as_of or timezone.localdate()
    patient = episode.patient
    timeline = next(t for t in registry_selectors.patient_timeline(patient) if t.episode.pk == episode.pk)
    index = timeline.index_procedure
    procedures = [e.obj for e in timeline.entries if e.kind in ("procedure", "surgery")]
    combination = [p for p in rules.combined_kinds(procedures) if p.kind != index.kind and not p.is_surgical]
    grades = [e.obj for e in timeline.entries if e.kind == "grade"]
    grade = rules.grade_at_treatment(grades, index.date) if index is not None else None
    trajectories = episode_trajectories(episode)
    pain = next((t for t in trajectories if t.code == defs.PAIN_INSTRUMENT), None)
    latest = _latest_protocol_point(pain)
    time_point = latest.time_point if latest else None
    label = latest.label if latest else ""
    due = None
    if index is not None and time_point:
        due = (Assessment.objects.filter(episode=episode, time_point=time_point).values_list("due_date", flat=True)
               .first()) or timezone.localtime(latest.when).date()
    verdicts = patient_verdicts(trajectories, time_point, timeline.conversion, due)
    sex = patient.get_sex_display().lower()
    possessive = {"female": "her", "male": "his"}.get(patient.sex, "their")
    initials = patient.initials or "The patient"
    result, not_evidence = result_words(initials, possessive, pain, latest, verdicts,
                                        treatment_words(index, combination), timeline.conversion)
    clinic_ids = access.clinic_ids(user, access.RESEARCH) if user is not None else \
        set(Clinic.objects.values_list("pk", flat=True))
    similar = None
    similar_url = ""
    if clinic_ids and index is not None:
        match, relaxed = _similar(episode, clinic_ids, as_of)
        if match is not None:
            report = selectors.cohort_report(match, clinic_ids=clinic_ids, as_of=as_of)
            similar = similar_summary(report, time_point, relaxed)
            similar_url = reverse("reports:cohort") + "?" + urlencode(match.to_params() + [("show", "1")])
    return CaseReport(
        episode=episode, initials=initials, age_at_index=patient.age_on(index.date) if index else None,
        sex=sex, possessive=possessive, timeline=timeline, combination=combination, grade=grade,
        trajectories=trajectories, time_point=time_point, time_point_label=label, result=result,
        verdicts=verdicts, not_evidence=not_evidence, similar=similar, similar_url=similar_url,
        images=case_images(episode), as_of=as_of)


def result_words(initials: str, possessive: str, pain: Trajectory | None, latest, verdicts: list[Verdict],
                 treatment: str, conversion) -> tuple[str, str]:
    """The patient's result in one plain sentence, and the sentence that keeps it in its place."""
    if conversion is not None and (latest is None or conversion.date <= timezone.localtime(latest.when).date()):
        result = (f"{initials} had {conversion.get_kind_display().lower()} on {format_date(conversion.date)}: "
                  f"a conversion to surgery, a failure of the {treatment}.")
        return result, (f"One patient's result is not evidence: {initials}'s conversion is one failure, not "
                        f"evidence that the {treatment} does not work.")
    if pain is None or latest is None or pain.baseline is None:
        return (f"{initials} has no follow-up pain score yet.",
                "One patient's result is not evidence, and there is no result yet.")
    base, value = pain.baseline.value, latest.value
    percent = (base - value) / base * 100 if base > 0 else None
    change = abs(base - value)
    when = latest.label.lower()
    if value < base:
        amount = f"{format_number(round(percent))}% less pain" if percent is not None else "less pain"
        result = (f"At {when}, {initials}'s pain was {format_number(value)} out of 10, down from "
                  f"{format_number(base)} before treatment: {amount} ({format_number(round(change, 1))} points).")
    elif value > base:
        result = (f"At {when}, {initials}'s pain was {format_number(value)} out of 10, up from "
                  f"{format_number(base)} before treatment ({format_number(round(change, 1))} points worse).")
    else:
        result = f"At {when}, {initials}'s pain was {format_number(value)} out of 10, as before treatment."
    responder = next((v.met for v in verdicts if v.code == defs.PAIN_50.code), None)
    what = (f"{format_number(round(percent))}% improvement" if percent is not None and percent > 0
            else "result")
    if responder:
        note = (f"One patient's result is not evidence: {initials}'s {what} at {when} is one responder, not "
                f"evidence that {treatment} works.")
    else:
        note = (f"One patient's result is not evidence: {initials}'s {what} at {when} is one non-responder, not "
                f"evidence that {treatment} fails.")
    return result, note


def similar_summary(report: CohortReport, time_point: str | None, relaxed: list[str]) -> dict:
    """The matching cohort's numbers at the patient's time point (else its headline time point): parts of the cohort
    report (`report`, `time_point`, `pain` and `baseline` rows, `survival_12`) with what the case adds."""
    rows = {tp.time_point: tp for tp in report.time_points}
    tp = rows.get(time_point) if time_point else None
    if tp is None and report.headline:
        tp = rows.get(report.headline.time_point)
    pain = _pain_row(tp)
    baseline = _pain_row(rows.get("baseline"))
    twelve = next((a for a in report.survival.at if a.months == 12), None)
    return {"report": report, "description": report.description, "n": report.cohort.episodes,
            "relaxed": relaxed, "time_point": tp, "pain": pain,
            "baseline": baseline.score if baseline else None, "change": pain.change if pain else None,
            "survival_12": twelve, "too_few": report.cohort.episodes < MIN_SIMILAR}


def _pain_row(time_point: TimePoint | None) -> InstrumentRow | None:
    if not time_point:
        return None
    return next((i for i in time_point.instruments if i.instrument == defs.PAIN_INSTRUMENT), None)


def patient_pain(case: CaseReport) -> dict | None:
    """The patient's own pain before treatment, at the report's time point and the change between, to set beside
    the similar patients' (None without both scores)."""
    pain = next((t for t in case.trajectories if t.code == defs.PAIN_INSTRUMENT), None)
    if pain is None or pain.baseline is None or case.time_point is None:
        return None
    value = _value_at(pain, case.time_point)
    if value is None:
        return None
    base = pain.baseline.value
    return {"baseline": base, "score": value, "change": value - base}


# ------------------------------------------------------------------------------------------------ radiographs

def case_images(episode: Episode) -> dict | None:
    """The before/after radiograph pair of the episode with its widths, when the imaging app has one."""
    try:  # a build may leave the imaging app out (its dependencies are the heaviest): no images then
        from orthoreg.imaging import selectors as imaging
    except ImportError:
        return None
    try:
        images = list(imaging.episode_images(episode))
        before, after = imaging.default_pair(images)
        if before is None or after is None:
            return None
        rows = imaging.width_rows(imaging.measurement_of_record(before), imaging.measurement_of_record(after))
    except Exception:
        log.exception("radiographs of episode %s could not be read for the case report", episode.pk)
        return None
    return {"before": before, "after": after, "rows": rows,
            "url": reverse("reports:case_images", args=[episode.pk])}


def comparison_png(episode: Episode) -> bytes | None:
    pair = case_images(episode)
    if pair is None:
        return None
    try:  # as above: imaging may be left out of a build
        from orthoreg.imaging.comparison import comparison_png as compose
    except ImportError:
        return None
    try:
        return compose(pair["before"], pair["after"])
    except Exception:
        log.exception("before/after comparison of episode %s failed", episode.pk)
        return None
