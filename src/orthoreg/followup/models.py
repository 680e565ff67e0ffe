"""Protocols, scheduled assessments, invitations and their single-use links.

A protocol says which instruments are due at which time points after the index procedure. Recording an index
procedure schedules one Assessment per (time point, instrument). When a time point's window opens, one
Invitation per (episode, time point) is created; the worker claims it atomically, emails a link, and sends
reminders until every assessment of the time point is answered, the window closes, or the limit is reached.
"""

from __future__ import annotations

import hashlib

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

from orthoreg.formats import format_date
from orthoreg.instruments.definitions import UnknownInstrument, get_definition
from orthoreg.registry.coding import BodySite, Condition, ProcedureKind


class Protocol(models.Model):
    """Which instruments at which time points, for a condition (optionally a site, a procedure kind, a clinic)."""

    name = models.CharField(max_length=120)
    clinic = models.ForeignKey("registry.Clinic", null=True, blank=True, on_delete=models.CASCADE,
                               related_name="protocols", help_text="Empty: the default for every clinic")
    condition = models.CharField(max_length=30, choices=Condition.choices)
    body_site = models.CharField(max_length=20, choices=BodySite.choices, blank=True,
                                 help_text="Empty: any site of this condition")
    procedure_kind = models.CharField(max_length=24, choices=ProcedureKind.choices, blank=True,
                                      help_text="Empty: any index procedure")
    active = models.BooleanField(default=True)
    stop_on_conversion = models.BooleanField(
        default=True, help_text="Cancel pending assessments when the episode converts to surgery")
    reminder_after_days = models.PositiveSmallIntegerField(default=4, validators=[MinValueValidator(1),
                                                                                  MaxValueValidator(60)])
    max_reminders = models.PositiveSmallIntegerField(default=2, validators=[MaxValueValidator(10)])
    history = HistoricalRecords()

    class Meta:
        ordering = ["condition", "body_site", "name"]

    def __str__(self) -> str:
        return self.name

    def specificity(self) -> int:
        return (4 if self.clinic_id else 0) + (2 if self.procedure_kind else 0) + (1 if self.body_site else 0)


class TimePoint(models.Model):
    """A time point of a protocol: offset from the index procedure (calendar months + days) and its window."""

    protocol = models.ForeignKey(Protocol, on_delete=models.CASCADE, related_name="time_points")
    label = models.CharField(max_length=16, help_text="e.g. baseline, 6w, 3m, 6m, 12m, 24m")
    offset_months = models.SmallIntegerField(default=0)
    offset_days = models.SmallIntegerField(default=0)
    window_before_days = models.PositiveSmallIntegerField(default=7)
    window_after_days = models.PositiveSmallIntegerField(default=21)
    instruments = models.JSONField(default=list, help_text="Instrument codes, e.g. [\"nprs\", \"faam-adl\"]")
    order = models.PositiveSmallIntegerField(default=0)
    history = HistoricalRecords()

    class Meta:
        ordering = ["protocol", "order", "offset_months", "offset_days"]
        constraints = [models.UniqueConstraint(fields=["protocol", "label"], name="time_point_label_unique")]

    def __str__(self) -> str:
        return self.label

    def clean(self) -> None:
        errors = {}
        if not isinstance(self.instruments, list) or not self.instruments:
            errors["instruments"] = "List at least one instrument code."
        else:
            for code in self.instruments:
                try:
                    get_definition(code)
                except UnknownInstrument:
                    errors["instruments"] = f"Unknown instrument {code!r}."
        if errors:
            raise ValidationError(errors)


