"""Reads of the registry. Scoping to the user's clinics happens here or in orthoreg.accounts.access."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.db.models import Exists, Min, OuterRef, Prefetch, Q, QuerySet, Subquery

from orthoreg.accounts import access

from .coding import SURGICAL_KINDS, Condition
from .models import AdverseEvent, Clinic, Episode, Grade, Patient, Procedure


class UnknownClinic(LookupError):
    """No clinic has the code; the message names the codes there are (for the command line)."""


def clinic_by_code(code: str) -> Clinic:
    try:
        return Clinic.objects.get(code=code)
    except Clinic.DoesNotExist:
        known = ", ".join(Clinic.objects.order_by("code").values_list("code", flat=True)) or "none yet"
        raise UnknownClinic(f"No clinic with code {code!r} (known: {known}).") from None


def index_date_subquery():
    return Subquery(Procedure.objects.filter(episode=OuterRef("pk"), is_index=True).values("date")[:1])


def conversion_date_subquery():
    """Date of the first surgical procedure after the index procedure of the episode (a conversion)."""
    return Subquery(
        Procedure.objects.filter(episode=OuterRef("pk"), kind__in=SURGICAL_KINDS, is_index=False,
                                 date__gt=OuterRef("index_date"))
        .order_by()
        .values("episode")
        .annotate(first=Min("date"))
        .values("first")[:1]
    )


def episodes_with_outcome_dates(queryset: QuerySet[Episode] | None = None) -> QuerySet[Episode]:
    """Annotate index_date and conversion_date (None when never converted) in the database."""
    qs = queryset if queryset is not None else Episode.objects.all()
    return qs.annotate(index_date=index_date_subquery()).annotate(conversion_date=conversion_date_subquery())


def conversion_for(episode: Episode, procedures: list[Procedure] | None = None) -> Procedure | None:
    """The conversion to surgery of an episode: its first surgical procedure dated after the index procedure,
    other than the index itself (after a surgical index, e.g. a cheilectomy, a later fusion is the second
    procedure that counts as its failure). The same rule as conversion_date_subquery, in Python."""
    procs = procedures if procedures is not None else list(episode.procedures.all())
    index = next((p for p in procs if p.is_index), None)
    if index is None:
        return None
    later = [p for p in procs if p.kind in SURGICAL_KINDS and p.date > index.date and not p.is_index]
    return min(later, key=lambda p: (p.date, p.pk)) if later else None


def patient_search(*, user, q: str = "", condition: str = "", procedure: str = "", status: str = "",
                   clinic: str = "") -> QuerySet[Patient]:
    qs = access.scope(Patient.objects.select_related("clinic"), user, access.CONTACT)
    q = q.strip()
    if q:
        terms = Q()
        for word in q.split():
            terms &= (Q(given_name__icontains=word) | Q(family_name__icontains=word) | Q(mrn__icontains=word)
                      | Q(initials__iexact=word) | Q(email__icontains=word))
        qs = qs.filter(terms)
    if condition:
        qs = qs.filter(Exists(Episode.objects.filter(patient=OuterRef("pk"), condition=condition)))
    if procedure:
        qs = qs.filter(Exists(Procedure.objects.filter(episode__patient=OuterRef("pk"), kind=procedure)))
    if status:
        qs = qs.filter(status=status)
    if clinic:
        qs = qs.filter(clinic__code=clinic)
    return qs.prefetch_related(Prefetch("episodes", queryset=Episode.objects.order_by("id"))).order_by(
        "family_name", "given_name", "id")


@dataclass
class TimelineEntry:
    date: date
    kind: str  # grade, procedure, surgery, exam, adverse, note
    obj: object


@dataclass
class EpisodeTimeline:
    episode: Episode
    entries: list[TimelineEntry]
    index_procedure: Procedure | None
    conversion: Procedure | None
    latest_grade: Grade | None


def patient_timeline(patient: Patient) -> list[EpisodeTimeline]:
    """Each episode of the patient with its grades, procedures, exams, adverse events and notes by date.

    The episodes come in the order a clinician looks for them: those with an index procedure first, the most
    recently treated first; then the others, the most recently active first.

    A fixed number of queries whatever the number of records (prefetching, no N+1).
    """
    episodes = (
        patient.episodes.all()
        .prefetch_related(
            "grades",
            "exams",
            "timeline_notes",
            Prefetch("procedures", queryset=Procedure.objects.prefetch_related("adverse_events")),
        )
        .order_by("id")
    )
    result = []
    for episode in episodes:
        procedures = list(episode.procedures.all())
        entries: list[TimelineEntry] = []
        entries += [TimelineEntry(g.date, "grade", g) for g in episode.grades.all()]
        for p in procedures:
            entries.append(TimelineEntry(p.date, "surgery" if p.is_surgical else "procedure", p))
            entries += [TimelineEntry(ae.date, "adverse", ae) for ae in p.adverse_events.all()]
        entries += [TimelineEntry(e.date, "exam", e) for e in episode.exams.all()]
        entries += [TimelineEntry(n.date, "note", n) for n in episode.timeline_notes.all()]
        order = {"grade": 0, "exam": 1, "procedure": 2, "surgery": 2, "adverse": 3, "note": 4}
        entries.sort(key=lambda e: (e.date, order[e.kind], e.obj.pk))
        grades = list(episode.grades.all())
        result.append(EpisodeTimeline(
            episode=episode,
            entries=entries,
            index_procedure=next((p for p in procedures if p.is_index), None),
            conversion=conversion_for(episode, procedures),
            latest_grade=max(grades, key=lambda g: (g.date, g.pk)) if grades else None,
        ))
    return sorted(result, key=_episode_order)


def _episode_order(t: EpisodeTimeline) -> tuple:
    index = t.index_procedure
    latest = t.entries[-1].date if t.entries else date.min
    if index is not None:
        return (0, -index.date.toordinal(), -t.episode.pk)
    return (1, -latest.toordinal(), -t.episode.pk)


def adverse_events_for(user) -> QuerySet[AdverseEvent]:
    return access.scope(AdverseEvent.objects.all(), user, access.CLINICAL, "procedure__episode__patient__clinic")


# What each role may do, as its home page says it: (what it is for, [(link text, url name)]).
ROLE_DUTIES = {
    "admin": ("Run the clinic in orthoreg: everything a clinician, coordinator, researcher and auditor can do, and "
              "manage the clinic's users and follow-up protocols.",
              [("Find a patient", "registry:patient_list"), ("Follow-up worklist", "followup:worklist"),
               ("Protocols", "followup:protocol_list"), ("Cohort outcomes", "reports:cohort"),
               ("Audit log", "accounts:audit_log")]),
    "clinician": ("Record and read your patients' care: conditions, grades, procedures, radiographs, scores and "
                  "case reports; see the outcomes of the clinic's cohorts.",
                  [("Find a patient", "registry:patient_list"), ("Cohort outcomes", "reports:cohort")]),
    "coordinator": ("Keep follow-up going: the worklist of questionnaires due, invitations, reminders and the "
                    "patients' contact details. No clinical records.",
                    [("Follow-up worklist", "followup:worklist"), ("Find a patient", "registry:patient_list")]),
    "researcher": ("Analyse outcomes of patients who gave registry consent: cohort reports, comparisons and the "
                   "de-identified research export. Aggregates only: no names, no single patients, nothing from "
                   "fewer than 5 patients, treatment dates in whole months.",
                   [("Cohort outcomes", "reports:cohort"), ("Research export", "interop:research_export")]),
    "auditor": ("Review who read, changed or exported patient data, in the audit log. No clinical records and no "
                "outcome figures.",
                [("Audit log", "accounts:audit_log")]),
}


def home_roles(user) -> list[dict]:
    """The user's roles with their clinics and what each lets them do (the home page); [] without a clinic role."""
    from django.urls import reverse

    from orthoreg.accounts.models import Membership, Role

    if user.is_superuser:
        clinics_by_role = {Role.ADMIN.value: list(Clinic.objects.order_by("name").values_list("name", flat=True))}
    else:
        clinics_by_role = {}
        for role, name in (Membership.objects.filter(user=user).order_by("clinic__name")
                           .values_list("role", "clinic__name")):
            clinics_by_role.setdefault(role, []).append(name)
    out = []
    for role in Role.values:  # in the order of the roles
        if role not in clinics_by_role:
            continue
        text, links = ROLE_DUTIES[role]
        out.append({"role": role, "label": Role(role).label, "clinics": clinics_by_role[role], "text": text,
                    "links": [(label, reverse(name)) for label, name in links]})
    return out


