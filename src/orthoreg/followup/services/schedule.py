"""Planning an episode's assessments from its index procedure and protocol, re-planning when the record changes
(an index procedure moved, a conversion to surgery, death or withdrawal), and cancelling what no longer applies."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from orthoreg import bulkinsert, events
from orthoreg.accounts.models import AuditEvent
from orthoreg.accounts.services import audit_record
from orthoreg.formats import format_date
from orthoreg.registry import rules
from orthoreg.registry.models import Episode, Patient, Procedure

from .. import scheduling, selectors
from ..models import AccessToken, Assessment, Invitation, Protocol
from .invitations import _window_end_of_day

REPLANNABLE = ("no longer in the protocol", "no index procedure", "no protocol for this episode")


# ------------------------------------------------------------------------------------------ scheduling

@dataclass
class ScheduleResult:
    created: int = 0
    updated: int = 0
    cancelled: int = 0
    protocol: Protocol | None = None


def _cutoff(episode: Episode, index: Procedure | None) -> tuple[dt.date | None, str]:
    """The date from which nothing more is asked, and why (death, withdrawal, conversion)."""
    patient = episode.patient
    if patient.status != Patient.Status.ACTIVE:
        day = patient.status_date or timezone.localdate()
        return day, f"patient {patient.get_status_display().lower()} on {format_date(day)}"
    return None, ""


def episode_schedule(*, episode: Episode) -> ScheduleResult:
    """Plan (or re-plan) the episode's assessments from its index procedure and protocol. Idempotent:
    completed assessments are never touched, already-invited time points keep their dates, nothing is duplicated,
    and what no longer applies is cancelled with the reason kept. (episodes_schedule for one episode.)"""
    return episodes_schedule(episodes=[episode])[0]


@transaction.atomic
def episodes_schedule(*, episodes, recorded: Sequence[Procedure] = ()) -> list[ScheduleResult]:
    """episode_schedule for many episodes at once (the bulk twin: an import re-plans every episode its procedures
    touched together). What it reads is read for all of them in a few queries; what it creates is inserted
    together; records_changed is sent once. Returns one result per distinct episode, in order.

    recorded: procedures just stored together, in the order they were recorded. An episode is then planned as
    if each had been recorded alone, one after the other (in memory: e.g. an index procedure and a conversion
    stored together leave the assessments after the conversion cancelled, as two single records would)."""
    ids = list(dict.fromkeys(e.pk for e in episodes))
    if not ids:
        return []
    loaded = Episode.objects.select_related("patient__clinic").in_bulk(ids)
    procedures: dict[int, list[Procedure]] = {pk: [] for pk in ids}
    for procedure in Procedure.objects.filter(episode_id__in=ids):
        procedures[procedure.episode_id].append(procedure)
    assessments: dict[int, dict[tuple[str, str], Assessment]] = {pk: {} for pk in ids}
    for a in Assessment.objects.select_for_update().filter(episode_id__in=ids):
        assessments[a.episode_id][(a.time_point, a.instrument)] = a
    invited: dict[int, set[str]] = {pk: set() for pk in ids}
    for episode_id, time_point in Invitation.objects.filter(episode_id__in=ids, sends__gt=0).values_list(
            "episode_id", "time_point"):
        invited[episode_id].add(time_point)
    conditions = sorted({e.condition for e in loaded.values()})
    protocols = list(Protocol.objects.filter(active=True, condition__in=conditions).prefetch_related("time_points"))
    batches: dict[int, list[int]] = {}  # episode -> the ids of its procedures recorded now, in their order
    for procedure in recorded:
        batches.setdefault(procedure.episode_id, []).append(procedure.pk)
    results, to_create, changed = [], [], []
    for pk in ids:
        episode = loaded[pk]
        batch = batches.get(pk, [])
        steps = [batch[:n] for n in range(1, len(batch) + 1)] or [batch]
        result = ScheduleResult()
        for step in steps:  # the procedures of the batch recorded so far (and every earlier one)
            later = set(batch) - set(step)
            known = [p for p in procedures[pk] if p.pk not in later]
            result, created = _plan_episode(episode, known, assessments[pk], invited[pk], protocols)
            for assessment in created:
                assessments[pk][(assessment.time_point, assessment.instrument)] = assessment
                to_create.append(assessment)
        result.created = sum(1 for a in assessments[pk].values() if a.pk is None)
        results.append(result)
        if result.created or result.updated or result.cancelled:
            changed.append(pk)
    bulkinsert.insert_objects(Assessment, to_create)
    bulkinsert.history_insert(  # (as saving them after their insert would have written)
        Assessment, [a for a in to_create for _ in range(getattr(a, "_changes_before_insert", 0))], update=True)
    events.records_changed_send(episode_ids=changed)
    _close_invitations_without_work(ids)
    return results


def _plan_episode(episode: Episode, procedures: list[Procedure], existing: dict[tuple[str, str], Assessment],
                  invited: set[str], protocols: list[Protocol]) -> tuple[ScheduleResult, list[Assessment]]:
    """One episode's plan from what episodes_schedule read: the assessments to create (returned, inserted by the
    caller with the others), the ones moved, reopened or cancelled (saved here), its invitations brought in line."""
    index = next((p for p in procedures if p.is_index), None)
    result = ScheduleResult()
    protocol = None
    wanted: dict[tuple[str, str], scheduling.PlannedAssessment] = {}
    reason = "no index procedure"
    if index is not None:
        protocol = scheduling.protocol_for(clinic_id=episode.patient.clinic_id, condition=episode.condition,
                                           body_site=episode.body_site, procedure_kind=index.kind,
                                           protocols=protocols)
        reason = "no protocol for this episode"
        if protocol is not None:
            specs = [scheduling.TimePointSpec.of(tp) for tp in protocol.time_points.all()]
            wanted = {(p.time_point, p.instrument): p for p in scheduling.plan(index.date, specs)}
            reason = "no longer in the protocol"
    result.protocol = protocol
    stop_day, stop_reason = _cutoff(episode, index)
    conversion = (rules.conversion_of(procedures)
                  if protocol is not None and protocol.stop_on_conversion else None)
    conversion_reason = (f"converted to surgery ({conversion.get_kind_display().lower()} on "
                         f"{format_date(conversion.date)})" if conversion is not None else "")

    def stop_reason_for(window_end: dt.date) -> str:
        # Whatever can still be answered on the day of death, withdrawal or conversion is no longer asked:
        # a time point whose window is open then (even one already due and invited) stops with the rest.
        if stop_day is not None and window_end >= stop_day:
            return stop_reason
        if conversion is not None and window_end >= conversion.date:
            return conversion_reason
        return ""

    to_create = []
    moved_time_points: dict[str, dt.date] = {}  # time point -> its new window end
    for key, planned in wanted.items():
        assessment = existing.get(key)
        keeps_dates = assessment is not None and key[0] in invited
        stop = stop_reason_for(assessment.window_end if keeps_dates else planned.window_end)
        if assessment is None:
            if stop:
                continue
            # (by their ids: the episode, its patient and the protocol were read from the database; an instance
            # given each would ask the database router about it, three times per assessment)
            to_create.append(Assessment(
                patient_id=episode.patient_id, episode_id=episode.pk, protocol_id=protocol.pk,
                time_point=planned.time_point, time_point_order=planned.order, instrument=planned.instrument,
                due_date=planned.due_date, window_start=planned.window_start, window_end=planned.window_end))
            continue
        if assessment.status == Assessment.Status.COMPLETED:
            continue
        if stop:
            if assessment.status == Assessment.Status.SCHEDULED:
                _cancel(assessment, stop)
                result.cancelled += 1
            continue
        reopen = assessment.status == Assessment.Status.CANCELLED and assessment.cancelled_reason in REPLANNABLE
        moved = (assessment.due_date, assessment.window_start, assessment.window_end) != \
            (planned.due_date, planned.window_start, planned.window_end)
        if reopen or (moved and assessment.status == Assessment.Status.SCHEDULED and key[0] not in invited):
            assessment.status = Assessment.Status.SCHEDULED
            assessment.cancelled_reason = ""
            assessment.protocol = protocol
            assessment.time_point_order = planned.order
            assessment.due_date, assessment.window_start, assessment.window_end = \
                planned.due_date, planned.window_start, planned.window_end
            _save_planned(assessment)
            result.updated += 1
            moved_time_points[key[0]] = max(planned.window_end, moved_time_points.get(key[0], planned.window_end))
        elif assessment.status == Assessment.Status.SCHEDULED and assessment.protocol_id != protocol.pk:
            assessment.protocol = protocol  # same dates, now governed by the protocol that applies
            _save_planned(assessment, ["protocol", "updated_at"])
            result.updated += 1
    for key, assessment in existing.items():
        if key not in wanted and assessment.status == Assessment.Status.SCHEDULED:
            _cancel(assessment, stop_reason if stop_day else reason)
            result.cancelled += 1
    result.created = len(to_create)
    if stop_day is not None:
        _revoke_open_invitations(episode, stop_reason)
    _replan_unsent_invitations(episode, moved_time_points)
    return result, to_create


def _cancel(assessment: Assessment, reason: str) -> None:
    assessment.status = Assessment.Status.CANCELLED
    assessment.cancelled_reason = reason[:200]
    _save_planned(assessment, ["status", "cancelled_reason", "updated_at"])


def _save_planned(assessment: Assessment, fields: list[str] | None = None) -> None:
    """Save a changed assessment; one planned by an earlier step of episodes_schedule (not inserted yet) is
    inserted as it ends up, with the history row each change would have written."""
    if assessment.pk is not None:
        assessment.save(update_fields=fields)
    else:
        assessment._changes_before_insert = getattr(assessment, "_changes_before_insert", 0) + 1  # type: ignore[attr-defined]


def _revoke_open_invitations(episode: Episode, reason: str) -> None:
    """No more emails and no usable link: the patient died or withdrew."""
    open_ = Invitation.objects.filter(episode=episode, status__in=Invitation.OPEN)
    AccessToken.objects.filter(invitation__in=open_, revoked=False).update(revoked=True)
    open_.update(status=Invitation.Status.CANCELLED, cancelled_reason=reason[:200], next_attempt_at=None,
                 claim_id="")


def _replan_unsent_invitations(episode: Episode, moved: dict[str, dt.date]) -> None:
    """An invitation never sent whose time point moved is dropped (invitations_plan makes it again, with the new
    window, once that window is open); one a worker is sending right now gets the new window's end."""
    if not moved:
        return
    unsent = Invitation.objects.filter(episode=episode, time_point__in=list(moved), sends=0)
    unsent.filter(status__in=[Invitation.Status.PENDING, Invitation.Status.FAILED,
                              Invitation.Status.EXPIRED]).delete()
    for invitation in unsent.filter(status=Invitation.Status.SENDING):
        invitation.expires_at = _window_end_of_day(moved[invitation.time_point])
        invitation.save(update_fields=["expires_at"])


