"""Reads of the follow-up app: the coordinator's worklist, completeness, an episode's assessments."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from functools import cached_property

from django.core.cache import cache
from django.db.models import Count, Max, Min, Q, QuerySet
from django.utils import timezone

from orthoreg import keyset
from orthoreg.accounts import access
from orthoreg.instruments.definitions import all_definitions

from . import rules
from .models import AccessToken, Assessment, Invitation, ReplanJob, Unsubscription, WorkerRun, hash_token

TABS = [("due", "Due this week"), ("open", "Open, due later"), ("overdue", "Overdue"), ("missed", "Missed"),
        ("completed", "Completed"), ("failed", "Sending failed")]
WEEK = dt.timedelta(days=7)
INVITATION_TABS = ("due", "open", "overdue")  # rows with an invitation staff may resend or revoke


def sendable_codes() -> frozenset[str]:
    """Instruments that may be sent to patients: their item text is installed and they have a scoring rule. A
    licensed instrument without its text (or a broken site definition) is entered by staff only."""
    return frozenset(d.code for d in all_definitions() if d.sendable)


def invitation_of_token(token: str) -> Invitation | None:
    """The invitation an emailed link belongs to, whatever has become of it since (for the unsubscribe link, which
    works as long as the email exists)."""
    if not token or len(token) > 100:
        return None
    row = (AccessToken.objects.select_related("invitation__patient__clinic", "invitation__episode")
           .filter(token_hash=hash_token(token)).first())
    return row.invitation if row else None


def link_questionnaires(invitation: Invitation) -> tuple[list[Assessment], int]:
    """What the patient still has to answer from the link (open_assessments), and how many questionnaires the link
    asks at this time point, answered or not (the progress total): one query for both."""
    asked = list(Assessment.objects.filter(episode_id=invitation.episode_id, time_point=invitation.time_point,
                                           instrument__in=sendable_codes())
                 .exclude(status=Assessment.Status.CANCELLED).order_by("id"))
    return [a for a in asked if a.status == Assessment.Status.SCHEDULED], len(asked)


def worklist(*, user, tab: str, clinic: str = "", today: dt.date | None = None) -> QuerySet:
    today = today or timezone.localdate()
    if tab == "failed":
        qs = access.scope(Invitation.objects.all(), user, access.CONTACT)
        qs = qs.filter(status=Invitation.Status.FAILED)
        if clinic:
            qs = qs.filter(patient__clinic__code=clinic)
        return qs.select_related("patient", "episode").order_by("next_attempt_at")
    qs = access.scope(Assessment.objects.all(), user, access.CONTACT)
    if clinic:
        qs = qs.filter(patient__clinic__code=clinic)
    scheduled = Q(status=Assessment.Status.SCHEDULED)
    if tab == "due":  # the due date falls in the coming seven days
        qs = qs.filter(scheduled, due_date__gte=today, due_date__lte=today + WEEK, window_end__gte=today)
    elif tab == "open":  # the window is open (its invitation may be out) but the due date is further off
        qs = qs.filter(scheduled, window_start__lte=today, due_date__gt=today + WEEK)
    elif tab == "overdue":
        qs = qs.filter(scheduled, due_date__lt=today, window_end__gte=today)
    elif tab == "missed":
        qs = qs.filter(scheduled, window_end__lt=today)
    elif tab == "completed":
        qs = qs.filter(status=Assessment.Status.COMPLETED)
    else:
        return Assessment.objects.none()
    return qs


@dataclass
class WorkItem:
    """One patient's time point on the worklist: its questionnaires, due date and window."""

    episode_id: int
    time_point: str
    due: dt.date
    window_end: dt.date
    last_completed: dt.datetime | None
    assessments: list
    invitation: Invitation | None = None
    unsubscription: Unsubscription | None = None
    no_invitation: str = ""  # why no email is out for it, in words for the coordinator ...
    no_invitation_since: dt.date | dt.datetime | None = None  # ... and since or until when, if a date belongs to it

    @property
    def invitation_open(self) -> bool:
        """Its invitation can still be resent or revoked (on the due, open and overdue tabs)."""
        return self.invitation is not None and self.invitation.status in Invitation.OPEN

    @property
    def patient(self):
        return self.assessments[0].patient

    @property
    def episode(self):
        return self.assessments[0].episode

    @cached_property  # the page asks it several times per row; it is as of today, and a page lives one request
    def status(self) -> str:
        statuses = {a.display_status for a in self.assessments}
        for status in ("missed", "overdue", "due", "scheduled", "completed", "cancelled"):
            if status in statuses:
                return status
        return ""


