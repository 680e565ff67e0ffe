"""Synthetic registry generator: deterministic, streamed in batches, bounded memory.

Realistic enough to exercise every report: hallux rigidus, knee OA, hip OA and low back pain; treatment
mixes per condition; responders and non-responders; conversions to fusion or arthroplasty; 15-25% lost to
follow-up; adverse events. Reference values from DOMAIN.md section 6 shape the probabilities. Dates are
relative to `today`, so follow-ups are due and overdue whenever it is run.

Used by `orthoreg demo` (a few hundred patients) and `orthoreg synth --patients N` (up to millions, for
benchmarks): each batch is planned in memory as plain rows, written in one transaction (COPY on PostgreSQL), then
dropped, so memory stays bounded by the batch size.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import itertools
import json
import math
import random
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.db import connection, connections, transaction
from django.db.models import JSONField, Max
from django.db.models.fields import AutoFieldMixin
from django.utils import timezone

from orthoreg.analytics import facts
from orthoreg.analytics.models import StaleEpisode
from orthoreg.followup import scheduling
from orthoreg.followup.models import Assessment, Protocol
from orthoreg.instruments import scoring
from orthoreg.instruments.definitions import Definition, get_definition, scoring_definition
from orthoreg.instruments.models import Response
from orthoreg.registry.coding import (
    BodySite,
    Condition,
    ProcedureKind,
    Side,
    TargetStructure,
    icd10_for,
    joint_injection_cpt,
)
from orthoreg.registry.models import AdverseEvent, Clinic, Episode, Exam, Grade, Patient, Procedure

# Regional instruments answered at some time points (structure and scoring only until a pack is installed:
# the synthetic answers exercise the scorers and the reports, they are never sent to anyone).
REGIONAL_INSTRUMENT = {
    BodySite.FIRST_MTP: "faam-adl",
    BodySite.KNEE: "lefs",
    BodySite.HIP: "lefs",
}
REGIONAL_TIME_POINTS = {"baseline", "6m", "12m", "24m"}

GIVEN_F = ["Ava", "Beth", "Carla", "Dora", "Elena", "Fay", "Gina", "Hana", "Iris", "Jade", "Kara", "Lena", "Mira",
           "Nora", "Olga", "Pia", "Rosa", "Sara", "Tara", "Uma", "Vera", "Wren", "Yara", "Zoe"]
GIVEN_M = ["Adam", "Ben", "Carl", "Dan", "Eli", "Finn", "Gus", "Hugo", "Ivan", "Jon", "Kurt", "Leo", "Max", "Ned",
           "Omar", "Paul", "Quinn", "Rafe", "Sam", "Theo", "Ugo", "Vic", "Will", "Zack"]
FAMILY = ["Abbott", "Baker", "Carver", "Dalton", "Ellis", "Fisher", "Grant", "Hayes", "Irwin", "Jensen", "Keller",
          "Lowe", "Mercer", "Nolan", "Osborn", "Porter", "Quade", "Reyes", "Sutton", "Tate", "Underwood", "Vance",
          "Walsh", "Young", "Zeller", "Moreau", "Novak", "Okafor", "Petrov", "Rossi", "Silva", "Tanaka"]

# condition -> (site, age range, [(treatment, weight)], grade system, [(grade, weight)])
CONDITIONS = [
    (Condition.HALLUX_RIGIDUS, 0.35, BodySite.FIRST_MTP, (30, 72),
     [("bmc", 0.18), ("bmc+prolo", 0.14), ("prp", 0.18), ("hyaluronic_acid", 0.18), ("corticosteroid", 0.10),
      ("cheilectomy", 0.22)],
     "coughlin_shurnas", [(1, 0.2), (2, 0.4), (3, 0.3), (4, 0.1)]),
    (Condition.OA_PRIMARY, 0.35, BodySite.KNEE, (42, 82),
     [("bmc", 0.35), ("prp", 0.3), ("hyaluronic_acid", 0.2), ("corticosteroid", 0.15)],
     "kellgren_lawrence", [(1, 0.1), (2, 0.35), (3, 0.4), (4, 0.15)]),
    (Condition.OA_PRIMARY, 0.15, BodySite.HIP, (48, 82),
     [("bmc", 0.4), ("prp", 0.3), ("hyaluronic_acid", 0.15), ("corticosteroid", 0.15)],
     "kellgren_lawrence", [(1, 0.1), (2, 0.35), (3, 0.4), (4, 0.15)]),
    (Condition.LOW_BACK_PAIN, 0.15, BodySite.LUMBAR_SPINE, (24, 70),
     [("prp", 0.4), ("prolotherapy", 0.4), ("corticosteroid", 0.2)], None, []),
]
RESPONSE_PROBABILITY = {"bmc": 0.62, "bmc+prolo": 0.66, "prp": 0.52, "hyaluronic_acid": 0.42, "corticosteroid": 0.35,
                        "cheilectomy": 0.72, "prolotherapy": 0.45}
CONVERSION_KIND = {BodySite.FIRST_MTP: ProcedureKind.FIRST_MTP_ARTHRODESIS, BodySite.KNEE: ProcedureKind.ARTHROPLASTY,
                   BodySite.HIP: ProcedureKind.ARTHROPLASTY, BodySite.LUMBAR_SPINE: ProcedureKind.OTHER_SURGERY}
CPT_FOR = {"cheilectomy": "28289", "first_mtp_arthrodesis": "28750", "prp": "0232T", "prolotherapy": "M0076"}


def _weighted(rng: random.Random, pairs):
    values, weights = zip(*pairs, strict=True)
    return rng.choices(values, weights=weights, k=1)[0]


@dataclass
class SynthStats:
    patients: int = 0
    episodes: int = 0
    procedures: int = 0
    conversions: int = 0
    responses: int = 0
    lost_to_follow_up: int = 0
    adverse_events: int = 0

    def add(self, other: SynthStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class _Table:
    """One table's rows, planned as tuples in `columns` order (attnames, the primary key first unless the
    database assigns it); every other column of the model takes its default (auto_now and auto_now_add: the moment the generator started), the
    value a bulk_create of the same instances would write."""

    def __init__(self, model, columns: list[str], now: dt.datetime):
        fields = {f.attname: f for f in model._meta.concrete_fields}
        self.model = model
        self.table = model._meta.db_table
        self.fields = [fields[c] for c in columns]
        self.tail_fields = [f for f in model._meta.concrete_fields if f.attname not in columns and not
                            (f.primary_key and f.attname not in columns and isinstance(f, AutoFieldMixin))]
        self.tail = tuple(now if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
                          else f.get_default() for f in self.tail_fields)
        self.columns = [f.column for f in (*self.fields, *self.tail_fields)]
        self.rows: list[tuple] = []


class _Ids:
    """Primary keys for the rows a batch plans, taken before they are written: from the table's sequence in
    blocks on PostgreSQL (nextval: safe beside other writers), above the table's largest id on SQLite."""

    LARGEST_BLOCK = 50000

    def __init__(self, model):
        self.model = model
        self.table = model._meta.db_table
        self.free: Iterator[int] = iter(())
        self.next_sqlite: int | None = None
        self.block = 64  # doubles up to LARGEST_BLOCK: a small run takes few ids, a large one few round trips

    def take(self) -> int:
        value = next(self.free, None)
        if value is None:
            self.free = iter(self._block())
            value = next(self.free)
        return value

    def _block(self) -> list[int]:
        self.block = size = min(self.LARGEST_BLOCK, self.block * 2)
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                               [self.table, size])
                return [row[0] for row in cursor.fetchall()]
            if self.next_sqlite is None:
                cursor.execute(f"SELECT MAX(id) FROM {connection.ops.quote_name(self.table)}")
                largest = cursor.fetchone()[0] or 0
                cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [self.table])
                row = cursor.fetchone()
                self.next_sqlite = max(largest, row[0] if row else 0) + 1
            first = self.next_sqlite
            self.next_sqlite += size
            return list(range(first, first + size))


