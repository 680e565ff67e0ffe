"""De-identified research export: a ZIP of CSV files a researcher may take away.

What leaves: pseudonymous ids (keyed hashes, stable across exports of the same installation), sex, age at
the index procedure (top-coded at 90), clinic code, condition, site, side, grade, procedure facts, scores,
adverse-event severity, follow-up status. Every date becomes a day count relative to the episode's index
procedure (day 0); only the index year is kept.

What never leaves: names, initials, MRNs, birth dates, contact data, calendar dates, free text (notes,
descriptions, findings), patients without registry consent.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import zipfile
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.db.models import QuerySet

from orthoreg.followup.models import Assessment
from orthoreg.instruments.models import Response
from orthoreg.registry import selectors
from orthoreg.registry.models import AdverseEvent, Episode, Grade, Patient, Procedure

AGE_TOP_CODE = 90
PROCEDURE_FIELDS = ["kind", "category", "target_structure", "image_guidance", "cpt_code", "is_index", "bmi",
                    "nsaid_use", "anticoagulant_use", "steroid_use", "smoking", "harvest_site", "harvest_volume_ml",
                    "harvest_anticoagulant", "spins", "g_force", "spin_minutes", "final_volume_ml",
                    "total_nucleated_cells", "cfu_f_per_ml", "platelets_per_ul", "leukocytes_per_ul",
                    "platelet_fold", "activation", "delivered_volume_ml", "dextrose_percent", "injection_sites"]

DICTIONARY = """orthoreg de-identified research export
=====================================

Every file is UTF-8 CSV with a header row. Ids are pseudonyms: keyed hashes that are stable across exports
of this installation and meaningless outside it. "day" is the number of days after the episode's index
procedure (negative = before). Only patients with registry consent are included. Free text, names,
contact data, record numbers and calendar dates are never exported.

patients.csv      patient, clinic, sex, age_at_index (top-coded at 90), status, index_year
episodes.csv      episode, patient, condition, body_site, side, icd10, grade_system, grade, conversion_day
procedures.csv    episode, day, kind, category, target, guidance, CPT/HCPCS, index flag, MIBO fields (units as in
                  the registry: volumes mL, g-force x g, minutes, cells, CFU-F per mL, platelets 10^3/uL)