def _close_invitations_without_work(episode_ids: list[int]) -> None:
    """An open invitation whose time point has nothing left to answer is cancelled (no more reminders)."""
    pending = selectors.pending_sendable(episode_id=OuterRef("episode_id"), time_point=OuterRef("time_point"))
    Invitation.objects.filter(episode_id__in=episode_ids, status__in=Invitation.OPEN).exclude(Exists(pending)).update(
        status=Invitation.Status.CANCELLED, cancelled_reason="nothing left to answer", next_attempt_at=None)


@transaction.atomic
def assessment_cancel(*, assessment: Assessment, reason: str, request=None) -> Assessment:
    if assessment.status != Assessment.Status.SCHEDULED:
        raise ValidationError(f"This assessment is {assessment.get_status_display().lower()}: nothing to cancel.")
    if not reason.strip():
        raise ValidationError({"reason": "Say why it is cancelled."})
    _cancel(assessment, reason.strip())
    _close_invitations_without_work([assessment.episode_id])
    events.records_changed_send(episode_ids=[assessment.episode_id])
    audit_record(request=request, action=AuditEvent.Action.UPDATE, obj=assessment, patient=assessment.patient,
                 detail=f"cancelled: {reason.strip()}")
    return assessment


@transaction.atomic
def time_point_cancel(*, episode: Episode, time_point: str, reason: str, request=None) -> int:
    """Cancel every questionnaire still open at one time point of an episode (e.g. the patient declined)."""
    if not reason.strip():
        raise ValidationError({"reason": "Say why it is cancelled."})
    rows = list(Assessment.objects.select_for_update().filter(episode=episode, time_point=time_point,
                                                              status=Assessment.Status.SCHEDULED))
    if not rows:
        raise ValidationError("Nothing is open at this time point.")
    for assessment in rows:
        _cancel(assessment, reason.strip())
    _close_invitations_without_work([episode.pk])
    events.records_changed_send(episode_ids=[episode.pk])
    audit_record(request=request, action=AuditEvent.Action.UPDATE, obj=episode, patient=episode.patient,
                 detail=f"cancelled {time_point} ({len(rows)} questionnaires): {reason.strip()}")
    return len(rows)


def patient_schedule(*, patient: Patient) -> None:
    episodes_schedule(episodes=list(patient.episodes.all()))