def clinic_summary(user) -> dict:
    """Counts for the home page, aggregated in the database."""
    from django.db.models import Count

    patients = access.scope(Patient.objects.all(), user, access.CONTACT)
    episodes = access.scope(Episode.objects.all(), user, access.CONTACT, "patient__clinic")
    by_condition = [{"condition": Condition(row["condition"]).label, "n": row["n"]}
                    for row in episodes.values("condition").annotate(n=Count("id")).order_by("-n")]
    converted = episodes_with_outcome_dates(episodes).filter(conversion_date__isnull=False).count()
    with_index = episodes.filter(procedures__is_index=True).count()
    return {
        "patients": patients.count(),
        "active": patients.filter(status=Patient.Status.ACTIVE).count(),
        "episodes": episodes.count(),
        "by_condition": by_condition,
        "treated": with_index,
        "converted": converted,
        "recent_procedures": access.scope(Procedure.objects.select_related("episode__patient"), user,
                                          access.CLINICAL, "episode__patient__clinic")
        .order_by("-date", "-id")[:8],
    }


@dataclass
class HistoryEntry:
    when: object
    user: str
    kind: str  # created / changed / deleted
    what: str
    changes: list[tuple[str, object, object]]


def patient_history(patient: Patient, limit: int = 300) -> list[HistoryEntry]:
    """Every change to the patient's clinical records (django-simple-history), newest first, with the fields
    that changed. Bounded: at most `limit` versions are read."""
    from .models import Exam, Grade, Note

    sources = [
        Patient.history.filter(id=patient.pk),
        Episode.history.filter(patient_id=patient.pk),
        Grade.history.filter(episode__patient_id=patient.pk),
        Procedure.history.filter(episode__patient_id=patient.pk),
        Exam.history.filter(episode__patient_id=patient.pk),
        Note.history.filter(episode__patient_id=patient.pk),
        AdverseEvent.history.filter(procedure__episode__patient_id=patient.pk),
    ]
    versions = []
    for qs in sources:
        versions += list(qs.select_related("history_user").order_by("-history_date")[:limit])
    versions.sort(key=lambda h: h.history_date, reverse=True)
    entries = []
    kinds = {"+": "created", "~": "changed", "-": "deleted"}
    for h in versions[:limit]:
        changes = []
        if h.history_type == "~":
            previous = h.prev_record
            if previous is not None:
                diff = h.diff_against(previous, excluded_fields=["updated_at"])  # bookkeeping, not a change
                changes = [(c.field, c.old, c.new) for c in diff.changes]
        name = h.instance_type._meta.verbose_name
        entries.append(HistoryEntry(when=h.history_date, user=getattr(h.history_user, "username", "") or "system",
                                    kind=kinds.get(h.history_type, h.history_type), what=f"{name}: {h.instance}",
                                    changes=changes))
    return entries
