"""De-identified research export: everything the cohort report is computed from, in tables a researcher may take
away and recompute every reported number with (docs/research-export.md; tests/interop/test_research_reproduces.py
recomputes the report from the export alone).

Shapes: a ZIP of CSV files (`write`: the web download and `orthoreg export research --out FILE.zip`) or a folder of
CSV or Parquet files (`write_dir`: `orthoreg export research --format csv|parquet --out DIR`), each with the data
dictionary beside the tables (data_dictionary.csv and data_dictionary.json: fields, types, units, code lists, and
the rules the report applies).

What leaves: pseudonymous ids (keyed hashes, stable across exports of the same installation), sex, age at the index
procedure (top-coded at 90), clinic code, condition, site, side, grades, procedure facts, exams' ranges of motion,
scores, adverse-event severity, follow-up schedule and status. Every date becomes a day count relative to ONE anchor
per patient (day 0 = the patient's first index procedure), so intervals between episodes survive; only the year of
the first index procedure is kept.

What never leaves: names, initials, MRNs, birth dates, contact data, calendar dates, free text (notes, descriptions,
findings, staff's cancellation reasons: those become a code), patients without registry consent.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings
from django.db.models import F, Min, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from orthoreg.analytics import definitions as defs
from orthoreg.analytics import facts, metrics, selectors, summaries
from orthoreg.followup.models import Assessment
from orthoreg.followup.services import REPLANNABLE
from orthoreg.instruments.models import Response
from orthoreg.instruments.services import TIME_POINTS
from orthoreg.registry import coding
from orthoreg.registry import rules as clinical_rules
from orthoreg.registry.models import AdverseEvent, Episode, Exam, Grade, Patient, Procedure

SCHEMA = "orthoreg.research-export/2"
AGE_TOP_CODE = 90
CHUNK = 5000
PARQUET_BATCH = 50_000
FORMATS = ("csv", "parquet")

# ------------------------------------------------------------------------------------------------ the tables


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # id | integer | number | boolean | code | string | json
    description: str
    unit: str = ""
    codes: Sequence[tuple[str, str]] = ()


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    fields: tuple[Field, ...]

    @property
    def header(self) -> list[str]:
        return [f.name for f in self.fields]


def _codes(choices) -> tuple[tuple[str, str], ...]:
    return tuple((str(code), str(label)) for code, label in choices)


DAY = "days after the patient's anchor (day 0: the patient's first index procedure)"
YES_NO = (("True", "yes"), ("False", "no"))
CANCELLATION = (
    ("not_in_protocol", "removed from the follow-up plan (no longer in the protocol, no index procedure, no protocol): "
                        "never counted by the report"),
    ("patient_inactive", "stopped because the patient had died or withdrawn"),
    ("converted", "stopped after a conversion to surgery"),
    ("staff", "cancelled by staff (e.g. the patient declined); the reason's text is not exported"),
)
ANCHOR = (("first_index", "the patient's first index procedure"),
          ("first_record", "no index procedure: the patient's first dated record"))
SEVERITY = _codes(AdverseEvent.Severity.choices)


def _pid(kind: str) -> Field:
    return Field(kind, "id", f"pseudonymous id of the {kind.replace('_', ' ')}")


PATIENTS = Table("patients", "One row per consented patient.", (
    _pid("patient"),
    Field("clinic", "code", "clinic code"),
    Field("sex", "code", "sex", codes=_codes(Patient.Sex.choices)),
    Field("age_at_index", "integer", "completed years at the first index procedure, top-coded at 90", "years"),
    Field("index_year", "integer", "calendar year of the first index procedure", "year"),
    Field("anchor", "code", "what day 0 is for this patient", codes=ANCHOR),
    Field("status", "code", "follow-up status (censoring: deceased and withdrawn patients are not due after it)",
          codes=_codes(Patient.Status.choices)),
    Field("status_day", "integer", "day of death or withdrawal", DAY),
    Field("as_of_day", "integer", "the export's as-of day (what the report calls as_of): an assessment is due once its "
                                  "window ended before it; survival is censored at it", DAY),
))
EPISODES = Table("episodes", "One row per episode (one condition at one site and side) of a consented patient.", (
    _pid("episode"), _pid("patient"),
    Field("condition", "code", "condition", codes=_codes(coding.Condition.choices)),
    Field("body_site", "code", "body site", codes=_codes(coding.BodySite.choices)),
    Field("side", "code", "side", codes=_codes(coding.Side.choices)),
    Field("icd10", "string", "ICD-10-CM code(s), comma-separated"),
    Field("treated", "boolean", "has an index procedure (only treated episodes are in the report)", codes=YES_NO),
    Field("index_day", "integer", "day of the index procedure (time zero of the episode's survival)", DAY),
    Field("index_kind", "code", "kind of the index procedure", codes=_codes(coding.ProcedureKind.choices)),
    Field("age_at_index", "integer", "completed years at this episode's index procedure, top-coded at 90", "years"),
    Field("grade_system", "code", "grading system of the grade at treatment", codes=_codes(Grade.System.choices)),
    Field("grade", "integer", f"grade of record at treatment: the latest grade dated no later than "
                              f"{facts.GRADE_GRACE_DAYS} days after the index procedure (the report's rule)", "grade"),
    Field("conversion_day", "integer", "day of the conversion to surgery: the first surgical procedure after the "
                                       "index procedure", DAY),
    Field("last_contact_day", "integer", "last contact: the latest of the patient's last questionnaire answer, the "
                                         "episode's last exam and procedure, death or withdrawal, and the index "
                                         "procedure (survival is censored here, or at as_of_day if earlier)", DAY),
))
GRADES = Table("grades", "Every grade of record of an episode.", (
    _pid("episode"),
    Field("day", "integer", "day the grade was recorded for", DAY),
    Field("system", "code", "grading system", codes=_codes(Grade.System.choices)),
    Field("grade", "integer", "grade of record (the clinician's)", "grade"),
    Field("suggested_grade", "integer", "the calculator's suggestion", "grade"),
    Field("discordant", "boolean", "the domains of the calculator disagreed", codes=YES_NO),
))
PROCEDURE_FACTS = (
    ("category", "code", "category", "", _codes(coding.ProcedureCategory.choices)),
    ("target_structure", "code", "target structure", "", _codes(coding.TargetStructure.choices)),
    ("image_guidance", "code", "image guidance", "", _codes(coding.ImageGuidance.choices)),
    ("cpt_code", "code", "CPT / HCPCS code", "", ()),
    ("is_index", "boolean", "the episode's index procedure", "", YES_NO),
    ("bmi", "number", "BMI", "kg/m2", ()),
    ("nsaid_use", "boolean", "NSAID use", "", YES_NO),
    ("anticoagulant_use", "boolean", "anticoagulant use", "", YES_NO),
    ("steroid_use", "boolean", "systemic steroid use", "", YES_NO),
    ("smoking", "code", "smoking", "", _codes(Procedure.Smoking.choices)),
    ("harvest_site", "code", "harvest site", "", _codes(Procedure.HarvestSite.choices)),
    ("harvest_volume_ml", "number", "harvest volume", "mL", ()),
    ("harvest_anticoagulant", "code", "harvest anticoagulant", "", _codes(Procedure.Anticoagulant.choices)),
    ("spins", "integer", "centrifuge spins", "count", ()),
    ("g_force", "integer", "g-force", "x g", ()),
    ("spin_minutes", "number", "spin time", "min", ()),
    ("final_volume_ml", "number", "final product volume", "mL", ()),
    ("total_nucleated_cells", "number", "total nucleated cells", "cells", ()),
    ("cfu_f_per_ml", "number", "CFU-F", "per mL", ()),
    ("platelets_per_ul", "number", "platelets", "10^3/uL", ()),
    ("leukocytes_per_ul", "number", "leukocytes", "10^3/uL", ()),
    ("platelet_fold", "number", "platelet fold over baseline", "x", ()),
    ("activation", "code", "activation", "", _codes(Procedure.Activation.choices)),
    ("delivered_volume_ml", "number", "volume delivered per site", "mL", ()),
    ("dextrose_percent", "number", "dextrose", "%", ()),
    ("injection_sites", "integer", "injection sites", "count", ()),
)
PROCEDURE_FIELDS = [name for name, *_ in PROCEDURE_FACTS]
PROCEDURES = Table("procedures", "Every procedure of an episode, with its MIBO detail.", (
    _pid("procedure"), _pid("episode"),
    Field("day", "integer", "day of the procedure", DAY),
    Field("kind", "code", "kind", codes=_codes(coding.ProcedureKind.choices)),
    Field("surgical", "boolean", "a surgical kind (a later one is a conversion to surgery)", codes=YES_NO),
    *(Field(name, kind, description, unit, codes) for name, kind, description, unit, codes in PROCEDURE_FACTS),
))
EXAMS = Table("exams", "Every clinical exam of an episode (free-text findings are not exported).", (
    _pid("exam"), _pid("episode"),
    Field("day", "integer", "day of the exam", DAY),
    Field("dorsiflexion_deg", "integer", "dorsiflexion", "degrees"),
    Field("plantarflexion_deg", "integer", "plantar flexion", "degrees"),
))
ADVERSE_EVENTS = Table("adverse_events", "Every adverse event, with the procedure it followed.", (
    _pid("procedure"), _pid("episode"),
    Field("day", "integer", "day of the event", DAY),
    Field("severity", "code", "severity", codes=SEVERITY),
    Field("serious", "boolean", "death, hospitalisation, disability or life-threatening", codes=YES_NO),
    Field("resolved_day", "integer", "day the event resolved", DAY),
))
INSTRUMENTS = Table("instruments", "The scored instruments and how the report reads their primary score, in the "
                                   "order the report lists them.", (
    Field("instrument", "code", "instrument code"),
    Field("title", "string", "short title"),
    Field("better", "code", "which direction is better", codes=(("higher", "higher"), ("lower", "lower"))),
    Field("minimum", "number", "lowest possible score", "points"),
    Field("maximum", "number", "highest possible score", "points"),
    Field("mcid", "number", "minimal clinically important difference", "points"),
    Field("mcid_percent", "number", "MCID as a share of the room to improve, where percent change is meaningful",
          "%"),
    Field("has_baseline", "boolean", "scores are compared with a baseline (not a transition question)", codes=YES_NO),
    Field("distribution_step", "number", "spacing of the thresholds of the report's change distribution (share "
                                         "improved by at least each threshold)", "points"),
    Field("pass", "number", "patient acceptable symptom state: the absolute score at or better than which patients "
                            "call their state acceptable, where one is published", "points"),
    Field("pass_source", "string", "where the PASS was published"),
    Field("pass_scope", "string", "the condition:site pairs the PASS was published for, comma-separated (empty: any; "
                                  "a cohort not narrowed to one of them gets no PASS)"),
    Field("pass_verify", "boolean", "the PASS is not read straight from its source (e.g. another scale)",
          codes=YES_NO),
))
RESPONSES = Table("responses", "Every questionnaire response of a consented patient.", (
    _pid("response"), _pid("patient"), _pid("episode"),
    Field("day", "integer", "day it was completed (in the installation's time zone)", DAY),
    Field("sequence", "integer", "order of the patient's responses by completion time (1 = first): the latest "
                                 "baseline response is the one with the highest sequence", "rank"),
    Field("time_point", "code", "time point it answers", codes=TIME_POINTS),
    Field("instrument", "code", "instrument (see instruments)"),
    Field("version", "string", "instrument version"),
    Field("score", "number", "primary subscale's score", "points"),
    Field("valid", "boolean", "scored under the instrument's missing-item rule", codes=YES_NO),
    Field("scores", "json", "every subscale's score (JSON object)", "points"),
    Field("source", "code", "how it was collected", codes=_codes(Response.Source.choices)),
))
ASSESSMENTS = Table("assessments", "Every assessment: one instrument due at one time point of an episode.", (
    _pid("assessment"), _pid("episode"),
    Field("time_point", "code", "time point", codes=TIME_POINTS),
    Field("time_point_order", "integer", "the time point's place in the protocol", "rank"),
    Field("instrument", "code", "instrument (see instruments)"),
    Field("due_day", "integer", "day it is due", DAY),
    Field("window_end_day", "integer", "last day of its answer window", DAY),
    Field("status", "code", "status", codes=_codes(Assessment.Status.choices)),
    Field("cancelled", "code", "why it was cancelled", codes=CANCELLATION),
    Field("response", "id", "pseudonymous id of the response that answered it (see responses)"),
    Field("missed", "boolean", "still scheduled with its window ended before the as-of day", codes=YES_NO),
))
TABLES = (PATIENTS, EPISODES, GRADES, PROCEDURES, EXAMS, ADVERSE_EVENTS, INSTRUMENTS, RESPONSES, ASSESSMENTS)


def rules() -> dict:
    """The constants the report's rules use, so that the export alone is enough to recompute it."""
    return {
        "as_of": "each patient's as_of_day", "pain_instrument": defs.PAIN_INSTRUMENT,
        "pain_reduction": defs.PAIN_REDUCTION, "oarsi_pain": defs.OARSI_PAIN,
        "oarsi_function": list(defs.OARSI_FUNCTION), "oarsi_global": defs.OARSI_GLOBAL,
        "oarsi_thresholds": defs.oarsi_thresholds(), "tolerance": metrics.EPS,
        "small_number_rule": summaries.MIN_ESTIMATE_N, "survival_months": list(selectors.SURVIVAL_MONTHS),
        "days_per_month": selectors.DAYS_PER_MONTH, "grade_grace_days": facts.GRADE_GRACE_DAYS,
        "surgical_kinds": [str(k) for k in coding.SURGICAL_KINDS],
        "definitions": {"eligible": defs.ELIGIBLE_TEXT, "responded": defs.RESPONDED_TEXT, "rates": defs.RATE_TEXT,
                        "conversion": defs.CONVERSION_TEXT, "adverse_events": defs.ADVERSE_TEXT},
    }


