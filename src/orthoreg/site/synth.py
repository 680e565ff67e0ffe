"""Synthetic registry generator: deterministic, streamed in batches, bounded memory.

Realistic enough to exercise every report: hallux rigidus, knee OA, hip OA and low back pain; treatment
mixes per condition; responders and non-responders; conversions to fusion or arthroplasty; 15-25% lost to
follow-up; adverse events. Reference values from DOMAIN.md section 6 shape the probabilities. Dates are
relative to `today`, so follow-ups are due and overdue whenever it is run.

Used by `orthoreg demo` (a few hundred patients) and `orthoreg synth --patients N` (up to millions, for
benchmarks): each batch is planned in memory, written with bulk_create in one transaction, then dropped.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from orthoreg.analytics.facts import mark_episodes
from orthoreg.followup import scheduling
from orthoreg.followup.models import Assessment, Protocol
from orthoreg.instruments import scoring
from orthoreg.instruments.definitions import get_definition
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


@dataclass
class _Batch:
    patients: list[Patient] = field(default_factory=list)
    episodes: list[tuple[int, Episode]] = field(default_factory=list)  # (patient index, episode)
    children: list[tuple[int, Any]] = field(default_factory=list)  # (episode index, grade/procedure/exam)
    adverse: list[tuple[int, AdverseEvent]] = field(default_factory=list)  # (child index of procedure, event)
    responses: list[tuple[int, Response]] = field(default_factory=list)  # (episode index, Response)
    assessments: list[tuple[int, Response | None, Assessment]] = field(default_factory=list)  # (episode, response, assessment)
    stats: SynthStats = field(default_factory=SynthStats)


class Generator:
    """Plans patients one at a time from a seeded random stream and writes them in batches."""

    def __init__(self, *, clinics: list[Clinic], seed: int = 1, today: dt.date | None = None,
                 mrn_prefix: str = "SYN", with_responses: bool = True, max_follow_up_days: int = 3 * 365):
        if not clinics:
            raise ValueError("at least one clinic is needed")
        self.clinics = clinics
        self.rng = random.Random(seed)
        self.today = today or timezone.localdate()
        self.mrn_prefix = mrn_prefix
        self.with_responses = with_responses
        self.max_follow_up_days = max_follow_up_days
        self.next_number = self._first_free_number()
        self._scorer = scoring.score
        self._get_definition = get_definition
        self._versions: dict[str, str] = {}
        self._item_counts: dict[str, int] = {}
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
        status, status_date = Patient.Status.ACTIVE, None
        roll = rng.random()
        if roll < 0.02:
            status, status_date = Patient.Status.WITHDRAWN, min(self.today, index_date + dt.timedelta(days=rng.randint(30, 500)))
        elif roll < 0.025:
            status, status_date = Patient.Status.DECEASED, min(self.today, index_date + dt.timedelta(days=rng.randint(60, 900)))
        number = self.next_number
        self.next_number += 1
        patient = Patient(
            clinic=rng.choice(self.clinics), mrn=f"{self.mrn_prefix}-{number:07d}", given_name=given,
            family_name=family, initials=Patient.initials_from(given, family), birth_date=birth, sex=sex,
            email=f"{given.lower()}.{family.lower()}.{number}@example.org", phone=f"+1-555-{number % 10000:04d}",
            status=status, status_date=status_date, consent_registry=consent,
            consent_date=index_date - dt.timedelta(days=rng.randint(7, 40)) if consent else None,
            consent_version="2024-1" if consent else "")
        p_index = len(batch.patients)
        batch.patients.append(patient)
        batch.stats.patients += 1

        side = Side.NOT_APPLICABLE if site == BodySite.LUMBAR_SPINE else rng.choice([Side.RIGHT, Side.LEFT])
        episode = Episode(condition=condition, body_site=site, side=side, icd10_code=icd10_for(condition, site, side),
                          onset_date=index_date - dt.timedelta(days=rng.randint(120, 3000)))
        e_index = len(batch.episodes)
        batch.episodes.append((p_index, episode))
        batch.stats.episodes += 1

        grade = _weighted(rng, grades) if grades else None
        if grade_system:
            batch.children.append((e_index, self._grade(grade_system, grade, index_date, site)))
        treatment = _weighted(rng, treatments)
        if site == BodySite.FIRST_MTP:
            dorsi = max(0, int(55 - 12 * grade + rng.gauss(0, 5)))
            batch.children.append((e_index, Exam(date=index_date - dt.timedelta(days=rng.randint(0, 20)),
                                                 dorsiflexion_deg=dorsi, plantarflexion_deg=max(0, dorsi // 2))))

        for proc in self._procedures(treatment, index_date, site):
            batch.children.append((e_index, proc))
            batch.stats.procedures += 1
            if proc.kind in (ProcedureKind.BMC, ProcedureKind.PRP) and rng.random() < 0.06:
                serious = rng.random() < 0.25
                event = AdverseEvent(
                    date=proc.date + dt.timedelta(days=rng.randint(0, 10)),
                    severity="severe" if serious else rng.choice(["mild", "mild", "moderate"]), serious=serious,
                    description="Post-procedure infection requiring admission" if serious
                    else rng.choice(["Post-injection pain flare", "Harvest-site soreness", "Bruising"]))
                if event.date <= self.today:
                    batch.adverse.append((len(batch.children) - 1, event))
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
                batch.children.append((e_index, Procedure(
                    date=conversion_date, kind=kind, category="surgery", target_structure=TargetStructure.JOINT,
                    cpt_code=CPT_FOR.get(kind, ""))))
                batch.stats.procedures += 1
                batch.stats.conversions += 1

        lost_after = None
        if rng.random() < 0.2:
            lost_after = rng.randint(1, 4)  # responds to the first N time points only
            batch.stats.lost_to_follow_up += 1
        if self.with_responses:
            self._plan_responses(batch, e_index, site, index_date, final_improvement, conversion_date,
                                 lost_after, status_date)

    def _grade(self, system: str, grade: int, index_date: dt.date, site: str) -> Grade:
        day = index_date - dt.timedelta(days=self.rng.randint(3, 30))
        if system == "coughlin_shurnas":
            inputs = {"radiograph": min(grade, 3), "clinical": min(grade, 3), "midrange_pain": grade == 4}
            return Grade(date=day, system=system, inputs=inputs, suggested_grade=grade, grade=grade)
        return Grade(date=day, system=system, inputs={"kl_grade": grade}, suggested_grade=grade, grade=grade)

    def _procedures(self, treatment: str, index_date: dt.date, site: str) -> Iterator[Procedure]:
        rng = self.rng
        guidance = "ultrasound" if rng.random() < 0.8 else "fluoroscopy"
        if treatment in ("bmc", "bmc+prolo"):
            harvest = round(rng.uniform(30, 90), 1)
            yield Procedure(
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
                        yield Procedure(date=day, kind="prolotherapy", category="injection",
                                        target_structure="mcl", image_guidance="ultrasound", cpt_code="M0076",
                                        dextrose_percent=rng.choice([12.5, 15, 25]), injection_sites=rng.randint(2, 6))
        elif treatment == "prp":
            yield Procedure(date=index_date, kind="prp", category="orthobiologic", is_index=True,
                            target_structure="facet" if site == BodySite.LUMBAR_SPINE else "joint",
                            image_guidance=guidance, cpt_code="0232T", harvest_site="blood",
                            harvest_volume_ml=round(rng.uniform(20, 60), 1), harvest_anticoagulant="acd_a", spins=2,
                            final_volume_ml=round(rng.uniform(3, 8), 1), platelets_per_ul=round(rng.uniform(800, 2000)),
                            leukocytes_per_ul=round(rng.uniform(0.5, 15), 1), platelet_fold=round(rng.uniform(3, 8), 1))
        elif treatment == "prolotherapy":
            yield Procedure(date=index_date, kind="prolotherapy", category="injection", is_index=True,
                            target_structure="si_joint", image_guidance=guidance, cpt_code="M0076",
                            dextrose_percent=rng.choice([12.5, 15, 25]), injection_sites=rng.randint(4, 12))
        elif treatment == "cheilectomy":
            yield Procedure(date=index_date, kind="cheilectomy", category="surgery", is_index=True,
                            target_structure="joint", cpt_code="28289")
        else:
            yield Procedure(date=index_date, kind=treatment, category="injection", is_index=True,
                            target_structure="joint", image_guidance=guidance)

    def _plan_responses(self, batch, e_index, site, index_date, improvement, conversion_date, lost_after,
                        status_date) -> None:
        """Answers at each time point of the protocol, and the assessments they complete (or leave open)."""
        rng = self.rng
        protocol, specs = self._protocols.get((batch.episodes[e_index][1].condition, site), (None, []))
        baseline = min(10, max(3, round(rng.gauss(6.6, 1.3))))
        responded_points = 0
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
            completed = timezone.make_aware(dt.datetime.combine(day, dt.time(hour=rng.randint(7, 21))))
            if answered:
                responded_points += 1
            for code in spec.instruments:
                response = None
                if answered:
                    response = self._response(code, self._answers(code, pain, better), spec.label, completed)
                    batch.responses.append((e_index, response))
                    batch.stats.responses += 1
                status = "completed" if answered else ("cancelled" if stop else "scheduled")
                batch.assessments.append((e_index, response, Assessment(
                    protocol_id=protocol, time_point=spec.label, time_point_order=spec.order, instrument=code,
                    due_date=due, window_start=window_start, window_end=window_end, status=status,
                    cancelled_reason=stop, completed_at=completed if answered else None)))
            regional = REGIONAL_INSTRUMENT.get(site)
            if answered and regional and spec.label in REGIONAL_TIME_POINTS:
                batch.responses.append((e_index, self._response(
                    regional, self._regional_answers(regional, pain), spec.label, completed)))
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
        n = self._item_counts.setdefault(code, len(self._get_definition(code).items))
        return [int(min(4, max(0, round(ability + self.rng.gauss(0, 0.7))))) for _ in range(n)]

    def _response(self, code: str, answers: list, label: str, completed: dt.datetime):
        result = self._scorer(code, answers)
        if code not in self._versions:
            self._versions[code] = self._get_definition(code).version
        return Response(instrument=code, instrument_version=self._versions[code], answers=answers,
                        scores=result.scores, score=result.primary, valid=result.valid,
                        invalid_reason=result.reason, time_point=label, completed_at=completed, source="import")

    # ------------------------------------------------------------------ writing
    def write(self, batch: _Batch) -> None:
        with transaction.atomic():
            Patient.objects.bulk_create(batch.patients)
            episodes = []
            for p_index, episode in batch.episodes:
                episode.patient = batch.patients[p_index]
                episodes.append(episode)
            Episode.objects.bulk_create(episodes)
            by_model: dict[type[Any], list] = {}
            for e_index, child in batch.children:
                child.episode = episodes[e_index]
                by_model.setdefault(type(child), []).append(child)
            for model, objs in by_model.items():
                model.objects.bulk_create(objs)
            events = []
            for c_index, event in batch.adverse:
                event.procedure = batch.children[c_index][1]
                events.append(event)
            AdverseEvent.objects.bulk_create(events)
            responses = []
            for e_index, response in batch.responses:
                response.episode = episodes[e_index]
                response.patient_id = episodes[e_index].patient_id
                responses.append(response)
            Response.objects.bulk_create(responses, batch_size=2000)
            assessments = []
            for e_index, response, assessment in batch.assessments:
                assessment.episode = episodes[e_index]
                assessment.patient_id = episodes[e_index].patient_id
                assessment.response = response
                assessments.append(assessment)
            Assessment.objects.bulk_create(assessments, batch_size=2000)
            mark_episodes(e.pk for e in episodes)  # bulk_create sends no signals

    def run(self, patients: int, *, batch_size: int = 1000,
            progress: Callable[[int], None] | None = None) -> SynthStats:
        total = SynthStats()
        done = 0
        while done < patients:
            batch = _Batch()
            for _ in range(min(batch_size, patients - done)):
                self.plan_patient(batch)
            self.write(batch)
            total.add(batch.stats)
            done += batch.stats.patients
            if progress:
                progress(batch.stats.patients)
        return total