class Assessment(models.Model):
    """One instrument due at one time point of one episode."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"

    patient_path = "patient"

    patient = models.ForeignKey("registry.Patient", on_delete=models.CASCADE, related_name="assessments")
    episode = models.ForeignKey("registry.Episode", on_delete=models.CASCADE, related_name="assessments")
    protocol = models.ForeignKey(Protocol, null=True, on_delete=models.SET_NULL, related_name="+")
    time_point = models.CharField(max_length=16)
    time_point_order = models.PositiveSmallIntegerField(default=0)
    instrument = models.CharField(max_length=40)
    due_date = models.DateField(db_index=True)
    window_start = models.DateField()
    window_end = models.DateField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SCHEDULED)
    cancelled_reason = models.CharField(max_length=200, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    response = models.OneToOneField("instruments.Response", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="assessment")
    draft = models.JSONField(default=dict, blank=True, help_text="Answers saved so far (save and continue later)")
    updated_at = models.DateTimeField(auto_now=True, help_text="Last change (the API's updated_since)")
    history = HistoricalRecords()

    class Meta:
        ordering = ["episode", "due_date", "time_point_order", "instrument"]
        constraints = [models.UniqueConstraint(fields=["episode", "time_point", "instrument"],
                                               name="one_assessment_per_episode_time_point_instrument")]
        indexes = [models.Index(fields=["status", "window_start"]), models.Index(fields=["status", "due_date"]),
                   # an episode's open ones (a response completes one): by episode, never every scheduled one
                   models.Index(fields=["episode", "status"], name="followup_assessment_episode")]

    def __str__(self) -> str:
        return f"{self.instrument} at {self.time_point} (due {format_date(self.due_date)})"

    @property
    def display_status(self) -> str:
        """scheduled / due / overdue / missed / completed / cancelled, as of today."""
        if self.status != self.Status.SCHEDULED:
            return self.status
        today = timezone.localdate()
        if today > self.window_end:
            return "missed"
        if today > self.due_date:
            return "overdue"
        if today >= self.window_start:
            return "due"
        return "scheduled"


class Invitation(models.Model):
    """The email (and its reminders) asking a patient to answer one time point's assessments."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"
        SENDING = "sending", "Being sent"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed (will retry)"
        COMPLETED = "completed", "Answered"
        EXPIRED = "expired", "Window closed"
        CANCELLED = "cancelled", "Cancelled"

    OPEN = (Status.PENDING, Status.SENDING, Status.SENT, Status.FAILED)
    patient_path = "patient"

    patient = models.ForeignKey("registry.Patient", on_delete=models.CASCADE, related_name="invitations")
    episode = models.ForeignKey("registry.Episode", on_delete=models.CASCADE, related_name="invitations")
    time_point = models.CharField(max_length=16)
    email = models.EmailField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    # Sending: a row is claimed by one worker with a conditional update before anything is sent.
    next_attempt_at = models.DateTimeField(default=timezone.now, null=True, blank=True, db_index=True)
    claim_id = models.CharField(max_length=40, blank=True, db_index=True)
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="When the claim was taken or last renewed")
    # Which process holds the claim: on the same machine a claim of a process that no longer exists is taken
    # again at once; from another machine, after the lease.
    claim_host = models.CharField(max_length=64, blank=True)
    claim_pid = models.PositiveIntegerField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    sends = models.PositiveSmallIntegerField(default=0, help_text="Emails delivered: 1 + reminders")
    max_reminders = models.PositiveSmallIntegerField(default=2)
    reminder_after_days = models.PositiveSmallIntegerField(default=4)
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["episode", "time_point"], name="one_invitation_per_time_point")]
        # an episode's open ones (a response closes them): by episode, never every open invitation
        indexes = [models.Index(fields=["episode", "status"], name="followup_invitation_episode")]

    def __str__(self) -> str:
        return f"Invitation {self.time_point} for episode {self.episode_id} ({self.status})"

    @property
    def reminders_sent(self) -> int:
        return max(0, self.sends - 1)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AccessToken(models.Model):
    """A single-use link's secret, stored only as its SHA-256. Each email carries a fresh one."""

    invitation = models.ForeignKey(Invitation, on_delete=models.CASCADE, related_name="tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"token for invitation {self.invitation_id}"


class SendAttempt(models.Model):
    """One email of an invitation, recorded (with its link's token, committed) before the email is handed to the
    mail backend, and marked after. A worker that stops in between leaves it 'started'; the next claim reconciles
    it: a file outbox is checked for the message; a mail server cannot be asked, so the email counts as possibly
    sent and is not sent again (the next reminder follows as planned, with a fresh link)."""

    class Status(models.TextChoices):
        STARTED = "started", "Being handed to the mail server"
        SENT = "sent", "Sent"
        NOT_SENT = "not_sent", "Not sent (the worker stopped first): sent again"
        POSSIBLY_SENT = "possibly_sent", "Possibly sent (the worker stopped while sending): not sent again"
        FAILED = "failed", "Failed"

    invitation = models.ForeignKey(Invitation, on_delete=models.CASCADE, related_name="send_attempts")
    token = models.ForeignKey(AccessToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    message_id = models.CharField(max_length=200, unique=True)
    status = models.CharField(max_length=14, choices=Status.choices, default=Status.STARTED)
    claim_id = models.CharField(max_length=40, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["status", "invitation"])]

    def __str__(self) -> str:
        return f"email {self.message_id} ({self.status})"


class ReplanJob(models.Model):
    """Re-planning the episodes a saved protocol may apply to, done by the worker in bounded batches (each its
    own transaction); `last_episode_id` is the committed cursor, so a stopped worker resumes where it was."""

    class Status(models.TextChoices):
        PENDING = "pending", "Re-planning"
        DONE = "done", "Done"
        SUPERSEDED = "superseded", "Superseded by a later save"

    protocol = models.ForeignKey(Protocol, on_delete=models.CASCADE, related_name="replan_jobs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    total = models.PositiveIntegerField(default=0, help_text="Episodes to re-plan when the protocol was saved")
    done = models.PositiveIntegerField(default=0)
    last_episode_id = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["status", "id"])]

    def __str__(self) -> str:
        return f"re-planning for {self.protocol_id}: {self.done}/{self.total}"

    @property
    def percent(self) -> int:
        return 100 if not self.total else min(100, round(100 * self.done / self.total))


class WorkerRun(models.Model):
    """One pass of a worker, so failures nobody would otherwise see are visible to the coordinator."""

    worker = models.CharField(max_length=80)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    invitations_created = models.PositiveIntegerField(default=0)
    sent = models.PositiveIntegerField(default=0)
    reminders = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    expired = models.PositiveIntegerField(default=0)
    replanned = models.PositiveIntegerField(default=0, help_text="Episodes re-planned after protocol changes")
    interval = models.FloatField(null=True, blank=True,
                                 help_text="Seconds until this worker's next pass (empty: a single pass)")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["started_at"], name="followup_workerrun_started")]

    def __str__(self) -> str:
        return f"{self.worker} at {self.started_at:%Y-%m-%d %H:%M}"


class Unsubscription(models.Model):
    """The patient asked, from the link in an email, for no more emails about one episode. No invitation is made
    for it again; its questionnaires stay on the worklist for staff to ask by phone or at a visit."""

    patient_path = "patient"

    patient = models.ForeignKey("registry.Patient", on_delete=models.CASCADE, related_name="+")
    episode = models.OneToOneField("registry.Episode", on_delete=models.CASCADE, related_name="unsubscription")
    invitation = models.ForeignKey(Invitation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                   help_text="The email whose link was used")
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"No more emails for episode {self.episode_id} (since {self.created_at:%Y-%m-%d})"