def dictionary_text() -> str:
    lines = ["orthoreg de-identified research export", "=" * 38, "",
             "Every table is one file (CSV: UTF-8 with a header row, empty = missing; or Parquet). Ids are "
             "pseudonyms: keyed hashes,", "stable across exports of this installation, meaningless outside it. "
             "Every *day column counts days after ONE anchor", "per patient (day 0 = the patient's first index "
             "procedure), so intervals across episodes survive. Only patients with", "registry consent are "
             "included. Free text, names, contact data, record numbers and calendar dates are never exported.",
             "data_dictionary.csv / .json describe every field (type, unit, code list) and the report's rules.", ""]
    for table in TABLES:
        lines.append(f"{table.name}: {table.description}")
        lines.append("    " + ", ".join(table.header))
    return "\n".join(lines) + "\n"


DICTIONARY = dictionary_text()


def dictionary_json() -> dict:
    return {"schema": SCHEMA, "anchor": DAY, "rules": rules(),
            "tables": [{"name": t.name, "description": t.description, "fields": [
                {"name": f.name, "type": f.type, "unit": f.unit, "description": f.description,
                 "codes": dict(f.codes)} for f in t.fields]} for t in TABLES]}


def dictionary_rows() -> Iterator[list]:
    for t in TABLES:
        for f in t.fields:
            yield [t.name, f.name, f.type, f.unit, f.description, "; ".join(f"{c}={label}" for c, label in f.codes)]