def work_items(queryset: QuerySet, *, tab: str, cursor: str | None) -> tuple:
    """Group the worklist by (episode, time point) in the database, take the page of groups after `cursor`
    (keyset pagination, orthoreg/keyset.py), then fetch the assessments of the page's groups in one query."""
    order = (("-last",) if tab == "completed" else ("due",)) + ("episode_id", "time_point")
    groups = (queryset.values("episode_id", "time_point")
              .annotate(due=Min("due_date"), window_end=Max("window_end"), last=Max("completed_at")))
    page = keyset.paginate(groups, order=order, cursor=cursor, per_page=25, name=f"worklist-{tab}")
    keys = {(g["episode_id"], g["time_point"]) for g in page.object_list}
    # The page's (episode, time point) pairs, asked as episodes x time points (two IN lists, cheap to build; a
    # few rows more at most) and narrowed to the pairs here.
    episode_ids, time_points = {e for e, _ in keys}, {t for _, t in keys}
    rows: dict[tuple, list] = {}
    page_rows = (queryset.filter(episode_id__in=episode_ids, time_point__in=time_points)
                 .select_related("patient__clinic", "episode"))
    for a in page_rows.order_by("time_point_order", "instrument"):
        if (a.episode_id, a.time_point) in keys:
            rows.setdefault((a.episode_id, a.time_point), []).append(a)
    invitations = {}
    if tab in INVITATION_TABS and keys:
        invitations = {(i.episode_id, i.time_point): i
                       for i in Invitation.objects.filter(episode_id__in=episode_ids, time_point__in=time_points)
                       if (i.episode_id, i.time_point) in keys}
    unsubscribed = {u.episode_id: u for u in Unsubscription.objects.filter(episode_id__in=episode_ids)}
    items = []
    codes = sendable_codes()
    for g in page.object_list:
        key = (g["episode_id"], g["time_point"])
        item = WorkItem(g["episode_id"], g["time_point"], g["due"], g["window_end"], g["last"], rows.get(key, []),
                        invitations.get(key), unsubscribed.get(g["episode_id"]))
        if tab in INVITATION_TABS and item.assessments:
            item.no_invitation, item.no_invitation_since = no_invitation_reason(item, codes=codes)  # type: ignore[assignment]
        items.append(item)
    return page, items


def no_invitation_reason(item: WorkItem, *, codes: frozenset[str],
                         today: dt.date | None = None) -> tuple[str, object]:
    """Why a time point still to be answered has no email out, in the words of the rules invitations_plan selects
    with (followup/rules.py), and the date that goes with it (("", None) when one is out). The coordinator then
    knows whether to call, or what to fix."""
    invitation = item.invitation
    if invitation is not None and invitation.status in Invitation.OPEN:
        return "", None
    if item.unsubscription is not None:
        return rules.PATIENT_RULES[0].words, item.unsubscription.created_at
    if invitation is not None:
        reason = f": {invitation.cancelled_reason}" if invitation.cancelled_reason else ""
        return f"Invitation {invitation.get_status_display().lower()}{reason}", None
    broken = rules.first_broken_rule(item.patient, item.unsubscription)
    if broken is not None:
        return broken.words, None
    scheduled = [a for a in item.assessments if a.status == Assessment.Status.SCHEDULED]
    if scheduled and not any(a.instrument in codes for a in scheduled):
        return "Licensed questionnaire text not installed: ask by phone or on paper", None
    opens = rules.window_opens_later(scheduled, today or timezone.localdate())
    if opens is not None:
        return "The email goes out when the window opens", opens
    return "The email goes out at the worker's next pass", None


COMPLETENESS_SECONDS = 60  # the worklist's completeness table may be this old: counting every assessment is the
# worklist's one whole-table read (2 s at 10,000 patients on a busy SQLite), and it changes slowly


