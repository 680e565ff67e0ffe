"""Writes of the follow-up app: scheduling, invitations, sending, answering, cancelling.

Every function owns its transaction. Sending is claim-then-send: a worker takes rows with a conditional
UPDATE (and SELECT ... FOR UPDATE SKIP LOCKED where the database has it), so two workers never send the same
email. Each email's link token and a send record (SendAttempt) are committed before the email is handed to the
mail backend, and the send is marked after, so a worker killed at any step loses nothing and doubles nothing: its
claim is taken again at once on the same machine (the process is gone) or after a short lease elsewhere, and the
send record is reconciled first (see _reconcile).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import django.dispatch
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import connection, transaction
from django.db.models import Exists, F, Max, OuterRef, Q
from django.template.loader import render_to_string
from django.utils import timezone

from orthoreg.accounts.models import AuditEvent
from orthoreg.accounts.services import audit_record
from orthoreg.formats import format_date
from orthoreg.registry.coding import SURGICAL_KINDS
from orthoreg.registry.models import Episode, Patient, Procedure

from . import failpoints, scheduling, selectors
from .models import (
    AccessToken,
    Assessment,
    Invitation,
    Protocol,
    ReplanJob,
    SendAttempt,
    TimePoint,
    Unsubscription,
    WorkerRun,
    hash_token,
)

log = logging.getLogger(__name__)

# A claim not renewed for this long was left by a worker that stopped (on another machine; on the same machine a
# claim whose process is gone is taken again at once). A worker renews its claims while it sends, at least every
# LEASE / 4, and one email waits at most the mail server's timeout (30 s by default), so a live claim never lapses.
LEASE = dt.timedelta(minutes=2)
REPLAN_BATCH = 100  # at most this many episodes re-planned per transaction ...
REPLAN_BATCH_SECONDS = 0.5  # ... and no more than this long holding the write lock (SQLite: one writer at a time)
REPLAN_INLINE = 50  # a protocol save re-plans at most this many episodes itself; more are left to the worker
HOST = socket.gethostname()[:64]
MAX_BACKOFF = dt.timedelta(hours=6)
# kwargs: episode_ids. Sent after bulk writes of assessments, which send no post_save (analytics listens).
assessments_changed = django.dispatch.Signal()
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


def _conversion(episode: Episode, index: Procedure | None) -> Procedure | None:
    """The conversion to surgery (registry.selectors.conversion_for's rule)."""
    if index is None:
        return None
    return (episode.procedures.filter(kind__in=SURGICAL_KINDS, date__gt=index.date, is_index=False)
            .order_by("date", "id").first())


@transaction.atomic
def episode_schedule(*, episode: Episode) -> ScheduleResult:
    """Plan (or re-plan) the episode's assessments from its index procedure and protocol. Idempotent:
    completed assessments are never touched, already-invited time points keep their dates, nothing is duplicated,
    and what no longer applies is cancelled with the reason kept."""
    episode = Episode.objects.select_related("patient__clinic").get(pk=episode.pk)
    index = episode.procedures.filter(is_index=True).first()
    existing = {(a.time_point, a.instrument): a
                for a in Assessment.objects.select_for_update().filter(episode=episode)}
    invited = set(Invitation.objects.filter(episode=episode, sends__gt=0).values_list("time_point", flat=True))
    result = ScheduleResult()
    protocol = None
    wanted: dict[tuple[str, str], scheduling.PlannedAssessment] = {}
    reason = "no index procedure"
    if index is not None:
        protocol = scheduling.protocol_for(clinic_id=episode.patient.clinic_id, condition=episode.condition,
                                           body_site=episode.body_site, procedure_kind=index.kind)
        reason = "no protocol for this episode"
        if protocol is not None:
            specs = [scheduling.TimePointSpec.of(tp) for tp in protocol.time_points.all()]
            wanted = {(p.time_point, p.instrument): p for p in scheduling.plan(index.date, specs)}
            reason = "no longer in the protocol"
    result.protocol = protocol
    stop_day, stop_reason = _cutoff(episode, index)
    conversion = _conversion(episode, index) if protocol is not None and protocol.stop_on_conversion else None

    def stop_reason_for(window_end: dt.date) -> str:
        # Whatever can still be answered on the day of death, withdrawal or conversion is no longer asked:
        # a time point whose window is open then (even one already due and invited) stops with the rest.
        if stop_day is not None and window_end >= stop_day:
            return stop_reason
        if conversion is not None and window_end >= conversion.date:
            return f"converted to surgery ({conversion.get_kind_display().lower()} on {format_date(conversion.date)})"
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
            to_create.append(Assessment(
                patient=episode.patient, episode=episode, protocol=protocol, time_point=planned.time_point,
                time_point_order=planned.order, instrument=planned.instrument, due_date=planned.due_date,
                window_start=planned.window_start, window_end=planned.window_end))
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
            assessment.save()
            result.updated += 1
            moved_time_points[key[0]] = max(planned.window_end, moved_time_points.get(key[0], planned.window_end))
        elif assessment.status == Assessment.Status.SCHEDULED and assessment.protocol_id != protocol.pk:
            assessment.protocol = protocol  # same dates, now governed by the protocol that applies
            assessment.save(update_fields=["protocol", "updated_at"])
            result.updated += 1
    for key, assessment in existing.items():
        if key not in wanted and assessment.status == Assessment.Status.SCHEDULED:
            _cancel(assessment, stop_reason if stop_day else reason)
            result.cancelled += 1
    Assessment.objects.bulk_create(to_create)
    if to_create:
        assessments_changed.send(sender=Assessment, episode_ids=[episode.pk])
    result.created = len(to_create)
    if stop_day is not None:
        _revoke_open_invitations(episode, stop_reason)
    _replan_unsent_invitations(episode, moved_time_points)
    _close_invitations_without_work(episode)
    return result


def _cancel(assessment: Assessment, reason: str) -> None:
    assessment.status = Assessment.Status.CANCELLED
    assessment.cancelled_reason = reason[:200]
    assessment.save(update_fields=["status", "cancelled_reason", "updated_at"])


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


def _pending_sendable(codes: frozenset[str] | None = None, **filters):
    """Scheduled assessments a patient can answer from the link (licensed ones without their text are left to
    staff: they never hold an invitation open). `codes`: the sendable instruments, when the caller looked them
    up already (they are read from the definition files)."""
    return Assessment.objects.filter(status=Assessment.Status.SCHEDULED,
                                     instrument__in=selectors.sendable_codes() if codes is None else codes, **filters)


def _close_invitations_without_work(episode: Episode) -> None:
    """An open invitation whose time point has nothing left to answer is cancelled (no more reminders)."""
    pending = _pending_sendable(episode=episode, time_point=OuterRef("time_point"))
    Invitation.objects.filter(episode=episode, status__in=Invitation.OPEN).exclude(Exists(pending)).update(
        status=Invitation.Status.CANCELLED, cancelled_reason="nothing left to answer", next_attempt_at=None)


@transaction.atomic
def assessment_cancel(*, assessment: Assessment, reason: str, request=None) -> Assessment:
    if assessment.status != Assessment.Status.SCHEDULED:
        raise ValidationError(f"This assessment is {assessment.get_status_display().lower()}: nothing to cancel.")
    if not reason.strip():
        raise ValidationError({"reason": "Say why it is cancelled."})
    _cancel(assessment, reason.strip())
    _close_invitations_without_work(assessment.episode)
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
    _close_invitations_without_work(episode)
    audit_record(request=request, action=AuditEvent.Action.UPDATE, obj=episode, patient=episode.patient,
                 detail=f"cancelled {time_point} ({len(rows)} questionnaires): {reason.strip()}")
    return len(rows)


PROTOCOL_FIELDS = ("name", "condition", "body_site", "procedure_kind", "active", "stop_on_conversion",
                   "reminder_after_days", "max_reminders")
TIME_POINT_FIELDS = ("label", "offset_months", "offset_days", "window_before_days", "window_after_days",
                     "instruments", "order")


def protocol_save(*, protocol: Protocol | None, fields: dict, time_points: list[dict], clinic=None,
                  request=None, replan_inline: int | None = None) -> tuple[Protocol, ReplanJob]:
    """Save a protocol and its time points (cleaned data: `fields` of the protocol; `time_points`, each a dict of
    TIME_POINT_FIELDS with `pk` for an existing one and `delete` to remove it), all or nothing; then queue the
    re-planning of every episode it may apply to (unsent future assessments move, new ones appear, removed ones are
    cancelled with the reason; answers are never touched). The worker re-plans in bounded batches; a small job
    (at most `replan_inline` episodes, REPLAN_INLINE by default) is done here at once, batch by batch."""
    with transaction.atomic():
        if protocol is None or protocol.pk is None:
            protocol = Protocol(clinic=clinic)
        else:
            protocol = Protocol.objects.select_for_update().get(pk=protocol.pk)
        for name in PROTOCOL_FIELDS:
            if name in fields:
                setattr(protocol, name, fields[name])
        protocol.full_clean()
        protocol.save()
        existing = {tp.pk: tp for tp in protocol.time_points.all()}
        for row in time_points:  # removals first: a kept time point may take a removed one's label
            if row.get("delete") and row.get("pk") in existing:
                existing.pop(row["pk"]).delete()
        for row in time_points:
            if row.get("delete"):
                continue
            if row.get("pk") is not None and row["pk"] not in existing:
                raise ValidationError("A time point of this protocol was removed meanwhile: reload the page.")
            tp = existing.get(row.get("pk")) or TimePoint(protocol=protocol)
            for name in TIME_POINT_FIELDS:
                if name in row:
                    setattr(tp, name, list(row[name]) if name == "instruments" else row[name])
            try:
                tp.full_clean()
            except ValidationError as exc:
                raise ValidationError([f"Time point {tp.label or '(new)'}: {message}" for message in exc.messages]) \
                    from None
            tp.save()
        job = _replan_queue(protocol)
        audit_record(request=request, action=AuditEvent.Action.UPDATE, obj=protocol,
                     detail=f"protocol saved; {job.total} episodes to re-plan")
    limit = REPLAN_INLINE if replan_inline is None else replan_inline
    if job.total <= limit:
        while replan_step(job=job):
            pass
        job.refresh_from_db()
    return protocol, job


def _replan_episodes(protocol: Protocol):
    """The episodes a protocol may apply to now, and those it governed until now (its condition or site may have
    changed, or it was switched off: they move to the protocol that applies to them now, or stop)."""
    fits = Q(condition=protocol.condition, procedures__is_index=True)
    if protocol.body_site:
        fits &= Q(body_site=protocol.body_site)
    if protocol.clinic_id:
        fits &= Q(patient__clinic_id=protocol.clinic_id)
    governed = Q(pk__in=Assessment.objects.filter(protocol=protocol).values("episode_id"))
    return Episode.objects.filter(fits | governed).order_by("pk").values_list("pk", flat=True).distinct()


def _replan_queue(protocol: Protocol) -> ReplanJob:
    """A new re-planning job for the protocol; an unfinished earlier one is superseded (the new one covers it)."""
    ReplanJob.objects.filter(protocol=protocol, status=ReplanJob.Status.PENDING).update(
        status=ReplanJob.Status.SUPERSEDED, finished_at=timezone.now())
    return ReplanJob.objects.create(protocol=protocol, total=_replan_episodes(protocol).count())


def replan_step(*, job: ReplanJob | None = None, batch: int = REPLAN_BATCH,
                seconds: float | None = REPLAN_BATCH_SECONDS) -> int:
    """Re-plan the next batch of episodes of a pending job (the given one, else the oldest) in one transaction,
    moving its cursor with it: at most `batch` episodes, and none started after `seconds`. Returns how many
    episodes were re-planned (0: nothing left to do)."""
    started = time.monotonic()
    with transaction.atomic():
        jobs = ReplanJob.objects.select_for_update().filter(status=ReplanJob.Status.PENDING)
        job = (jobs.filter(pk=job.pk) if job is not None else jobs.order_by("id")).select_related("protocol").first()
        if job is None:
            return 0
        ids = list(_replan_episodes(job.protocol).filter(pk__gt=job.last_episode_id)[:batch])
        done = 0
        for episode_id in ids:
            episode_schedule(episode=Episode(pk=episode_id))
            done += 1
            if seconds is not None and time.monotonic() - started >= seconds:
                break
        job.done += done
        if done:
            job.last_episode_id = ids[done - 1]
        if len(ids) < batch and done == len(ids):
            job.status, job.finished_at = ReplanJob.Status.DONE, timezone.now()
        job.save(update_fields=["done", "last_episode_id", "status", "finished_at"])
    return done


def replan_run(*, batch: int = REPLAN_BATCH, pause: float = 0.0, progress: Callable | None = None) -> int:
    """Do every pending re-planning job, batch by batch (the worker's first step). `pause`: seconds between
    batches, so that other writers of a SQLite file get their turn."""
    total = 0
    while True:
        pending = ReplanJob.objects.filter(status=ReplanJob.Status.PENDING).order_by("id").first()
        if pending is None:
            return total
        done = replan_step(job=pending, batch=batch)
        total += done
        if progress and done:
            pending.refresh_from_db()
            progress(pending)
        if pause and done:
            time.sleep(pause)


@transaction.atomic
def protocol_copy_for_clinic(*, protocol: Protocol, clinic, request=None) -> Protocol:
    """A clinic's own editable copy of a network protocol (it takes precedence for that clinic)."""
    copy = Protocol.objects.create(
        name=f"{protocol.name} ({clinic.name})", clinic=clinic, condition=protocol.condition,
        body_site=protocol.body_site, procedure_kind=protocol.procedure_kind, active=protocol.active,
        stop_on_conversion=protocol.stop_on_conversion, reminder_after_days=protocol.reminder_after_days,
        max_reminders=protocol.max_reminders)
    for tp in protocol.time_points.all():
        tp.pk, tp.protocol = None, copy
        tp.save()
    audit_record(request=request, action=AuditEvent.Action.CREATE, obj=copy, detail=f"copied from {protocol}")
    return copy


def patient_schedule(*, patient: Patient) -> None:
    for episode in patient.episodes.all():
        episode_schedule(episode=episode)


# Re-plan on the registry's signals: an index procedure recorded or moved, a surgery recorded, a status change.
def _on_index_changed(sender, procedure, **kwargs):
    episode_schedule(episode=procedure.episode)


def _on_procedure(sender, procedure, created, **kwargs):
    if procedure.kind in SURGICAL_KINDS and not procedure.is_index:
        episode_schedule(episode=procedure.episode)


def _on_status(sender, patient, **kwargs):
    patient_schedule(patient=patient)


# ------------------------------------------------------------------------------------------ invitations

def _window_end_of_day(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min))