DICTIONARY_HEADER = ["table", "field", "type", "unit", "description", "codes"]


# ------------------------------------------------------------------------------------------------ the rows

@lru_cache(maxsize=4)
def _keyed(secret: str):
    return hmac.new(secret.encode(), digestmod=hashlib.sha256)


def pseudonym(kind: str, pk: int) -> str:
    """HMAC-SHA256 of the kind and id under the installation's secret key, 16 hex digits."""
    digest = _keyed(settings.SECRET_KEY).copy()  # the keyed state once, copied: a third of the cost per id
    digest.update(f"orthoreg-research:{kind}:{pk}".encode())
    return digest.hexdigest()[:16]


def eligible_patients(clinic_ids: Iterable[int]) -> QuerySet[Patient]:
    """Patients who consented to the registry, in the given clinics."""
    return Patient.objects.filter(clinic_id__in=list(clinic_ids), consent_registry=True)


def cancellation_code(status: str, reason: str) -> str | None:
    """The code of an assessment's cancellation reason (CANCELLATION); the text itself may name a date or be a
    note typed by staff, so it never leaves."""
    if status != Assessment.Status.CANCELLED:
        return None
    if reason in REPLANNABLE:
        return "not_in_protocol"
    if reason.startswith("patient "):
        return "patient_inactive"
    if reason.startswith("converted to surgery"):
        return "converted"
    return "staff"


