"""Cohort selection: the one function every page, the API and the command line select episodes with.

A cohort is a set of treated episodes (episodes with an index procedure), selected on their facts (models.EpisodeFact:
one narrow row per treated episode with every per-episode fact the aggregates need, kept by facts.py). Every
aggregate then reads that table and the outcome facts: nothing is recomputed per report.
"""

from __future__ import annotations

from django.db.models import QuerySet

from orthoreg.registry import rules
from orthoreg.registry.models import Clinic, Episode

from .filters import CohortFilter
from .models import EpisodeFact


def treated_episodes(clinic_ids) -> QuerySet[EpisodeFact]:
    """The facts of the treated episodes (episodes with an index procedure) of the given clinics, as they are (a
    read: the worker, or the page or command at its top, brings them up to date; facts.py)."""
    return EpisodeFact.objects.filter(clinic_id__in=list(clinic_ids))


def cohort_episodes(f: CohortFilter, *, clinic_ids) -> QuerySet[EpisodeFact]:
    """The episodes of the cohort `f` among the clinics `clinic_ids` (the caller's scope), as their facts
    (primary key = the episode's)."""
    qs = treated_episodes(clinic_ids)
    if f.clinics:
        qs = qs.filter(clinic_id__in=Clinic.objects.filter(code__in=f.clinics).values("pk"))
    if f.exclude_episodes:
        qs = qs.exclude(pk__in=f.exclude_episodes)
    if f.consented_only:
        qs = qs.filter(consent=True)
    for name, column in (("condition", "condition"), ("site", "body_site"), ("side", "side"), ("sex", "sex"),
                         ("index_kind", "index_kind")):
        if getattr(f, name):
            qs = qs.filter(**{column: getattr(f, name)})
    for name, lookup in (("index_from", "index_date__gte"), ("index_to", "index_date__lte"),
                         ("grade_min", "grade__gte"), ("grade_max", "grade__lte"),
                         ("age_min", "age__gte"), ("age_max", "age__lte")):
        if getattr(f, name) is not None:
            qs = qs.filter(**{lookup: getattr(f, name)})
    for kind in f.combined_kinds:
        qs = qs.filter(rules.combined_with_index(kind, f.within_days))
    return qs


def disjoint(a: CohortFilter, b: CohortFilter) -> bool:
    """True when no episode can be in both cohorts: they ask for different values of something an episode has
    one of (its index procedure, condition, site, side, the patient's sex). False means they may share episodes
    (count them)."""
    return any(getattr(a, name) and getattr(b, name) and getattr(a, name) != getattr(b, name)
               for name in ("index_kind", "condition", "site", "side", "sex"))


def clinics_only(f: CohortFilter) -> bool:
    """True when the cohort is every treated episode of some clinics (nothing narrows it but the clinic)."""
    return f.replace(clinics=()) == CohortFilter(within_days=f.within_days)


def clinics_and_kind_only(f: CohortFilter) -> bool:
    """True when the cohort is every treated episode of one index procedure in some clinics (nothing else narrows
    it: no further procedure combined with it)."""
    return len(f.procedures) == 1 and f.replace(clinics=(), procedures=()) == CohortFilter(within_days=f.within_days)


def clinic_codes(clinic_ids) -> list[str]:
    return list(Clinic.objects.filter(pk__in=list(clinic_ids)).order_by("code").values_list("code", flat=True))


def matching_filter(episode: Episode, *, within_days: int = rules.COMBINATION_WINDOW_DAYS, grade_band: int = 1) -> CohortFilter | None:
    """The cohort of patients like this episode's: same condition, site and index procedure (with the same
    further procedure kinds within `within_days`), grade within `grade_band` of the episode's grade.
    None when the episode has no index procedure."""
    procedures = list(episode.procedures.all())
    index = next((p for p in procedures if p.is_index), None)
    if index is None:
        return None
    combined = sorted({p.kind for p in rules.combined_kinds(procedures, within_days) if p.kind != index.kind})
    at_treatment = rules.grade_at_treatment(episode.grades.all(), index.date)
    grade = at_treatment.grade if at_treatment is not None else None
    return CohortFilter(
        condition=episode.condition, site=episode.body_site,
        grade_min=max(0, grade - grade_band) if grade is not None else None,
        grade_max=min(4, grade + grade_band) if grade is not None else None,
        procedures=(index.kind, *combined), within_days=within_days)