def invitations_plan(*, today: dt.date | None = None, batch: int = 5000) -> int:
    """Create the invitation of every (episode, time point) whose window is open and that has something to answer,
    for active patients with an email address (and registry consent where the clinic requires it)."""
    today = today or timezone.localdate()
    invited = Invitation.objects.filter(episode_id=OuterRef("episode_id"), time_point=OuterRef("time_point"))
    groups = (_pending_sendable(window_start__lte=today, window_end__gte=today, patient__status=Patient.Status.ACTIVE)
              .exclude(patient__email="")
              .exclude(patient__clinic__invitations_require_consent=True, patient__consent_registry=False)
              .exclude(Exists(Unsubscription.objects.filter(episode_id=OuterRef("episode_id"))))
              .filter(~Exists(invited))
              .values("episode_id", "patient_id", "time_point", "patient__email")
              .annotate(window_end=Max("window_end"), reminders=Max("protocol__max_reminders"),
                        reminder_days=Max("protocol__reminder_after_days"))
              .order_by("episode_id", "time_point"))
    # Read a batch, close the read, then write: never write while a read cursor is open (on SQLite a
    # writer that still holds an older snapshot is refused at once when another process wrote meanwhile).
    created = 0
    while True:
        page = list(groups[:batch])
        if not page:
            return created
        added = _insert([
            Invitation(patient_id=g["patient_id"], episode_id=g["episode_id"], time_point=g["time_point"],
                       email=g["patient__email"], expires_at=_window_end_of_day(g["window_end"]),
                       max_reminders=g["reminders"] if g["reminders"] is not None else 2,
                       reminder_after_days=g["reminder_days"] or 4)
            for g in page])
        created += added
        if len(page) < batch:
            return created


