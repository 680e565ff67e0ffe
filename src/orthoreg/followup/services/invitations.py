"""Invitations: planning one per open (episode, time point), their link tokens and addresses, expiry, and the
coordinator's resend and revoke."""

from __future__ import annotations

import datetime as dt
import secrets

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, F, Max, OuterRef
from django.utils import timezone

from orthoreg import baseurl
from orthoreg.accounts.models import AuditEvent
from orthoreg.accounts.services import audit_record

from .. import rules, selectors
from ..models import AccessToken, Invitation, hash_token

# ------------------------------------------------------------------------------------------ invitations

def _window_end_of_day(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min))


def invitations_plan(*, today: dt.date | None = None, batch: int = 5000) -> int:
    """Create the invitation of every (episode, time point) whose window is open and that has something to answer,
    for active patients with an email address (and registry consent where the clinic requires it)."""
    today = today or timezone.localdate()
    invited = Invitation.objects.filter(episode_id=OuterRef("episode_id"), time_point=OuterRef("time_point"))
    groups = (rules.invitable(selectors.pending_sendable(), today=today)  # followup/rules.py: who is invited
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


def token_issue(*, invitation: Invitation) -> str:
    """A fresh random link secret (256 bits) for one email; only its hash is stored."""
    return _token_create(invitation)[0]


def _token_create(invitation: Invitation) -> tuple[str, AccessToken]:
    token = secrets.token_urlsafe(32)
    return token, AccessToken.objects.create(invitation=invitation, token_hash=hash_token(token))


def survey_url(token: str) -> str:
    return f"{baseurl.base_url()}/s/{token}/"


def unsubscribe_url(token: str) -> str:
    return f"{survey_url(token)}unsubscribe/"


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