def _top(age):
    return None if age is None else min(age, AGE_TOP_CODE)


class Context:
    """What every table's rows need: the consented patients, each patient's anchor, each episode's patient."""

    def __init__(self, clinic_ids: Iterable[int], as_of: dt.date):
        facts.refresh()  # the per-episode facts (grade at treatment, conversion, last contact) as the report reads
        self.as_of = as_of
        self.patients = eligible_patients(clinic_ids)
        self.episode_patient: dict[int, int] = dict(
            Episode.objects.filter(patient__in=self.patients).values_list("pk", "patient_id"))
        self.anchor: dict[int, dt.date] = {}
        self.anchor_kind: dict[int, str] = {}
        self._anchors()
        self._patients: dict[int, str] = {}  # pseudonyms of patients and episodes, made once each
        self._episodes: dict[int, str] = {}
        self.tz = timezone.get_current_timezone()

    def _anchors(self) -> None:
        first_index = (Procedure.objects.filter(episode__patient__in=self.patients, is_index=True)
                       .values("episode__patient_id").annotate(first=Min("date")).values_list("episode__patient_id",
                                                                                              "first").order_by())
        for pk, day in first_index:
            self.anchor[pk], self.anchor_kind[pk] = day, "first_index"
        fallbacks = [
            Procedure.objects.filter(episode__patient__in=self.patients).values("episode__patient_id")
            .annotate(first=Min("date")).values_list("episode__patient_id", "first"),
            Grade.objects.filter(episode__patient__in=self.patients).values("episode__patient_id")
            .annotate(first=Min("date")).values_list("episode__patient_id", "first"),
            Exam.objects.filter(episode__patient__in=self.patients).values("episode__patient_id")
            .annotate(first=Min("date")).values_list("episode__patient_id", "first"),
            Assessment.objects.filter(patient__in=self.patients).values("patient_id")
            .annotate(first=Min("due_date")).values_list("patient_id", "first"),
            Response.objects.filter(patient__in=self.patients).values("patient_id")
            .annotate(first=Min(TruncDate("completed_at"))).values_list("patient_id", "first"),
            self.patients.annotate(first=TruncDate("created_at")).values_list("pk", "first"),
        ]
        for query in fallbacks:
            for pk, day in query.order_by():
                if pk in self.anchor_kind and self.anchor_kind[pk] == "first_index":
                    continue
                if day is not None and (pk not in self.anchor or day < self.anchor[pk]):
                    self.anchor[pk], self.anchor_kind[pk] = day, "first_record"

    def patient(self, pk: int) -> str:
        if pk not in self._patients:
            self._patients[pk] = pseudonym("patient", pk)
        return self._patients[pk]

    def episode(self, pk: int | None) -> str | None:
        if pk is None:
            return None
        if pk not in self._episodes:
            self._episodes[pk] = pseudonym("episode", pk)
        return self._episodes[pk]

    def day(self, patient_id: int, day: dt.date | None) -> int | None:
        return (day - self.anchor[patient_id]).days if day is not None else None

    def episode_day(self, episode_id: int, day: dt.date | None) -> int | None:
        return self.day(self.episode_patient[episode_id], day)


