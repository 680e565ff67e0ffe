"""Saving and copying follow-up protocols, and re-planning the episodes a changed protocol applies to, in bounded
batches (inline for a small job, by the worker for a large one)."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from orthoreg.accounts.models import AuditEvent
from orthoreg.accounts.services import audit_record
from orthoreg.registry.models import Episode

from ..models import Assessment, Protocol, ReplanJob, TimePoint
from . import schedule

REPLAN_BATCH = 100  # at most this many episodes re-planned per transaction ...
REPLAN_BATCH_SECONDS = 0.5  # ... and no more than this long holding the write lock (SQLite: one writer at a time)
REPLAN_INLINE = 50  # a protocol save re-plans at most this many episodes itself; more are left to the worker


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
            schedule.episode_schedule(episode=Episode(pk=episode_id))
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