# The columns each table's planned rows carry, in order (the rest take their defaults).
PATIENT_COLUMNS = ["id", "clinic_id", "mrn", "given_name", "family_name", "initials", "birth_date", "sex", "email",
                   "phone", "status", "status_date", "consent_registry", "consent_date", "consent_version"]
EPISODE_COLUMNS = ["id", "patient_id", "condition", "body_site", "side", "icd10_code", "onset_date"]
GRADE_COLUMNS = ["episode_id", "date", "system", "inputs", "suggested_grade", "grade"]
EXAM_COLUMNS = ["episode_id", "date", "dorsiflexion_deg", "plantarflexion_deg"]
PROCEDURE_COLUMNS = ["id", "episode_id", "date", "kind", "category", "is_index", "target_structure",
                     "image_guidance", "cpt_code", "harvest_site", "harvest_volume_ml", "harvest_anticoagulant",
                     "spins", "g_force", "spin_minutes", "final_volume_ml", "total_nucleated_cells", "cfu_f_per_ml",
                     "delivered_volume_ml", "bmi", "smoking", "platelets_per_ul", "leukocytes_per_ul",
                     "platelet_fold", "dextrose_percent", "injection_sites"]
ADVERSE_COLUMNS = ["procedure_id", "date", "severity", "serious", "description"]
RESPONSE_COLUMNS = ["id", "patient_id", "episode_id", "instrument", "instrument_version", "answers", "scores",
                    "score", "valid", "invalid_reason", "time_point", "completed_at", "source"]
