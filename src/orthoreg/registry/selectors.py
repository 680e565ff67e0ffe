"""Reads of the registry. Scoping to the user's clinics happens here or in orthoreg.accounts.access."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet, Subquery

from orthoreg.accounts import access

from . import fts, rules
from .models import AdverseEvent, Clinic, Episode, Exam, Grade, Note, Patient, Procedure
from .rules import conversion_date_subquery


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


def episodes_with_outcome_dates(queryset: QuerySet[Episode] | None = None) -> QuerySet[Episode]:
    """Annotate index_date and conversion_date (None when never converted) in the database."""
    qs = queryset if queryset is not None else Episode.objects.all()
    return qs.annotate(index_date=index_date_subquery()).annotate(conversion_date=conversion_date_subquery())


def conversion_for(episode: Episode, procedures: list[Procedure] | None = None) -> Procedure | None:
    """The conversion to surgery of an episode (rules.conversion_of; its ORM twin is rules.conversion_date_subquery)."""
    return rules.conversion_of(procedures if procedures is not None else episode.procedures.all())


# The patient list's order, ending in the primary key so that equal names page neither twice nor never; registry
# migration 0004 made it an index (patient_list_order), which keyset pages walk.
PATIENT_LIST_ORDER = ("family_name", "given_name", "id")


def search_terms(q: str, *, indexed: bool = False) -> Q:
    """Every word of `q` in a name, the MRN or the email, or equal to the initials (case-insensitive).

    `indexed` (SQLite with the FTS5 index, fts.py): a word of 3 characters or more first narrows the patients
    through the index; the same conditions are then applied, so the result is exactly the plain filter's."""
    terms = Q()
    for word in q.split():
        term = (Q(given_name__icontains=word) | Q(family_name__icontains=word) | Q(mrn__icontains=word)
                | Q(initials__iexact=word) | Q(email__icontains=word))
        if indexed and len(word) >= fts.MIN_CHARS:
            term = fts.candidates(word) & term
        terms &= term
    return terms


def patient_search(*, user, q: str = "", condition: str = "", procedure: str = "", status: str = "",
                   clinic: str = "") -> QuerySet[Patient]:
    qs = access.scope(Patient.objects.select_related("clinic"), user, access.CONTACT)
    q = q.strip()
    if q:
        qs = qs.filter(search_terms(q, indexed=fts.usable(qs.db)))
    if condition:
        qs = qs.filter(Exists(Episode.objects.filter(patient=OuterRef("pk"), condition=condition)))
    if procedure:
        qs = qs.filter(Exists(Procedure.objects.filter(episode__patient=OuterRef("pk"), kind=procedure)))
    if status:
        qs = qs.filter(status=status)
    if clinic:
        qs = qs.filter(clinic__code=clinic)
    return qs.prefetch_related(Prefetch("episodes", queryset=Episode.objects.order_by("id"))).order_by(
        *PATIENT_LIST_ORDER)


@dataclass
class TimelineEntry:
    date: date
    kind: str  # grade, procedure, surgery, exam, adverse, note
    obj: Any  # the grade, procedure, exam, adverse event or note


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
    return access.scope(AdverseEvent.objects.all(), user, access.CLINICAL)


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
