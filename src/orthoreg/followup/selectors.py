"""Reads of the follow-up app: the coordinator's worklist, completeness, an episode's assessments."""

from __future__ import annotations

import datetime as dt

from dataclasses import dataclass

from django.db.models import Count, Max, Min, Q, QuerySet
from django.utils import timezone

from orthoreg.accounts import access

from .models import Assessment, Invitation, ReplanJob, WorkerRun

TABS = [("due", "Due this week"), ("open", "Open, due later"), ("overdue", "Overdue"), ("missed", "Missed"),
        ("completed", "Completed"), ("failed", "Sending failed")]
WEEK = dt.timedelta(days=7)
INVITATION_TABS = ("due", "open", "overdue")  # rows with an invitation staff may resend or revoke


def sendable_codes() -> frozenset[str]:
    """Instruments that may be sent to patients: their item text is installed and they have a scoring rule. A
    licensed instrument without its text (or a broken site definition) is entered by staff only."""
    from orthoreg.instruments.definitions import all_definitions

    return frozenset(d.code for d in all_definitions() if d.sendable)


def survey_total(invitation: Invitation) -> int:
    """How many questionnaires the patient's link asks at this time point (answered or not): the progress total."""
    return (Assessment.objects.filter(episode_id=invitation.episode_id, time_point=invitation.time_point,
                                      instrument__in=sendable_codes())
            .exclude(status=Assessment.Status.CANCELLED).count())


def worklist(*, user, tab: str, clinic: str = "", today: dt.date | None = None) -> QuerySet:
    today = today or timezone.localdate()
    if tab == "failed":
        qs = access.scope(Invitation.objects.all(), user, access.CONTACT, "patient__clinic")
        qs = qs.filter(status=Invitation.Status.FAILED)
        if clinic:
            qs = qs.filter(patient__clinic__code=clinic)
        return qs.select_related("patient", "episode").order_by("next_attempt_at")
    qs = access.scope(Assessment.objects.all(), user, access.CONTACT, "patient__clinic")
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

    @property
    def status(self) -> str:
        statuses = {a.display_status for a in self.assessments}
        for status in ("missed", "overdue", "due", "scheduled", "completed", "cancelled"):
            if status in statuses:
                return status
        return ""


def work_items(queryset: QuerySet, *, tab: str, page_number) -> tuple:
    """Group the worklist by (episode, time point) in the database, paginate the groups, then fetch the
    assessments of the page's groups in one query."""
    from django.core.paginator import Paginator

    groups = (queryset.values("episode_id", "time_point")
              .annotate(due=Min("due_date"), window_end=Max("window_end"), last=Max("completed_at"))
              .order_by(*(["-last"] if tab == "completed" else ["due"]), "episode_id", "time_point"))
    page = Paginator(groups, 25).get_page(page_number)
    keys = [(g["episode_id"], g["time_point"]) for g in page.object_list]
    match = Q(pk__in=[])
    for episode_id, time_point in keys:
        match |= Q(episode_id=episode_id, time_point=time_point)
    rows: dict[tuple, list] = {}
    for a in queryset.filter(match).select_related("patient", "episode").order_by("time_point_order", "instrument"):
        rows.setdefault((a.episode_id, a.time_point), []).append(a)
    invitations = {}
    if tab in INVITATION_TABS and keys:
        invitations = {(i.episode_id, i.time_point): i for i in Invitation.objects.filter(match)}
    items = [WorkItem(g["episode_id"], g["time_point"], g["due"], g["window_end"], g["last"],
                      rows.get((g["episode_id"], g["time_point"]), []), invitations.get((g["episode_id"],
                                                                                          g["time_point"])))
             for g in page.object_list]
    return page, items


def completeness(*, user, clinic: str = "", today: dt.date | None = None) -> list[dict]:
    """Per time point: due (window closed or answered), completed, and the percentage, in one GROUP BY."""
    today = today or timezone.localdate()
    qs = access.scope(Assessment.objects.exclude(status=Assessment.Status.CANCELLED), user, access.CONTACT,
                      "patient__clinic")
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