responses.csv     episode, day, time_point, instrument, version, score (primary subscale), valid, scores (JSON)
adverse_events.csv episode, day, severity, serious
assessments.csv   episode, time_point, instrument, due_day, status (scheduled/completed/cancelled), missed
"""


def pseudonym(kind: str, pk: int) -> str:
    digest = hmac.new(settings.SECRET_KEY.encode(), f"orthoreg-research:{kind}:{pk}".encode(), hashlib.sha256)
    return digest.hexdigest()[:16]


def eligible_patients(clinic_ids: Iterable[int]) -> QuerySet[Patient]:
    """Patients who consented to the registry, in the given clinics."""
    return Patient.objects.filter(clinic_id__in=list(clinic_ids), consent_registry=True)


def _write_csv(archive: zipfile.ZipFile, name: str, header: list[str], rows: Iterable[list]) -> int:
    """Stream rows into one member of the archive (bounded memory whatever the registry's size)."""
    count = 0
    with archive.open(name, "w", force_zip64=True) as raw, io.TextIOWrapper(raw, encoding="utf-8",
                                                                           newline="") as text:
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def _day(day, index_day) -> int | str:
    return (day - index_day).days if day and index_day else ""


def write(target, clinic_ids: Iterable[int]) -> dict[str, int]:
    """Write the export as a ZIP into `target` (a path or a binary file object); returns rows per file.
    Reads column lists only (values_list), in a fixed number of queries, streaming the large tables."""
    patients = eligible_patients(clinic_ids)
    episodes = selectors.episodes_with_outcome_dates(Episode.objects.filter(patient__in=patients))
    ep_rows = list(episodes.values_list("pk", "patient_id", "condition", "body_site", "side", "icd10_code",
                                        "index_date", "conversion_date"))
    index_of = {pk: index for pk, _, _, _, _, _, index, _ in ep_rows}
    first_index: dict[int, object] = {}
    for _, patient_id, *_rest, index, _conv in ep_rows:
        if index and (patient_id not in first_index or index < first_index[patient_id]):
            first_index[patient_id] = index
    latest_grade: dict[int, tuple] = {}
    for episode_id, system, grade, _graded_on in Grade.objects.filter(episode__patient__in=patients).order_by(
            "episode_id", "date", "id").values_list("episode_id", "system", "grade", "date"):
        latest_grade[episode_id] = (system, grade)

    def patient_rows() -> Iterator[list]:
        for pk, clinic, sex, birth, status in patients.values_list("pk", "clinic__code", "sex", "birth_date",
                                                                   "status").order_by("pk"):
            index = first_index.get(pk)
            age = ""
            if index:
                age = index.year - birth.year - ((index.month, index.day) < (birth.month, birth.day))
                age = min(age, AGE_TOP_CODE)
            yield [pseudonym("patient", pk), clinic, sex, age, status, index.year if index else ""]

    def episode_rows() -> Iterator[list]:
        for pk, patient_id, condition, site, side, icd10, index, conversion in ep_rows:
            system, grade = latest_grade.get(pk, ("", ""))
            yield [pseudonym("episode", pk), pseudonym("patient", patient_id), condition, site, side, icd10,
                   system, grade, _day(conversion, index)]

    def procedure_rows() -> Iterator[list]:
        for row in Procedure.objects.filter(episode__patient__in=patients).order_by("episode_id", "date", "id") \
                .values_list("episode_id", "date", *PROCEDURE_FIELDS):
            episode_id, day, *facts = row
            yield [pseudonym("episode", episode_id), _day(day, index_of.get(episode_id)),
                   *["" if v is None else v for v in facts]]

    def response_rows() -> Iterator[list]:
        import json

        qs = Response.objects.filter(patient__in=patients, episode__isnull=False).order_by("episode_id",
                                                                                             "completed_at", "id")
        for episode_id, at, time_point, instrument, version, score, valid, scores in qs.values_list(
                "episode_id", "completed_at", "time_point", "instrument", "instrument_version", "score", "valid",
                "scores").iterator(chunk_size=5000):
            yield [pseudonym("episode", episode_id), _day(at.date(), index_of.get(episode_id)), time_point,
                   instrument, version, "" if score is None else score, valid, json.dumps(scores, sort_keys=True)]

    def adverse_rows() -> Iterator[list]:
        qs = AdverseEvent.objects.filter(procedure__episode__patient__in=patients).order_by("date", "id")
        for episode_id, day, severity, serious in qs.values_list("procedure__episode_id", "date", "severity",
                                                                 "serious"):
            yield [pseudonym("episode", episode_id), _day(day, index_of.get(episode_id)), severity, serious]

    def assessment_rows() -> Iterator[list]:
        from django.utils import timezone

        today = timezone.localdate()
        qs = Assessment.objects.filter(patient__in=patients).order_by("episode_id", "due_date", "id")
        for episode_id, time_point, instrument, due, window_end, status in qs.values_list(
                "episode_id", "time_point", "instrument", "due_date", "window_end", "status").iterator(
                chunk_size=5000):
            missed = status == "scheduled" and window_end < today
            yield [pseudonym("episode", episode_id), time_point, instrument, _day(due, index_of.get(episode_id)),
                   status, missed]

    counts = {}
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", DICTIONARY)
        counts["patients.csv"] = _write_csv(archive, "patients.csv", [
            "patient", "clinic", "sex", "age_at_index", "status", "index_year"], patient_rows())
        counts["episodes.csv"] = _write_csv(archive, "episodes.csv", [
            "episode", "patient", "condition", "body_site", "side", "icd10", "grade_system", "grade",
            "conversion_day"], episode_rows())
        counts["procedures.csv"] = _write_csv(archive, "procedures.csv", ["episode", "day", *PROCEDURE_FIELDS],
                                              procedure_rows())
        counts["responses.csv"] = _write_csv(archive, "responses.csv", [
            "episode", "day", "time_point", "instrument", "version", "score", "valid", "scores"], response_rows())
        counts["adverse_events.csv"] = _write_csv(archive, "adverse_events.csv", [
            "episode", "day", "severity", "serious"], adverse_rows())
        counts["assessments.csv"] = _write_csv(archive, "assessments.csv", [
            "episode", "time_point", "instrument", "due_day", "status", "missed"], assessment_rows())
    return counts