def patient_rows(c: Context) -> Iterator[list]:
    for pk, clinic, sex, birth, status, status_date in c.patients.values_list(
            "pk", "clinic__code", "sex", "birth_date", "status", "status_date").order_by("pk").iterator(CHUNK):
        anchor, kind = c.anchor[pk], c.anchor_kind[pk]
        indexed = kind == "first_index"
        age = _top(anchor.year - birth.year - ((anchor.month, anchor.day) < (birth.month, birth.day))) \
            if indexed else None
        gone = status in (Patient.Status.WITHDRAWN, Patient.Status.DECEASED)
        yield [c.patient(pk), clinic, sex, age, anchor.year if indexed else None, kind, status,
               c.day(pk, status_date) if gone else None, c.day(pk, c.as_of)]


def episode_rows(c: Context) -> Iterator[list]:
    qs = (Episode.objects.filter(patient__in=c.patients)
          .annotate(index_date=F("fact__index_date"),
                    grade_system=clinical_rules.grade_at_treatment_subquery(value="system"))
          .values_list("pk", "patient_id", "condition", "body_site", "side", "icd10_code", "index_date",
                       "fact__index_kind", "fact__age", "grade_system", "fact__grade", "fact__conversion_date",
                       "fact__contact")
          .order_by("patient_id", "pk"))
    for pk, patient, condition, site, side, icd10, index, kind, age, system, grade, conversion, contact in \
            qs.iterator(CHUNK):
        treated = index is not None
        yield [c.episode(pk), c.patient(patient), condition, site, side, icd10, treated,
               c.day(patient, index), kind if treated else None, _top(age), system if grade is not None else None,
               grade, c.day(patient, conversion), c.day(patient, contact)]


