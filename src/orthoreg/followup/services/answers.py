"""Answering: a patient's or staff member's response completes its scheduled assessment and, when nothing of the
time point is left, its invitation; drafts; the patient's unsubscribe."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Exists, Field, OuterRef
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast
from django.utils import timezone

from orthoreg import bulkinsert, events
from orthoreg.accounts.models import AuditEvent
from orthoreg.accounts.services import audit_record
from orthoreg.instruments.models import Response
from orthoreg.instruments.services import response_record

from .. import selectors
from ..models import Assessment, Invitation, Unsubscription
from ..selectors import LinkError
from .schedule import _revoke_open_invitations

# ------------------------------------------------------------------------------------------ answering

@transaction.atomic
def episode_unsubscribe(*, token: str, request=None) -> tuple[Unsubscription, bool]:
    """The patient's "no more emails" from the link in an email (whatever became of that email's questionnaire):
    no invitation for the episode again, its open ones cancelled (no reminders, links closed), audited once.
    Returns the record and whether it is new. Raises LinkError for a link that never existed."""
    invitation = selectors.invitation_of_token(token)
    if invitation is None:
        raise LinkError("unknown", "This link is not valid.")
    record, created = Unsubscription.objects.get_or_create(
        episode=invitation.episode, defaults={"patient": invitation.patient, "invitation": invitation})
    if created:
        _revoke_open_invitations(invitation.episode, "the patient unsubscribed")
        audit_record(request=request, action=AuditEvent.Action.UPDATE, obj=record, patient=invitation.patient,
                     detail=f"patient unsubscribed from follow-up emails for episode {invitation.episode_id} "
                            f"(link of the {invitation.time_point} invitation)")
    return record, created



def assessment_save_draft(*, assessment: Assessment, answers: dict) -> Assessment:
    Assessment.objects.filter(pk=assessment.pk, status=Assessment.Status.SCHEDULED).update(draft=answers)
    assessment.draft = answers
    return assessment


NOT_PENDING = "not_pending"  # the ValidationError code of an answer to a questionnaire no longer open


@transaction.atomic
def assessment_answer(*, assessment: Assessment, answers: list, source: str, completed_at=None, entered_by=None,
                      request=None):
    """Record the response of one assessment (validated and scored by the instruments app), mark it completed,
    and close the invitation when nothing of its time point is left. Raises ValidationError; stores nothing then."""
    # its patient and episode in the same query (the response needs both); only the assessment's row is locked
    locked = (Assessment.objects.select_related("patient", "episode").select_for_update(of=("self",))
              .get(pk=assessment.pk))
    if locked.status != Assessment.Status.SCHEDULED:
        raise ValidationError(f"This questionnaire is {locked.get_status_display().lower()} already.",
                              code=NOT_PENDING)
    # Recording the response completes this assessment: instruments sends response_recorded, and followup's
    # handler (response_link) completes the assessment of the same episode, time point and instrument, the one
    # path for every way a response arrives (orthoreg/events.py).
    response_record(patient=locked.patient, episode=locked.episode, instrument=locked.instrument,
                    answers=answers, time_point=locked.time_point, completed_at=completed_at,
                    source=source, entered_by=entered_by, request=request)
    locked.refresh_from_db()
    return locked


def answered_invitations(**filters):
    """Open invitations whose time point was answered and has nothing left for the patient to answer (read by
    their episodes: the index (episode, status))."""
    same = {"episode_id": OuterRef("episode_id"), "time_point": OuterRef("time_point")}
    pending = selectors.pending_sendable(**same)  # type: ignore[arg-type]
    answered = Assessment.objects.filter(status=Assessment.Status.COMPLETED, **same)
    return Invitation.objects.filter(Exists(answered), status__in=Invitation.OPEN, **filters).exclude(Exists(pending))


def open_assessments(episode_ids):
    """The scheduled assessments of these episodes, locked, read by episode (the index (episode, status)), never
    every scheduled assessment of the registry."""
    return (Assessment.objects.select_for_update()
            .filter(episode_id__in=episode_ids, status=Assessment.Status.SCHEDULED).order_by("pk"))


def _complete_answered_invitations(**filters) -> None:
    """Answered invitations (answered_invitations) are completed: no reminders."""
    answered_invitations(**filters).update(
        status=Invitation.Status.COMPLETED, completed_at=timezone.now(), next_attempt_at=None)


def response_link(*, response) -> Assessment | None:
    """Complete the scheduled assessment of the response's episode, time point and instrument, however the response
    was recorded (the patient's link, staff entry from the worklist or from the patient page)."""
    return responses_link(responses=[response])[0]


@transaction.atomic
def responses_link(*, responses, announce: bool = True) -> list[Assessment | None]:
    """response_link for many responses at once (the bulk twin: one query for their assessments, one update, one
    pass over the invitations). Returns, per response, the assessment it completed (or None).

    `announce=False`: send no records_changed, because the caller's own records_changed names these episodes in
    the same transaction (the response_recorded handler: responses_store sends it right after)."""
    keyed = [(r.episode_id, r.time_point, r.instrument) if r.episode_id is not None and r.time_point else None
             for r in responses]
    episode_ids = sorted({k[0] for k in keyed if k is not None})
    if not episode_ids:
        return [None] * len(responses)
    open_ones: dict[tuple, list[Assessment]] = {}
    for assessment in open_assessments(episode_ids):
        open_ones.setdefault((assessment.episode_id, assessment.time_point, assessment.instrument),
                             []).append(assessment)
    completed: list[Assessment | None] = []
    now = timezone.now()
    for response, key in zip(responses, keyed):
        candidates = open_ones.get(key) if key is not None else None
        if not candidates:
            completed.append(None)
            continue
        assessment = candidates.pop(0)  # the first one (as .first() did), once
        assessment.status = Assessment.Status.COMPLETED
        assessment.completed_at = response.completed_at
        assessment.response = response
        assessment.draft = {}
        assessment.updated_at = now
        completed.append(assessment)
    done = [a for a in completed if a is not None]
    if done:
        _complete_all(done, now)
        changed = sorted({a.episode_id for a in done})
        _complete_answered_invitations(episode_id__in=changed)
        if announce:
            events.records_changed_send(episode_ids=changed)
    return completed


def _complete_all(done: list[Assessment], now) -> None:
    """Store these completed assessments (and their history rows): one UPDATE per 500 of them, their response
    and completion time set per row (a CASE on the id each), the rest plain. The CASEs are written out (Django's
    bulk_update spent most of an import's time building its CASE expressions, one When per row and field), cast
    as bulk_update casts them where the database needs it (PostgreSQL). One assessment (a patient's or staff's
    submission) is one UPDATE too."""
    for start in range(0, len(done), 500):
        batch = done[start:start + 500]
        Assessment.objects.filter(pk__in=[a.pk for a in batch]).update(
            response=_per_row(batch, "response", [a.response_id for a in batch]),
            completed_at=_per_row(batch, "completed_at", [a.completed_at for a in batch]),
            status=Assessment.Status.COMPLETED, draft={}, updated_at=now)
    bulkinsert.history_insert(Assessment, done, update=True)


def _per_row(rows: list[Assessment], name: str, values: list) -> Any:
    """`CASE id WHEN <row's id> THEN <its value> ... END` for an UPDATE of these rows' field `name`."""
    field = Assessment._meta.get_field(name)
    assert isinstance(field, Field)
    pk = connection.ops.quote_name(Assessment._meta.pk.column)
    sql = f"CASE {pk} {' '.join(['WHEN %s THEN %s'] * len(rows))} END"
    params: list = []
    for row, value in zip(rows, bulkinsert.prepare_values(Assessment, field.attname, values, using=connection.alias)):
        params += [row.pk, value]
    expression = RawSQL(sql, params, output_field=field)
    if connection.features.requires_casted_case_in_updates:
        return Cast(expression, output_field=field)
    return expression


def link_responses(*, episode_ids) -> int:
    """Mark scheduled assessments completed where a valid response for the same episode, time point and instrument
    exists (responses imported or entered before the schedule existed)."""
    count = 0
    responses = (Response.objects.filter(episode_id__in=episode_ids, valid=True)
                 .values_list("id", "episode_id", "time_point", "instrument", "completed_at"))
    by_key = {(e, t, i): (rid, at) for rid, e, t, i, at in responses}
    pending = Assessment.objects.filter(episode_id__in=episode_ids, status=Assessment.Status.SCHEDULED)
    updates = []
    for a in pending:
        hit = by_key.get((a.episode_id, a.time_point, a.instrument))
        if hit:
            a.status, a.response_id, a.completed_at = Assessment.Status.COMPLETED, hit[0], hit[1]
            a.updated_at = timezone.now()
            updates.append(a)
    Assessment.objects.bulk_update(updates, ["status", "response", "completed_at", "updated_at"], batch_size=2000)
    if updates:
        changed = sorted({a.episode_id for a in updates})
        _complete_answered_invitations(episode_id__in=changed)
        events.records_changed_send(episode_ids=changed)
    count += len(updates)
    return count
