"""Building registries for analytics tests with exact dates, through the ORM (no scheduling side effects), so
every count of a test can be worked out by hand. Like any bulk load it says what it wrote (records_changed)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from orthoreg import events
from orthoreg.followup.models import Assessment
from orthoreg.instruments.models import Response
from orthoreg.registry.models import AdverseEvent, Episode, Exam, Grade, Patient, Procedure

SUBSCALE = {"nprs": "pain", "sane": "sane", "faam-adl": "adl", "lefs": "lefs", "global-improvement": "improvement"}
WINDOWS = {"baseline": (0, 30, 0), "6w": (42, 7, 14), "3m": (91, 14, 28), "6m": (181, 28, 42), "12m": (365, 30, 60),
           "24m": (730, 30, 60)}
ORDER = {"baseline": 0, "6w": 1, "3m": 2, "6m": 3, "12m": 4, "24m": 5}


def at(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(12, 0)))


class Builder:
    def __init__(self, clinic):
        self.clinic = clinic
        self.n = 0

    def episode(self, *, index_date: dt.date, kind: str = "bmc", sex: str = "female", birth: dt.date | None = None,
                condition: str = "hallux_rigidus", site: str = "first_mtp", side: str = "right",
                grade: int | None = None, status: str = "active", status_date: dt.date | None = None,
                clinic=None, consent: bool = True) -> Episode:
        self.n += 1
        patient = Patient.objects.create(
            clinic=clinic or self.clinic, mrn=f"T-{self.n:04d}", given_name=f"Given{self.n}",
            family_name=f"Family{self.n}", birth_date=birth or dt.date(1980, 6, 15), sex=sex, status=status,
            status_date=status_date, consent_registry=consent, consent_date=dt.date(2024, 1, 1) if consent else None,
            consent_version="1" if consent else "")
        episode = Episode.objects.create(patient=patient, condition=condition, body_site=site, side=side)
        Procedure.objects.create(episode=episode, date=index_date, kind=kind, is_index=True)
        if grade is not None:
            system = "coughlin_shurnas" if site == "first_mtp" else "kellgren_lawrence"
            Grade.objects.create(episode=episode, date=index_date - dt.timedelta(days=7), system=system,
                                 grade=grade)
        events.records_changed_send(episode_ids=[episode.pk])
        return episode

    def index_date(self, episode) -> dt.date:
        return episode.procedures.get(is_index=True).date

    def assessment(self, episode, time_point: str, instrument: str = "nprs", *, score: float | None = None,
                   answered_on: dt.date | None = None, status: str | None = None, reason: str = "",
                   scored: bool = True) -> Assessment:
        """One assessment due at its time point after the index date; answered with `score` when given."""
        offset, before, after = WINDOWS[time_point]
        due = self.index_date(episode) + dt.timedelta(days=offset)
        response = None
        if score is not None:
            response = self.response(episode, time_point, instrument, score, answered_on or due, scored=scored)
        assessment = Assessment.objects.create(
            patient=episode.patient, episode=episode, time_point=time_point, time_point_order=ORDER[time_point],
            instrument=instrument, due_date=due, window_start=due - dt.timedelta(days=before),
            window_end=due + dt.timedelta(days=after),
            status=status or ("completed" if response else "scheduled"), cancelled_reason=reason,
            completed_at=response.completed_at if response else None, response=response)
        events.records_changed_send(episode_ids=[episode.pk])
        return assessment

    def response(self, episode, time_point: str, instrument: str, score: float, day: dt.date,
                 scored: bool = True) -> Response:
        response = Response.objects.create(
            patient=episode.patient, episode=episode, time_point=time_point, instrument=instrument,
            instrument_version="1", answers=[score], scores={SUBSCALE[instrument]: score} if scored else {},
            score=score if scored else None, valid=scored, completed_at=at(day), source="import")
        events.records_changed_send(episode_ids=[episode.pk], patient_ids=[episode.patient_id])
        return response

    def procedure(self, episode, *, date: dt.date, kind: str) -> Procedure:
        procedure = Procedure.objects.create(episode=episode, date=date, kind=kind)
        events.records_changed_send(episode_ids=[episode.pk])
        return procedure

    def exam(self, episode, *, date: dt.date) -> Exam:
        exam = Exam.objects.create(episode=episode, date=date)
        events.records_changed_send(episode_ids=[episode.pk])
        return exam

    def adverse_event(self, episode, *, date: dt.date, serious: bool = False) -> AdverseEvent:
        event = AdverseEvent.objects.create(
            procedure=episode.procedures.get(is_index=True), date=date, serious=serious,
            severity="severe" if serious else "mild", description="test event")
        events.records_changed_send(episode_ids=[episode.pk])
        return event