def grade_rows(c: Context) -> Iterator[list]:
    qs = Grade.objects.filter(episode__patient__in=c.patients).order_by("episode_id", "date", "id").values_list(
        "episode_id", "date", "system", "grade", "suggested_grade", "discordant")
    for episode, day, system, grade, suggested, discordant in qs.iterator(CHUNK):
        yield [c.episode(episode), c.episode_day(episode, day), system, grade, suggested, discordant]


def procedure_rows(c: Context) -> Iterator[list]:
    surgical = {str(k) for k in coding.SURGICAL_KINDS}
    qs = Procedure.objects.filter(episode__patient__in=c.patients).order_by("episode_id", "date", "id").values_list(
        "pk", "episode_id", "date", "kind", *PROCEDURE_FIELDS)
    for pk, episode, day, kind, *values in qs.iterator(CHUNK):
        yield [pseudonym("procedure", pk), c.episode(episode), c.episode_day(episode, day), kind,
               kind in surgical, *[None if v == "" else v for v in values]]


def exam_rows(c: Context) -> Iterator[list]:
    qs = Exam.objects.filter(episode__patient__in=c.patients).order_by("episode_id", "date", "id").values_list(
        "pk", "episode_id", "date", "dorsiflexion_deg", "plantarflexion_deg")
    for pk, episode, day, dorsi, plantar in qs.iterator(CHUNK):
        yield [pseudonym("exam", pk), c.episode(episode), c.episode_day(episode, day), dorsi, plantar]


def adverse_rows(c: Context) -> Iterator[list]:
    qs = AdverseEvent.objects.filter(procedure__episode__patient__in=c.patients).order_by(
        "procedure__episode_id", "date", "id").values_list("procedure_id", "procedure__episode_id", "date",
                                                           "severity", "serious", "resolved_date")
    for procedure, episode, day, severity, serious, resolved in qs.iterator(CHUNK):
        yield [pseudonym("procedure", procedure), c.episode(episode), c.episode_day(episode, day),
               severity, serious, c.episode_day(episode, resolved)]


def instrument_rows(c: Context) -> Iterator[list]:
    passes = metrics.pass_infos()
    for code, info in metrics.instrument_infos().items():  # in the report's order
        p = passes.get(code)
        yield [code, info.title, info.better, info.minimum, info.maximum, info.mcid, info.mcid_percent,
               info.has_baseline, summaries.distribution_step(info), None if p is None else p.value,
               None if p is None else p.source,
               None if p is None else ",".join(f"{c}:{s}" for c, s in p.scope), None if p is None else p.verify]


def response_rows(c: Context) -> Iterator[list]:
    qs = Response.objects.filter(patient__in=c.patients).order_by("patient_id", "completed_at", "id").values_list(
        "pk", "patient_id", "episode_id", "completed_at", "time_point", "instrument", "instrument_version", "score",
        "valid", "scores", "source")
    sequence, last = 0, None
    for pk, patient, episode, at, time_point, instrument, version, score, valid, scores, source in qs.iterator(CHUNK):
        sequence = sequence + 1 if patient == last else 1
        last = patient
        yield [pseudonym("response", pk), c.patient(patient),
               c.episode(episode), c.day(patient, at.astimezone(c.tz).date()),
               sequence, time_point or None, instrument, version, score, valid, json.dumps(scores, sort_keys=True),
               source]


def assessment_rows(c: Context) -> Iterator[list]:
    qs = Assessment.objects.filter(patient__in=c.patients).order_by("episode_id", "due_date", "id").values_list(
        "pk", "patient_id", "episode_id", "time_point", "time_point_order", "instrument", "due_date", "window_end",
        "status", "cancelled_reason", "response_id")
    for pk, patient, episode, time_point, order, instrument, due, window_end, status, reason, response in \
            qs.iterator(CHUNK):
        missed = status == Assessment.Status.SCHEDULED and window_end < c.as_of
        yield [pseudonym("assessment", pk), c.episode(episode), time_point, order, instrument,
               c.day(patient, due), c.day(patient, window_end), status, cancellation_code(status, reason),
               None if response is None else pseudonym("response", response), missed]