ASSESSMENT_COLUMNS = ["patient_id", "episode_id", "protocol_id", "time_point", "time_point_order",
                      "instrument", "due_date", "window_start", "window_end", "status", "cancelled_reason",
                      "completed_at", "response_id"]
STALE_COLUMNS = ["episode_id", "queued_at"]


class _Batch:
    """The rows of one batch of patients, table by table, in the order they are written."""

    def __init__(self, now: dt.datetime):
        self.patients = _Table(Patient, PATIENT_COLUMNS, now)
        self.episodes = _Table(Episode, EPISODE_COLUMNS, now)
        self.grades = _Table(Grade, GRADE_COLUMNS, now)
        self.exams = _Table(Exam, EXAM_COLUMNS, now)
        self.procedures = _Table(Procedure, PROCEDURE_COLUMNS, now)
        self.adverse = _Table(AdverseEvent, ADVERSE_COLUMNS, now)
        self.responses = _Table(Response, RESPONSE_COLUMNS, now)
        self.assessments = _Table(Assessment, ASSESSMENT_COLUMNS, now)
        self.stale = _Table(StaleEpisode, STALE_COLUMNS, now)  # bulk writes send no signals: queue the facts
        self.stats = SynthStats()

    def tables(self) -> list[_Table]:
        return [self.patients, self.episodes, self.grades, self.exams, self.procedures, self.adverse,
                self.responses, self.assessments, self.stale]