def completeness(*, user, clinic: str = "", today: dt.date | None = None) -> list[dict]:
    """Per time point: due (window closed or answered), completed, and the percentage, in one GROUP BY; kept in the
    cache for COMPLETENESS_SECONDS per scope."""
    today = today or timezone.localdate()
    scope = json.dumps([sorted(access.clinic_ids(user, access.CONTACT)), clinic, today.isoformat()])
    # hashed: the clinic filter comes from the query string, and any backend (memcached) takes this key
    key = "orthoreg:completeness:" + hashlib.sha256(scope.encode()).hexdigest()
    cached = cache.get(key)
    if cached is None:
        cached = _completeness(user=user, clinic=clinic, today=today)
        cache.set(key, cached, COMPLETENESS_SECONDS)
    return cached


def _completeness(*, user, clinic: str, today: dt.date) -> list[dict]:
    qs = access.scope(Assessment.objects.exclude(status=Assessment.Status.CANCELLED), user, access.CONTACT)
    if clinic:
        qs = qs.filter(patient__clinic__code=clinic)
    rows = (qs.values("time_point", "time_point_order")
            .annotate(due=Count("id", filter=Q(due_date__lte=today)),
                      completed=Count("id", filter=Q(status=Assessment.Status.COMPLETED, due_date__lte=today)),
                      missed=Count("id", filter=Q(status=Assessment.Status.SCHEDULED, window_end__lt=today)))
            .order_by("time_point_order", "time_point"))
    result = []
    for row in rows:
        if not row["due"]:
            continue
        row["percent"] = round(100 * row["completed"] / row["due"], 1)
        result.append(row)
    return result


def episode_assessments(episode) -> list[Assessment]:
    return list(Assessment.objects.filter(episode=episode).order_by("due_date", "time_point_order", "instrument"))


def latest_runs(limit: int = 5) -> list[WorkerRun]:
    return list(WorkerRun.objects.order_by("-started_at")[:limit])


def next_worker_pass(now: dt.datetime | None = None) -> dt.datetime | None:
    """When a running worker will next look for work, from the passes workers record (each with the interval to
    its next one); None when no worker is known to be running (none ran, or the last one is overdue)."""
    now = now or timezone.now()
    soonest = None
    recent = WorkerRun.objects.filter(interval__isnull=False, started_at__gte=now - dt.timedelta(days=1))
    for run in recent.order_by("-started_at")[:20]:
        if run.finished_at is None:  # in a pass now (or stopped in one: then it does not count for long)
            if run.started_at < now - dt.timedelta(minutes=10):
                continue
            expected = now + dt.timedelta(seconds=run.interval)
        else:
            expected = run.finished_at + dt.timedelta(seconds=run.interval)
            grace = dt.timedelta(seconds=max(30.0, run.interval))
            if expected + grace < now:  # overdue: that worker stopped
                expected = None
        if expected is not None:
            expected = max(expected, now)
            soonest = expected if soonest is None else min(soonest, expected)
    return soonest


def worker_running(now: dt.datetime | None = None) -> bool:
    """A worker loop is running (its last pass is recent and its next one not overdue)."""
    return next_worker_pass(now) is not None


def worker_eta_text(action: str = "send it", now: dt.datetime | None = None) -> str:
    """When the worker will do what was just queued for it, in words that are true when shown."""
    now = now or timezone.now()
    due = next_worker_pass(now)
    if due is None:
        return ("No worker has run recently, so this waits until 'orthoreg worker' runs again: ask your "
                "administrator to start it.")
    seconds = (due - now).total_seconds()
    if seconds <= 60:
        return f"The worker will {action} within a minute."
    return f"The worker will {action} within about {round(seconds / 60) + 1} minutes."


def replanning(protocols) -> dict[int, ReplanJob]:
    """The unfinished re-planning of each of these protocols (protocol id -> job)."""
    jobs = ReplanJob.objects.filter(protocol__in=protocols, status=ReplanJob.Status.PENDING).order_by("id")
    return {job.protocol_id: job for job in jobs}


def pending_sendable(codes: frozenset[str] | None = None, **filters):
    """Scheduled assessments a patient can answer from the link (licensed ones without their text are left to
    staff: they never hold an invitation open). `codes`: the sendable instruments, when the caller looked them
    up already (they are read from the definition files)."""
    return Assessment.objects.filter(status=Assessment.Status.SCHEDULED,
                                     instrument__in=sendable_codes() if codes is None else codes, **filters)



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



def open_assessments(invitation: Invitation) -> list[Assessment]:
    """What the patient still has to answer from the link: a broken, removed or licensed-but-not-installed
    definition is never sent (staff see the assessment on the worklist and enter it)."""
    return link_questionnaires(invitation)[0]