def _insert(rows: list[Invitation]) -> int:
    """Insert what no other worker inserted meanwhile; return how many rows are new."""
    if not rows:
        return 0
    episode_ids = {r.episode_id for r in rows}
    with transaction.atomic():
        before = Invitation.objects.filter(episode_id__in=episode_ids).count()
        Invitation.objects.bulk_create(rows, ignore_conflicts=True)
        return Invitation.objects.filter(episode_id__in=episode_ids).count() - before


def _due_q(now: dt.datetime, dead_claims: list[str] | tuple = ()) -> Q:
    claimable = Q(status__in=[Invitation.Status.PENDING, Invitation.Status.FAILED, Invitation.Status.SENT],
                  next_attempt_at__lte=now)
    abandoned = Q(status=Invitation.Status.SENDING) & (Q(claimed_at__lt=now - LEASE) | Q(claim_id__in=dead_claims))
    # Never to a patient who died or withdrew, whatever state the invitation was left in.
    active = Exists(Patient.objects.filter(pk=OuterRef("patient_id"), status=Patient.Status.ACTIVE))
    return (claimable | abandoned) & Q(expires_at__gt=now) & active


def _process_exists(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _dead_claims() -> list[str]:
    """Claims held by processes of this machine that no longer exist (a worker killed mid-batch)."""
    held = (Invitation.objects.filter(status=Invitation.Status.SENDING, claim_host=HOST, claim_pid__isnull=False)
            .values_list("claim_id", "claim_pid").distinct())
    return [claim for claim, pid in held if not _process_exists(pid)]


def invitations_claim(*, limit: int, worker: str = "", now: dt.datetime | None = None) -> list[Invitation]:
    """Take up to `limit` due invitations for this worker. Two workers never get the same row."""
    now = now or timezone.now()
    claim = f"{worker[:20]}-{uuid.uuid4().hex}"[:40]
    dead = _dead_claims()
    with transaction.atomic():
        qs = Invitation.objects.filter(_due_q(now, dead)).order_by("next_attempt_at", "id")
        if connection.features.has_select_for_update_skip_locked:
            qs = qs.select_for_update(skip_locked=True)
        ids = list(qs.values_list("id", flat=True)[:limit])
        if not ids:
            return []
        # The conditional update is what makes the claim safe, with or without row locks.
        Invitation.objects.filter(id__in=ids).filter(_due_q(now, dead)).update(
            status=Invitation.Status.SENDING, claim_id=claim, claimed_at=now, claim_host=HOST,
            claim_pid=os.getpid(), attempts=F("attempts") + 1)
    return list(Invitation.objects.filter(claim_id=claim, status=Invitation.Status.SENDING)
                .select_related("patient__clinic", "episode"))


def _renew(claim_id: str) -> None:
    """Keep this worker's claims from lapsing while it is still sending them."""
    Invitation.objects.filter(claim_id=claim_id, status=Invitation.Status.SENDING).update(claimed_at=timezone.now())


def token_issue(*, invitation: Invitation) -> str:
    """A fresh random link secret (256 bits) for one email; only its hash is stored."""
    return _token_create(invitation)[0]


def _token_create(invitation: Invitation) -> tuple[str, AccessToken]:
    token = secrets.token_urlsafe(32)
    return token, AccessToken.objects.create(invitation=invitation, token_hash=hash_token(token))


def survey_url(token: str) -> str:
    from orthoreg import baseurl

    return f"{baseurl.base_url()}/s/{token}/"


def unsubscribe_url(token: str) -> str:
    return f"{survey_url(token)}unsubscribe/"


def _message(invitation: Invitation, token: str, count: int, message_id: str) -> EmailMultiAlternatives:
    patient = invitation.patient
    context = {"patient": patient, "clinic": patient.clinic, "invitation": invitation, "url": survey_url(token),
               "unsubscribe_url": unsubscribe_url(token),
               "reminder": invitation.sends > 0, "count": count, "episode": invitation.episode,
               "expires": timezone.localtime(invitation.expires_at) - dt.timedelta(seconds=1)}
    # One line whatever the clinic's name holds: a line break in a header would fail every send.
    subject = " ".join(render_to_string("followup/email_subject.txt", context).split())
    body = render_to_string("followup/email_body.txt", context)
    return EmailMultiAlternatives(subject=subject, body=body, to=[invitation.email],
                                  headers={"X-Orthoreg-Invitation": str(invitation.pk), "Message-ID": message_id,
                                           # RFC 2369 and RFC 8058: the mail program's own "unsubscribe" button
                                           "List-Unsubscribe": f"<{unsubscribe_url(token)}>",
                                           "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})


def _backoff(attempts: int) -> dt.timedelta:
    return min(MAX_BACKOFF, dt.timedelta(minutes=2 ** max(0, attempts - 1)))


@dataclass
class SendResult:
    sent: int = 0
    reminders: int = 0
    failures: int = 0


POSSIBLY_SENT_NOTE = ("The worker stopped while handing an email to the mail server: it may have been sent, so it "
                      "was not sent again; its link works and the next reminder follows as planned.")


def _reconcile(invitation: Invitation, backend) -> str:
    """Settle the sends a stopped worker left unfinished for this invitation, before anything is sent again.
    Returns "sent" (an email did leave: it counts, nothing is resent), "possibly" (it cannot be known: a mail
    server cannot be asked whether it took a message, so it counts as sent rather than risk a second email), or
    "" (nothing left the building: send as usual)."""
    outcome = ""
    was_sent = getattr(backend, "was_sent", None)
    for attempt in SendAttempt.objects.filter(invitation=invitation, status=SendAttempt.Status.STARTED):
        if was_sent is not None:
            status = SendAttempt.Status.SENT if was_sent(attempt.message_id) else SendAttempt.Status.NOT_SENT
        else:
            status = SendAttempt.Status.POSSIBLY_SENT
        SendAttempt.objects.filter(pk=attempt.pk, status=SendAttempt.Status.STARTED).update(
            status=status, finished_at=timezone.now(), error="reconciled after the worker stopped")
        if status == SendAttempt.Status.SENT:
            outcome = "sent"
        elif status == SendAttempt.Status.POSSIBLY_SENT and outcome != "sent":
            outcome = "possibly"
    return outcome


def invitations_send(*, invitations: list[Invitation], now: dt.datetime | None = None) -> SendResult:
    """Send the claimed invitations one by one; record success, or the error and when to retry.

    Per email: the link's token and a SendAttempt are committed first, then the email is handed over, then both
    are marked sent. A worker killed between any two steps leaves a state the next claim reconciles."""
    result = SendResult()
    backend = get_connection()
    persistent = hasattr(backend, "connection")  # SMTP: keep one connection open for the batch
    if persistent:
        try:
            backend.open()
        except Exception as exc:  # the server is down: every claim is released with its error
            for invitation in invitations:
                _failed(invitation, exc)
                result.failures += 1
            return result
    codes = selectors.sendable_codes()  # once for the batch, not once per email
    unfinished = set(SendAttempt.objects.filter(invitation__in=invitations, status=SendAttempt.Status.STARTED)
                     .values_list("invitation_id", flat=True))
    renewed = time.monotonic()
    try:
        for invitation in invitations:
            if time.monotonic() - renewed > LEASE.total_seconds() / 4:
                _renew(invitation.claim_id)
                renewed = time.monotonic()
            reminder = invitation.sends > 0
            if invitation.pk in unfinished:
                outcome = _reconcile(invitation, backend)
                if outcome:
                    _sent(invitation, now or timezone.now(), note=POSSIBLY_SENT_NOTE if outcome == "possibly" else "")
                    result.reminders += reminder
                    result.sent += not reminder
                    continue
            count = _pending_sendable(codes, episode_id=invitation.episode_id, time_point=invitation.time_point).count()
            if not count:  # answered, cancelled or only staff-entered instruments left since it was planned
                _nothing_to_send(invitation)
                continue
            attempt = None
            try:
                with transaction.atomic():
                    # Still ours? (renewing it): a claim taken over after its lease is left to its new holder.
                    if not Invitation.objects.filter(pk=invitation.pk, claim_id=invitation.claim_id,
                                                     status=Invitation.Status.SENDING).update(
                            claimed_at=timezone.now()):
                        log.warning("invitation %s: claim lost to another worker; not sent here", invitation.pk)
                        continue
                    token, row = _token_create(invitation)
                    attempt = SendAttempt.objects.create(
                        invitation=invitation, token=row, claim_id=invitation.claim_id,
                        message_id=f"<{uuid.uuid4().hex}.{invitation.pk}@orthoreg.invalid>")
                    failpoints.reached(failpoints.BEFORE_TOKEN_COMMIT)
                failpoints.reached(failpoints.AFTER_TOKEN_COMMIT)
                # SMTP reuses its open connection; a file backend writes one file per email.
                (backend if persistent else get_connection()).send_messages(
                    [_message(invitation, token, count, attempt.message_id)])
                failpoints.reached(failpoints.AFTER_SEND)
            except Exception as exc:
                log.warning("invitation %s: send failed: %s", invitation.pk, exc)
                _failed(invitation, exc, attempt)
                result.failures += 1
                continue
            _sent(invitation, now or timezone.now(), attempt=attempt)
            if reminder:
                result.reminders += 1
            else:
                result.sent += 1
    finally:
        if persistent:
            backend.close()
    return result


@transaction.atomic
def _sent(invitation: Invitation, now: dt.datetime, attempt: SendAttempt | None = None, note: str = "") -> None:
    sends = invitation.sends + 1
    more = sends <= invitation.max_reminders
    if attempt is not None:  # it left, whoever holds the claim now
        SendAttempt.objects.filter(pk=attempt.pk).update(status=SendAttempt.Status.SENT, finished_at=timezone.now())
    Invitation.objects.filter(pk=invitation.pk, claim_id=invitation.claim_id,
                              status=Invitation.Status.SENDING).update(
        status=Invitation.Status.SENT, sends=sends, sent_at=now, claim_id="", last_error=note[:500],
        next_attempt_at=now + dt.timedelta(days=invitation.reminder_after_days) if more else None)


def _nothing_to_send(invitation: Invitation) -> None:
    Invitation.objects.filter(pk=invitation.pk, claim_id=invitation.claim_id,
                              status=Invitation.Status.SENDING).update(
        status=Invitation.Status.CANCELLED, claim_id="", cancelled_reason="nothing left to answer",
        next_attempt_at=None)


@transaction.atomic
def _failed(invitation: Invitation, exc: Exception, attempt: SendAttempt | None = None) -> None:
    error = f"{type(exc).__name__}: {exc}"[:500]
    if attempt is not None and attempt.pk is not None:
        SendAttempt.objects.filter(pk=attempt.pk, status=SendAttempt.Status.STARTED).update(
            status=SendAttempt.Status.FAILED, finished_at=timezone.now(), error=error)
    Invitation.objects.filter(pk=invitation.pk, claim_id=invitation.claim_id,
                              status=Invitation.Status.SENDING).update(
        status=Invitation.Status.FAILED, claim_id="", last_error=error,
        next_attempt_at=timezone.now() + _backoff(invitation.attempts))


def invitations_expire(*, now: dt.datetime | None = None) -> int:
    now = now or timezone.now()
    return Invitation.objects.filter(status__in=Invitation.OPEN, expires_at__lte=now).update(
        status=Invitation.Status.EXPIRED, next_attempt_at=None, claim_id="")


@transaction.atomic
def invitation_resend(*, invitation: Invitation, request=None) -> Invitation:
    """Send again now (a new link); counts as a reminder. Only while the window is open."""
    if invitation.status not in Invitation.OPEN or invitation.expires_at <= timezone.now():
        raise ValidationError(f"This invitation is {invitation.get_status_display().lower()}: it cannot be resent.")
    Invitation.objects.filter(pk=invitation.pk).update(
        status=Invitation.Status.PENDING if invitation.sends == 0 else Invitation.Status.SENT,
        next_attempt_at=timezone.now(), max_reminders=F("max_reminders") + (1 if invitation.sends else 0),
        claim_id="")
    audit_record(request=request, action=AuditEvent.Action.UPDATE, obj=invitation, patient=invitation.patient,
                 detail="resend requested")
    invitation.refresh_from_db()
    return invitation


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, reason: str, request=None) -> Invitation:
    """Stop an invitation: no more reminders, and its links no longer open the questionnaire."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why the invitation is revoked."})
    if not Invitation.objects.filter(pk=invitation.pk, status__in=Invitation.OPEN).exists():
        invitation.refresh_from_db()
        raise ValidationError(f"This invitation is {invitation.get_status_display().lower()}: nothing to revoke.")
    Invitation.objects.filter(pk=invitation.pk).update(status=Invitation.Status.CANCELLED, next_attempt_at=None,
                                                       cancelled_reason=reason[:200], claim_id="")
    invitation.tokens.update(revoked=True)
    audit_record(request=request, action=AuditEvent.Action.UPDATE, obj=invitation, patient=invitation.patient,
                 detail=f"revoked: {reason}")
    invitation.refresh_from_db()
    return invitation


# ------------------------------------------------------------------------------------------ the worker pass

def worker_pass(*, worker: str = "worker", batch: int = 500, now: dt.datetime | None = None,
                progress=None, interval: float | None = None, replan_pause: float = 0.0,
                replan_progress: Callable | None = None) -> WorkerRun:
    """One pass: re-plan after protocol changes, expire, plan invitations, then claim and send in batches until
    nothing is due. `interval`: seconds until this worker's next pass (recorded, so pages can say honestly when
    something will go out; None for a single pass)."""
    run = WorkerRun.objects.create(worker=worker[:80], interval=interval)
    try:
        run.replanned = replan_run(pause=replan_pause, progress=replan_progress)
        run.expired = invitations_expire(now=now)
        run.invitations_created = invitations_plan()
        while True:
            claimed = invitations_claim(limit=batch, worker=worker, now=now)
            if not claimed:
                break
            result = invitations_send(invitations=claimed, now=now)
            run.sent += result.sent
            run.reminders += result.reminders
            run.failures += result.failures
            if progress:
                progress(len(claimed))
            if result.failures == len(claimed):
                break  # everything fails (server down): stop this pass; the claims retry with backoff
    except Exception as exc:
        run.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        run.finished_at = timezone.now()
        run.save()
    return run


def worker_loop(*, name: str, interval: float, batch: int = 500, stop: threading.Event,
                report: Callable[[WorkerRun, float], None] | None = None, once: bool = False,
                replan_progress: Callable[[ReplanJob], None] | None = None) -> None:
    """The worker: a pass, then wait `interval` seconds (or until `stop` is set), again and again. A failed pass is
    logged (and recorded on its WorkerRun) and the loop goes on. Used by `orthoreg worker` and by the worker that
    `orthoreg serve --with-worker` (the demo) runs beside the server."""
    from django.db import close_old_connections

    while not stop.is_set():
        if not connection.in_atomic_block:  # never drop a connection in the middle of a caller's transaction
            close_old_connections()
        started = time.monotonic()
        try:
            run = worker_pass(worker=name, batch=batch, interval=None if once else interval, replan_pause=0.1,
                              replan_progress=replan_progress)
        except Exception:
            if once:
                raise
            log.exception("worker %s: the pass failed; trying again in %s s", name, interval)
        else:
            if report:
                report(run, time.monotonic() - started)
        if once:
            return
        stop.wait(interval)


# ------------------------------------------------------------------------------------------ answering

class LinkError(Exception):
    """Why a survey link cannot be used, in words for the patient."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


def invitation_for_token(token: str) -> Invitation:
    if not token or len(token) > 100:
        raise LinkError("unknown", "This link is not valid.")
    row = (AccessToken.objects.select_related("invitation__patient__clinic", "invitation__episode")
           .filter(token_hash=hash_token(token)).first())
    if row is None:
        raise LinkError("unknown", "This link is not valid.")
    invitation = row.invitation
    if invitation.status == Invitation.Status.COMPLETED:
        raise LinkError("used", "This questionnaire has already been answered. Thank you!")
    if row.revoked or invitation.status == Invitation.Status.CANCELLED:
        raise LinkError("revoked", "This link is no longer valid.")
    if invitation.status == Invitation.Status.EXPIRED or invitation.expires_at <= timezone.now():
        raise LinkError("expired", "This link has expired: the time to answer this questionnaire has passed.")
    return invitation


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


def open_assessments(invitation: Invitation) -> list[Assessment]:
    """What the patient still has to answer from the link: a broken, removed or licensed-but-not-installed
    definition is never sent (staff see the assessment on the worklist and enter it)."""
    return list(_pending_sendable(episode_id=invitation.episode_id, time_point=invitation.time_point).order_by("id"))


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
    from orthoreg.instruments.services import response_record

    locked = Assessment.objects.select_for_update().get(pk=assessment.pk)
    if locked.status != Assessment.Status.SCHEDULED:
        raise ValidationError(f"This questionnaire is {locked.get_status_display().lower()} already.",
                              code=NOT_PENDING)
    # Recording the response completes this assessment (response_link, on instruments' response_recorded).
    response = response_record(patient=locked.patient, episode=locked.episode, instrument=locked.instrument,
                               answers=answers, time_point=locked.time_point, completed_at=completed_at,
                               source=source, entered_by=entered_by, request=request)
    locked.refresh_from_db()
    if locked.response_id != response.pk:
        _complete(locked, response)
    return locked


def _complete(assessment: Assessment, response) -> None:
    """Mark the assessment answered by the response; close its invitation when nothing of the time point is left
    for the patient to answer."""
    assessment.status = Assessment.Status.COMPLETED
    assessment.completed_at = response.completed_at
    assessment.response = response
    assessment.draft = {}
    assessment.save(update_fields=["status", "completed_at", "response", "draft", "updated_at"])
    _complete_answered_invitations(episode_id=assessment.episode_id, time_point=assessment.time_point)


def _complete_answered_invitations(**filters) -> None:
    """Open invitations whose time point was answered and has nothing left for the patient to answer are
    answered: no reminders."""
    same = {"episode_id": OuterRef("episode_id"), "time_point": OuterRef("time_point")}
    pending = _pending_sendable(**same)
    answered = Assessment.objects.filter(status=Assessment.Status.COMPLETED, **same)
    Invitation.objects.filter(Exists(answered), status__in=Invitation.OPEN, **filters).exclude(Exists(pending)).update(
        status=Invitation.Status.COMPLETED, completed_at=timezone.now(), next_attempt_at=None)


@transaction.atomic
def response_link(*, response) -> Assessment | None:
    """Complete the scheduled assessment of the response's episode, time point and instrument, however the response
    was recorded (the patient's link, staff entry from the worklist or from the patient page)."""
    if response.episode_id is None or not response.time_point:
        return None
    assessment = (Assessment.objects.select_for_update()
                  .filter(episode_id=response.episode_id, time_point=response.time_point,
                          instrument=response.instrument, status=Assessment.Status.SCHEDULED).first())
    if assessment is None:
        return None
    _complete(assessment, response)
    return assessment


def _on_response_recorded(sender, response, **kwargs):
    response_link(response=response)


def link_responses(*, episode_ids) -> int:
    """Mark scheduled assessments completed where a valid response for the same episode, time point and instrument
    exists (responses imported or entered before the schedule existed)."""
    from orthoreg.instruments.models import Response

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
        assessments_changed.send(sender=Assessment, episode_ids=changed)
    count += len(updates)
    return count