ROWS = {"patients": patient_rows, "episodes": episode_rows, "grades": grade_rows, "procedures": procedure_rows,
        "exams": exam_rows, "adverse_events": adverse_rows, "instruments": instrument_rows,
        "responses": response_rows, "assessments": assessment_rows}


# ------------------------------------------------------------------------------------------------ writers

def _write_csv(text, header: list[str], rows: Iterable[list]) -> int:
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    return count


def write(target, clinic_ids: Iterable[int], *, as_of: dt.date | None = None) -> dict[str, int]:
    """Write the export as a ZIP of CSV files into `target` (a path or a binary file object); returns rows per file.
    Streams every table (bounded memory whatever the registry's size; the per-patient anchors aside)."""
    c = Context(clinic_ids, as_of or timezone.localdate())
    counts = {}
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", DICTIONARY)
        archive.writestr("data_dictionary.json", json.dumps(dictionary_json(), indent=1, ensure_ascii=False) + "\n")
        for table in (None, *TABLES):
            name = "data_dictionary.csv" if table is None else f"{table.name}.csv"
            header = DICTIONARY_HEADER if table is None else table.header
            rows = dictionary_rows() if table is None else ROWS[table.name](c)
            with archive.open(name, "w", force_zip64=True) as raw, \
                    io.TextIOWrapper(raw, encoding="utf-8", newline="") as text:
                n = _write_csv(text, header, rows)
            if table is not None:
                counts[name] = n
    return counts


def _arrow_schema(table: Table):
    types = {"id": pa.string(), "code": pa.string(), "string": pa.string(), "json": pa.string(),
             "integer": pa.int64(), "number": pa.float64(), "boolean": pa.bool_()}
    return pa.schema([(f.name, types[f.type]) for f in table.fields])


def _write_parquet(path: Path, table: Table, rows: Iterable[list]) -> int:
    """Stream rows into a Parquet file in record batches of PARQUET_BATCH rows."""
    schema = _arrow_schema(table)
    numbers = [i for i, f in enumerate(table.fields) if f.type == "number"]
    count = 0
    with pq.ParquetWriter(path, schema) as writer:
        batch: list[list] = []

        def flush():
            columns = list(zip(*batch)) if batch else [[] for _ in table.fields]
            writer.write_batch(pa.record_batch([pa.array(col, type=schema.field(i).type)
                                                for i, col in enumerate(columns)], schema=schema))

        for row in rows:
            for i in numbers:
                if isinstance(row[i], Decimal | int):
                    row[i] = float(row[i])
            batch.append(row)
            count += 1
            if len(batch) >= PARQUET_BATCH:
                flush()
                batch = []
        if batch or not count:
            flush()
    return count


def write_dir(out: Path, clinic_ids: Iterable[int], *, fmt: str, as_of: dt.date | None = None) -> dict[str, int]:
    """Write one file per table (CSV or Parquet) and the data dictionary into the folder `out` (created when absent;
    its parent must exist). The files are written into a temporary folder beside it and moved in at the end: a
    failure leaves `out` as it was. The tables' files in the other format (an earlier export's) are removed, so the
    folder holds this export only; files of other names are left alone."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} is a file, not a folder")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"the folder {out.parent} does not exist")
    c = Context(clinic_ids, as_of or timezone.localdate())
    counts = {}
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        (tmp / "README.txt").write_text(DICTIONARY, encoding="utf-8")
        (tmp / "data_dictionary.json").write_text(json.dumps(dictionary_json(), indent=1, ensure_ascii=False) + "\n",
                                                  encoding="utf-8")
        with open(tmp / "data_dictionary.csv", "w", encoding="utf-8", newline="") as fh:
            _write_csv(fh, DICTIONARY_HEADER, dictionary_rows())
        for table in TABLES:
            name = f"{table.name}.{fmt}"
            if fmt == "csv":
                with open(tmp / name, "w", encoding="utf-8", newline="") as fh:
                    counts[name] = _write_csv(fh, table.header, ROWS[table.name](c))
            else:
                counts[name] = _write_parquet(tmp / name, table, ROWS[table.name](c))
        out.mkdir(exist_ok=True)
        for path in tmp.iterdir():
            os.replace(path, out / path.name)
        for other in FORMATS:  # an earlier export's tables in the other format would pass for this export's
            if other != fmt:
                for table in TABLES:
                    (out / f"{table.name}.{other}").unlink(missing_ok=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return counts