class Generator:
    """Plans patients one at a time from a seeded random stream and writes them in batches.

    The rows are plain tuples (no model instances): on PostgreSQL each table of a batch is written with one COPY,
    elsewhere with executemany, in one transaction per batch; their ids are taken from the tables' sequences
    beforehand (`_Ids`). What is written for a seed does not depend on the database or the batch size. Like the
    bulk_create it replaces, it writes no history or audit rows (synthetic records were never edited by anyone).
    It queues every episode it writes for the analytics facts, which the caller refreshes (`facts.refresh()`), or
    with `build_facts` computes them in each batch's transaction (`facts.build_loaded`: on the writer thread,
    beside the planning of the next batch)."""

    def __init__(self, *, clinics: list[Clinic], seed: int = 1, today: dt.date | None = None,
                 mrn_prefix: str = "SYN", with_responses: bool = True, max_follow_up_days: int = 3 * 365,
                 build_facts: bool = False):
        if not clinics:
            raise ValueError("at least one clinic is needed")
        self.clinic_ids = [c.pk for c in clinics]
        self.rng = random.Random(seed)
        self.today = today or timezone.localdate()
        self.now = timezone.now()
        self.mrn_prefix = mrn_prefix
        self.with_responses = with_responses
        self.max_follow_up_days = max_follow_up_days
        self.build_facts = build_facts
        self._batch_numbers = itertools.count(1)
        self.next_number = self._first_free_number()
        self._versions: dict[str, str] = {}
        self._definitions: dict[str, Definition] = {}
        self._order_free: dict[str, bool] = {}
        self.tz = timezone.get_current_timezone()
        self._item_counts: dict[str, int] = {}
        self._scored: dict[tuple, tuple] = {}  # (code, answers) -> the response's answers, scores, score, ...
        self._ri: bool | None = None
        # ids of the rows others refer to, taken beforehand; the rest get theirs from the column's default
        self._ids = {model: _Ids(model) for model in (Patient, Episode, Procedure, Response)}
        # The protocol of each (condition, site), as the follow-up app would choose it for the clinics.
        self._protocols = {}
        for protocol in Protocol.objects.filter(active=True, clinic=None).prefetch_related("time_points"):
            specs = [scheduling.TimePointSpec.of(tp) for tp in protocol.time_points.all()]
            self._protocols[(protocol.condition, protocol.body_site)] = (protocol.pk, specs)

    def _first_free_number(self) -> int:
        last = Patient.objects.filter(mrn__startswith=f"{self.mrn_prefix}-").aggregate(m=Max("mrn"))["m"]
        if not last:
            return 1
        try:
            return int(last.rsplit("-", 1)[1]) + 1
        except ValueError:
            return Patient.objects.filter(mrn__startswith=f"{self.mrn_prefix}-").count() + 1

    def _id(self, model) -> int:
        return self._ids[model].take()

    # ------------------------------------------------------------------ planning
    def plan_patient(self, batch: _Batch) -> None:
        rng = self.rng
        condition, _, site, ages, treatments, grade_system, grades = _weighted(
            rng, [(c, c[1]) for c in CONDITIONS])
        sex = "female" if rng.random() < 0.55 else "male"
        age = rng.randint(*ages)
        index_date = self.today - dt.timedelta(days=rng.randint(1, self.max_follow_up_days))
        birth = index_date - dt.timedelta(days=int(age * 365.25) + rng.randint(0, 364))
        given = rng.choice(GIVEN_F if sex == "female" else GIVEN_M)
        family = rng.choice(FAMILY)
        consent = rng.random() < 0.92
        status, status_date = Patient.Status.ACTIVE.value, None
        roll = rng.random()
        if roll < 0.02:
            status, status_date = Patient.Status.WITHDRAWN.value, min(self.today, index_date + dt.timedelta(days=rng.randint(30, 500)))
        elif roll < 0.025:
            status, status_date = Patient.Status.DECEASED.value, min(self.today, index_date + dt.timedelta(days=rng.randint(60, 900)))
        number = self.next_number
        self.next_number += 1
        clinic_id = rng.choice(self.clinic_ids)
        consent_date = index_date - dt.timedelta(days=rng.randint(7, 40)) if consent else None
        patient_id = self._id(Patient)
        batch.patients.rows.append((
            patient_id, clinic_id, f"{self.mrn_prefix}-{number:07d}", given, family,
            Patient.initials_from(given, family), birth, sex, f"{given.lower()}.{family.lower()}.{number}@example.org",
            f"+1-555-{number % 10000:04d}", status, status_date, consent, consent_date,
            "2024-1" if consent else ""))
        batch.stats.patients += 1

        side = Side.NOT_APPLICABLE if site == BodySite.LUMBAR_SPINE else rng.choice([Side.RIGHT, Side.LEFT])
        episode_id = self._id(Episode)
        batch.episodes.rows.append((episode_id, patient_id, str(condition), str(site), str(side),
                                    icd10_for(condition, site, side),
                                    index_date - dt.timedelta(days=rng.randint(120, 3000))))
        if not self.build_facts:
            batch.stale.rows.append((episode_id, self.now))
        batch.stats.episodes += 1

        grade = _weighted(rng, grades) if grades else None
        if grade_system:
            batch.grades.rows.append(self._grade(episode_id, grade_system, grade, index_date))
        treatment = _weighted(rng, treatments)
        if site == BodySite.FIRST_MTP:
            dorsi = max(0, int(55 - 12 * grade + rng.gauss(0, 5)))
            batch.exams.rows.append((episode_id, index_date - dt.timedelta(days=rng.randint(0, 20)),
                                     dorsi, max(0, dorsi // 2)))

        for proc in self._procedures(treatment, index_date, site):
            procedure_id = self._procedure(batch, episode_id, proc)
            batch.stats.procedures += 1
            if proc["kind"] in (ProcedureKind.BMC, ProcedureKind.PRP) and rng.random() < 0.06:
                serious = rng.random() < 0.25
                date = proc["date"] + dt.timedelta(days=rng.randint(0, 10))
                severity = "severe" if serious else rng.choice(["mild", "mild", "moderate"])
                description = ("Post-procedure infection requiring admission" if serious
                               else rng.choice(["Post-injection pain flare", "Harvest-site soreness", "Bruising"]))
                if date <= self.today:
                    batch.adverse.rows.append((procedure_id, date, severity, serious,
                                               description))
                    batch.stats.adverse_events += 1

        # Outcome course
        p_respond = RESPONSE_PROBABILITY[treatment] - 0.08 * ((grade or 2) - 2)
        responder = rng.random() < p_respond
        final_improvement = rng.uniform(0.5, 0.92) if responder else rng.uniform(-0.15, 0.42)
        conversion_date = None
        conversion_p = 0.05 if treatment == "cheilectomy" else (0.28 if not responder else 0.03)
        if grade and grade >= 3 and not responder:
            conversion_p += 0.1
        if rng.random() < conversion_p:
            candidate = index_date + dt.timedelta(days=rng.randint(90, 800))
            if candidate <= self.today and (status_date is None or candidate < status_date):
                conversion_date = candidate
                kind = CONVERSION_KIND[site]
                if site == BodySite.FIRST_MTP and treatment != "cheilectomy" and grade <= 2 and rng.random() < 0.5:
                    kind = ProcedureKind.CHEILECTOMY
                self._procedure(batch, episode_id, {
                    "date": conversion_date, "kind": kind, "category": "surgery",
                    "target_structure": TargetStructure.JOINT, "cpt_code": CPT_FOR.get(kind, "")})
                batch.stats.procedures += 1
                batch.stats.conversions += 1

        lost_after = None
        if rng.random() < 0.2:
            lost_after = rng.randint(1, 4)  # responds to the first N time points only
            batch.stats.lost_to_follow_up += 1
        if self.with_responses:
            self._plan_responses(batch, patient_id, episode_id, condition, site, index_date, final_improvement,
                                 conversion_date, lost_after, status_date)

    def _grade(self, episode_id: int, system: str, grade: int, index_date: dt.date) -> tuple:
        day = index_date - dt.timedelta(days=self.rng.randint(3, 30))
        if system == "coughlin_shurnas":
            inputs = {"radiograph": min(grade, 3), "clinical": min(grade, 3), "midrange_pain": grade == 4}
        else:
            inputs = {"kl_grade": grade}
        return (episode_id, day, system, json.dumps(inputs), grade, grade)

    def _procedure(self, batch: _Batch, episode_id: int, values: dict) -> int:
        procedure_id = self._id(Procedure)
        defaults = self._procedure_defaults
        batch.procedures.rows.append((procedure_id, episode_id, *(
            str(v) if isinstance(v := values.get(c, defaults[c]), enum.Enum) else v for c in PROCEDURE_COLUMNS[2:])))
        return procedure_id

    @functools.cached_property
    def _procedure_defaults(self) -> dict[str, Any]:
        return {f.attname: f.get_default() for f in Procedure._meta.concrete_fields}

    def _procedures(self, treatment: str, index_date: dt.date, site: str) -> Iterator[dict]:
        rng = self.rng
        guidance = "ultrasound" if rng.random() < 0.8 else "fluoroscopy"
        if treatment in ("bmc", "bmc+prolo"):
            harvest = round(rng.uniform(30, 90), 1)
            yield dict(
                date=index_date, kind="bmc", category="orthobiologic", is_index=True, target_structure="joint",
                image_guidance=guidance, cpt_code=joint_injection_cpt(site, guidance),
                harvest_site="pic", harvest_volume_ml=harvest, harvest_anticoagulant="heparin", spins=2,
                g_force=rng.choice([400, 800, 1200]), spin_minutes=10, final_volume_ml=round(rng.uniform(2, 8), 1),
                total_nucleated_cells=float(f"{10 ** rng.uniform(7.8, 9.2):.3g}"),
                cfu_f_per_ml=round(rng.uniform(200, 4000)), delivered_volume_ml=round(rng.uniform(1, 6), 1),
                bmi=round(rng.uniform(19, 34), 1), smoking=rng.choice(["never", "never", "former", "current"]))
            if treatment == "bmc+prolo":
                for n in range(rng.randint(1, 3)):
                    day = index_date + dt.timedelta(days=28 * n)
                    if day <= self.today:
                        yield dict(date=day, kind="prolotherapy", category="injection",
                                   target_structure="mcl", image_guidance="ultrasound", cpt_code="M0076",
                                   dextrose_percent=rng.choice([12.5, 15, 25]), injection_sites=rng.randint(2, 6))
        elif treatment == "prp":
            yield dict(date=index_date, kind="prp", category="orthobiologic", is_index=True,
                       target_structure="facet" if site == BodySite.LUMBAR_SPINE else "joint",
                       image_guidance=guidance, cpt_code="0232T", harvest_site="blood",
                       harvest_volume_ml=round(rng.uniform(20, 60), 1), harvest_anticoagulant="acd_a", spins=2,
                       final_volume_ml=round(rng.uniform(3, 8), 1), platelets_per_ul=round(rng.uniform(800, 2000)),
                       leukocytes_per_ul=round(rng.uniform(0.5, 15), 1), platelet_fold=round(rng.uniform(3, 8), 1))
        elif treatment == "prolotherapy":
            yield dict(date=index_date, kind="prolotherapy", category="injection", is_index=True,
                       target_structure="si_joint", image_guidance=guidance, cpt_code="M0076",
                       dextrose_percent=rng.choice([12.5, 15, 25]), injection_sites=rng.randint(4, 12))
        elif treatment == "cheilectomy":
            yield dict(date=index_date, kind="cheilectomy", category="surgery", is_index=True,
                       target_structure="joint", cpt_code="28289")
        else:
            yield dict(date=index_date, kind=treatment, category="injection", is_index=True,
                       target_structure="joint", image_guidance=guidance)

    def _plan_responses(self, batch, patient_id, episode_id, condition, site, index_date, improvement,
                        conversion_date, lost_after, status_date) -> None:
        """Answers at each time point of the protocol, and the assessments they complete (or leave open)."""
        rng = self.rng
        protocol, specs = self._protocols.get((condition, site), (None, []))
        baseline = min(10, max(3, round(rng.gauss(6.6, 1.3))))
        responded_points = 0
        responses, assessments = batch.responses.rows, batch.assessments.rows
        for spec in specs:
            due = scheduling.due_date(index_date, spec)
            window_start = due - dt.timedelta(days=spec.window_before_days)
            window_end = due + dt.timedelta(days=spec.window_after_days)
            day = min(window_end, max(window_start, due + dt.timedelta(days=rng.randint(-5, 12))))
            stop = ""
            if status_date and due >= status_date:
                stop = "patient no longer active"
            elif conversion_date and due >= conversion_date:
                stop = "converted to surgery"
            answered = (not stop and day <= self.today and (lost_after is None or responded_points < lost_after)
                        and (spec.label == "baseline" or rng.random() > 0.08))
            offset = (due - index_date).days
            reach = 1 - math.exp(-max(0, offset) / 60)
            pain = baseline if offset <= 0 else baseline * (1 - improvement * reach) + rng.gauss(0, 0.6)
            pain = int(min(10, max(0, round(pain))))
            better = round(100 * improvement * reach + rng.gauss(0, 8))
            # (answered today: not later than now, which the registry's own validation would refuse as future)
            completed = min(dt.datetime.combine(day, dt.time(hour=rng.randint(7, 21)), tzinfo=self.tz), self.now)
            if answered:
                responded_points += 1
            status = "completed" if answered else ("cancelled" if stop else "scheduled")
            for code in spec.instruments:
                response_id = None
                if answered:
                    response_id = self._id(Response)
                    responses.append((response_id, patient_id, episode_id,
                                      *self._response(code, self._answers(code, pain, better)), spec.label,
                                      completed, "import"))
                    batch.stats.responses += 1
                assessments.append((
                    patient_id, episode_id, protocol, spec.label, spec.order, code, due,
                    window_start, window_end, status, stop, completed if answered else None, response_id))
            regional = REGIONAL_INSTRUMENT.get(site)
            if answered and regional and spec.label in REGIONAL_TIME_POINTS:
                responses.append((self._id(Response), patient_id, episode_id,
                                  *self._response(regional, self._regional_answers(regional, pain)), spec.label,
                                  completed, "import"))
                batch.stats.responses += 1

    def _answers(self, code: str, pain: int, better: int) -> list:
        rng = self.rng
        if code == "nprs":
            return [pain]
        if code == "sane":
            return [int(min(100, max(0, round(100 - 8.5 * pain + rng.gauss(0, 6)))))]
        if code == "global-improvement":
            if better > 5:
                return [1, min(100, better)]
            if better < -5:
                return [-1, min(100, -better)]
            return [0, None]
        if code == "satisfaction":
            level = 5 if better >= 60 else 4 if better >= 35 else 3 if better >= 10 else 2 if better >= -5 else 1
            level = int(min(5, max(1, level + rng.choice([-1, 0, 0, 0, 1]))))
            return [level, 1 if level >= 4 or (level == 3 and rng.random() < 0.5) else 0]
        raise ValueError(f"no synthetic answers for {code}")

    def _regional_answers(self, code: str, pain: int) -> list:
        ability = 4 * (1 - pain / 10)
        n = self._item_counts.get(code)
        if n is None:
            n = self._item_counts[code] = len(get_definition(code).items)
        gauss = self.rng.gauss
        return [int(min(4, max(0, round(ability + gauss(0, 0.7))))) for _ in range(n)]

    def _response(self, code: str, answers: list) -> tuple:
        """(instrument, version, answers, scores, score, valid, invalid_reason) of a response, scored by the
        instruments' engine; the JSON of short answer lists and their scores is remembered (they repeat)."""
        definition = self._definitions.get(code)
        if definition is None:
            definition = self._definitions[code] = scoring_definition(code)
            self._versions[code] = get_definition(code).version
            self._order_free[code] = _order_free(definition)
        if self._order_free[code]:  # the same answers in any order score the same: remember them counted
            key: tuple = (code, *sorted(answers, key=lambda a: (a is None, a)))
        else:
            key = (code, *answers)
        known = self._scored.get(key)
        if known is None:
            result = scoring.score_definition(definition, answers)
            known = (json.dumps(result.scores), result.primary, result.valid, result.reason)
            if self._order_free[code] or len(answers) <= 2:  # (a bounded number of keys)
                self._scored[key] = known
        return (code, self._versions[code], json.dumps(answers), *known)

    # ------------------------------------------------------------------ writing
    def write(self, batch: _Batch) -> None:
        """Write one batch in one transaction (on the calling thread's connection)."""
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SET LOCAL synchronous_commit = off")  # a crash loses whole batches, nothing else
                if self._skip_ri_triggers():
                    # Rows consistent by construction (their ids were taken above, their clinics and protocols
                    # exist): no row-by-row foreign-key checks at commit, as pg_restore --disable-triggers.
                    cursor.execute("SET LOCAL session_replication_role = replica")
            for table in batch.tables():
                if table.rows:
                    _write_rows(cursor, table)
            if self.build_facts:
                n = next(self._batch_numbers)  # statistics after batches 1, 2, 4, 8, ...: the tables grow
                facts.build_loaded([row[0] for row in batch.episodes.rows], analyze=n & (n - 1) == 0)

    def _skip_ri_triggers(self) -> bool:
        """Whether the foreign-key triggers may be skipped: a superuser's session (session_replication_role) and
        no trigger of the project's own on the tables written (it would be skipped too)."""
        if self._ri is None:
            tables = [t.table for t in _Batch(self.now).tables()]
            with connection.cursor() as cursor:
                cursor.execute("SELECT current_setting('is_superuser') = 'on', EXISTS (SELECT 1 FROM pg_trigger "
                               "WHERE NOT tgisinternal AND tgrelid::regclass::text = ANY(%s))", [tables])
                superuser, own_triggers = cursor.fetchone()
            self._ri = bool(superuser and not own_triggers)
        return self._ri

    def run(self, patients: int, *, batch_size: int = 1000, writers: int = 1,
            progress: Callable[[int], None] | None = None) -> SynthStats:
        """Plan and write `patients` in batches. On PostgreSQL outside a transaction, `writers` threads (each its
        own connection) write the batches while the next ones are planned, at most one batch waiting per writer:
        the database's work overlaps Python's and memory stays bounded to about writers + 1 batches."""
        total = SynthStats()
        deferred = False
        if self.build_facts:
            facts.check_rules()
            if patients >= Episode.objects.count():  # the clinic counts: one pass at the end (refresh)
                facts.defer_cell_counts()
                deferred = True
        threaded = connection.vendor == "postgresql" and not connection.in_atomic_block
        writers = max(1, writers) if threaded else 0
        pool = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="synth-writer") if writers else None
        pending: deque[tuple[Future, int]] = deque()  # the batches being written, their patients

        def wait(room: int) -> None:
            while len(pending) > room:
                future, n = pending.popleft()
                future.result()
                if progress:
                    progress(n)

        done = 0
        try:
            while done < patients:
                batch = _Batch(self.now)
                for _ in range(min(batch_size, patients - done)):
                    self.plan_patient(batch)
                if pool is not None:
                    wait(writers - 1)
                    pending.append((pool.submit(self.write, batch), batch.stats.patients))
                else:
                    self.write(batch)
                    if progress:
                        progress(batch.stats.patients)
                total.add(batch.stats)
                done += batch.stats.patients
            wait(0)
        finally:
            if pool is not None:
                barrier = threading.Barrier(writers)  # one close on each writer thread: its own connection

                def close() -> None:
                    barrier.wait()
                    connections.close_all()

                for future in [pool.submit(close) for _ in range(writers)]:
                    future.result()
                pool.shutdown()
        if deferred:  # (again: a refresh elsewhere may have recounted while this load went on)
            facts.defer_cell_counts()
        return total

ORDER_FREE_METHODS = {"value", "sum", "mean", "percent_of_answered_max", "inverted_percent_of_answered_max"}


def _order_free(definition: Definition) -> bool:
    """Whether a definition's scores do not depend on which item got which answer: every subscale takes every
    item (a sum, mean or percent of them) and every item has the same type, range and options."""
    items = definition.items
    every = set(range(len(items)))

    def signature(item):
        return (item.type, item.minimum, item.maximum, item.required, item.options)

    return (bool(definition.subscales) and all(set(sub.items) == every and sub.method in ORDER_FREE_METHODS
                                                for sub in definition.subscales)
            and all(signature(i) == signature(items[0]) for i in items))


def _write_rows(cursor, table: _Table) -> None:
    """COPY on PostgreSQL (psycopg adapts dates, times and numbers; JSON columns are planned as their text),
    executemany with each field's own conversion elsewhere."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(c) for c in table.columns)
    json_tail = [isinstance(f, JSONField) for f in table.tail_fields]
    if connection.vendor == "postgresql":
        tail = tuple(json.dumps(v) if is_json else v for v, is_json in zip(table.tail, json_tail, strict=True))
        with cursor.cursor.copy(f"COPY {quote(table.table)} ({columns}) FROM STDIN") as copy:
            write = copy.write_row
            for row in table.rows:
                write(row + tail)
        return
    tail = tuple(f.get_db_prep_save(v, connection) for f, v in zip(table.tail_fields, table.tail, strict=True))
    prepare = [(lambda v: v) if isinstance(f, JSONField) else functools.partial(_prepare, f)
               for f in table.fields]
    placeholders = ", ".join(["%s"] * len(table.columns))
    cursor.executemany(f"INSERT INTO {quote(table.table)} ({columns}) VALUES ({placeholders})",
                       [tuple(p(v) for p, v in zip(prepare, row, strict=True)) + tail for row in table.rows])


def _prepare(field, value):
    return field.get_db_prep_save(value, connection)
