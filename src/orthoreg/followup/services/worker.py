"""The worker: claiming due invitations, sending them, and the pass and loop that `orthoreg worker` runs.

Sending is claim-then-send: a worker takes rows with a conditional UPDATE (and SELECT ... FOR UPDATE SKIP LOCKED
where the database has it), so two workers never send the same email. Each email's link token and a send record
(SendAttempt) are committed before the email is handed to the mail backend, and the send is marked after, so a
worker killed at any step loses nothing and doubles nothing: its claim is taken again at once on the same machine
(the process is gone) or after a short lease elsewhere, and the send record is reconciled first (see _reconcile).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import close_old_connections, connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.template.loader import render_to_string
from django.utils import timezone

from orthoreg import events
from orthoreg.registry.models import Patient

from .. import failpoints, selectors
from ..models import Invitation, ReplanJob, SendAttempt, WorkerRun
from .invitations import _token_create, invitations_expire, invitations_plan, survey_url, unsubscribe_url
from .protocols import replan_run

log = logging.getLogger(__name__)

LEASE = dt.timedelta(minutes=2)
HOST = socket.gethostname()[:64]
MAX_BACKOFF = dt.timedelta(hours=6)


def _due_q(now: dt.datetime, dead_claims: list[str] | tuple = ()) -> Q:
    claimable = Q(status__in=[Invitation.Status.PENDING, Invitation.Status.FAILED, Invitation.Status.SENT],
                  next_attempt_at__lte=now)
    abandoned = Q(status=Invitation.Status.SENDING) & (Q(claimed_at__lt=now - LEASE) | Q(claim_id__in=dead_claims))
    # Never to a patient who died or withdrew, whatever state the invitation was left in.
    active = Exists(Patient.objects.filter(pk=OuterRef("patient_id"), status=Patient.Status.ACTIVE))
    return (claimable | abandoned) & Q(expires_at__gt=now) & active  # type: ignore[return-value]


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
            count = selectors.pending_sendable(codes, episode_id=invitation.episode_id, time_point=invitation.time_point).count()
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
    while not stop.is_set():
        if not connection.in_atomic_block:  # never drop a connection in the middle of a caller's transaction
            close_old_connections()
        started = time.monotonic()
        run = None
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
        try:
            events.worker_passed.send(run=run)
        except Exception:
            if once:
                raise
            log.exception("worker %s: the bookkeeping after the pass failed; trying again in %s s", name, interval)
        if once:
            return
        stop.wait(interval)


