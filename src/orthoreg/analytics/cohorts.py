"""Cohort selection: the one function every page, the API and the command line select episodes with.

A cohort is a set of treated episodes (episodes with an index procedure), annotated in the database with
`index_date` and `index_kind`. A report first materializes its cohort (`materialized`): one row per episode in a
temporary table with every per-episode fact the aggregates need (index date, conversion date, death or withdrawal,
last contact, sex, age and grade at treatment), computed once by one INSERT ... SELECT built by the ORM. Every
aggregate then joins that table: the database plans them on a table of known size and contents, and nothing is
computed twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import (
    Case,
    CharField,
    DateField,
    Exists,
    F,
    FilteredRelation,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Abs, Coalesce, Greatest, Least, TruncDate

from orthoreg.instruments.models import Response
from orthoreg.registry.models import Clinic, Episode, Exam, Grade, Patient, Procedure
from orthoreg.registry.selectors import conversion_date_subquery

from .db import AgeYears, DaysBetween
from .filters import CohortFilter
from .models import BaselineScore, CohortMember

# A grade recorded up to this many days after the index procedure still describes the joint that was treated
# (e.g. graded from the pre-procedure radiographs a week later).
GRADE_GRACE_DAYS = 30


def baseline_grade_subquery():
    """The grade of record at the index procedure: the latest grade dated no later than GRADE_GRACE_DAYS after it."""
    return Subquery(
        Grade.objects.filter(episode=OuterRef("pk"))
        .annotate(after_index=DaysBetween(F("date"), OuterRef("index_date")))
        .filter(after_index__lte=GRADE_GRACE_DAYS)
        .order_by("-date", "-id").values("grade")[:1])


def treated_episodes(clinic_ids) -> QuerySet[Episode]:
    """Episodes with an index procedure in the given clinics, annotated with index_date and index_kind."""
    return (Episode.objects.filter(patient__clinic_id__in=list(clinic_ids))
            .annotate(ix=FilteredRelation("procedures", condition=Q(procedures__is_index=True)))
            .filter(ix__isnull=False)
            .annotate(index_date=F("ix__date"), index_kind=F("ix__kind")))


def cohort_episodes(f: CohortFilter, *, clinic_ids) -> QuerySet[Episode]:
    """The episodes of the cohort `f` among the clinics `clinic_ids` (the caller's scope)."""
    qs = treated_episodes(clinic_ids)
    if f.clinics:
        qs = qs.filter(patient__clinic__code__in=f.clinics)
    if f.exclude_episodes:
        qs = qs.exclude(pk__in=f.exclude_episodes)
    if f.consented_only:
        qs = qs.filter(patient__consent_registry=True)
    if f.condition:
        qs = qs.filter(condition=f.condition)
    if f.site:
        qs = qs.filter(body_site=f.site)
    if f.side:
        qs = qs.filter(side=f.side)
    if f.sex:
        qs = qs.filter(patient__sex=f.sex)
    if f.index_from:
        qs = qs.filter(ix__date__gte=f.index_from)
    if f.index_to:
        qs = qs.filter(ix__date__lte=f.index_to)
    if f.index_kind:
        qs = qs.filter(ix__kind=f.index_kind)
    for kind in f.combined_kinds:
        also = (Procedure.objects.filter(episode=OuterRef("pk"), kind=kind, is_index=False)
                .annotate(gap=Abs(DaysBetween(F("date"), OuterRef("index_date"))))
                .filter(gap__lte=f.within_days))
        qs = qs.filter(Exists(also))
    if f.grade_min is not None or f.grade_max is not None:
        qs = qs.annotate(baseline_grade=baseline_grade_subquery())
        if f.grade_min is not None:
            qs = qs.filter(baseline_grade__gte=f.grade_min)
        if f.grade_max is not None:
            qs = qs.filter(baseline_grade__lte=f.grade_max)
    if f.age_min is not None or f.age_max is not None:
        qs = qs.annotate(age_at_index=AgeYears(F("patient__birth_date"), F("index_date")))
        if f.age_min is not None:
            qs = qs.filter(age_at_index__gte=f.age_min)
        if f.age_max is not None:
            qs = qs.filter(age_at_index__lte=f.age_max)
    return qs


def clinic_codes(clinic_ids) -> list[str]:
    return list(Clinic.objects.filter(pk__in=list(clinic_ids)).order_by("code").values_list("code", flat=True))


def matching_filter(episode: Episode, *, within_days: int = 30, grade_band: int = 1) -> CohortFilter | None:
    """The cohort of patients like this episode's: same condition, site and index procedure (with the same
    further procedure kinds within `within_days`), grade within `grade_band` of the episode's grade.
    None when the episode has no index procedure."""
    index = episode.procedures.filter(is_index=True).first()
    if index is None:
        return None
    near = (episode.procedures.filter(is_index=False).exclude(kind=index.kind)
            .values_list("kind", "date"))
    combined = sorted({kind for kind, day in near if abs((day - index.date).days) <= within_days})
    grades = [(day, pk, grade) for day, pk, grade in episode.grades.values_list("date", "pk", "grade")
              if (day - index.date).days <= GRADE_GRACE_DAYS]
    grade = max(grades)[2] if grades else None
    return CohortFilter(
        condition=episode.condition, site=episode.body_site,
        grade_min=max(0, grade - grade_band) if grade is not None else None,
        grade_max=min(4, grade + grade_band) if grade is not None else None,
        procedures=(index.kind, *combined), within_days=within_days)


# ------------------------------------------------------------------------------------------------ materialized

COLUMNS = [  # (column, SQL type); the order of the INSERT
    ("episode_id", "bigint PRIMARY KEY"), ("patient_id", "bigint"), ("clinic_id", "bigint"), ("index_date", "date"),
    ("index_kind", "varchar(24)"), ("conversion_date", "date"), ("gone_date", "date"), ("last_contact", "date"),
    ("sex", "varchar(10)"), ("age", "integer"), ("grade", "smallint"),
]
BASELINE_COLUMNS = [("id", "bigint PRIMARY KEY"), ("episode_id", "bigint"), ("instrument", "varchar(40)"),
                    ("score", "double precision")]


def _latest(model, expression) -> Subquery:
    return Subquery(model.objects.filter(episode=OuterRef("pk")).order_by().values("episode")
                    .annotate(last=Max(expression)).values("last")[:1])


def member_rows(f: CohortFilter, *, clinic_ids, as_of: dt.date) -> QuerySet:
    """The cohort's rows for the cohort table, in COLUMNS order (one SELECT; nothing leaves the database)."""
    index = F("index_date")
    gone = Case(When(patient__status__in=[Patient.Status.WITHDRAWN, Patient.Status.DECEASED],
                     then=F("patient__status_date")), default=Value(None), output_field=DateField())
    contact = Greatest(
        index,
        # the patient's last answer to any questionnaire (the patient index makes this one probe per episode)
        Coalesce(TruncDate(Subquery(Response.objects.filter(patient=OuterRef("patient_id")).order_by("-completed_at")
                                    .values("completed_at")[:1])), index),
        Coalesce(_latest(Exam, F("date")), index),
        Coalesce(_latest(Procedure, F("date")), index),
        Coalesce(gone, index),
        output_field=DateField())
    qs = (cohort_episodes(f, clinic_ids=clinic_ids)
          .annotate(m_conversion=conversion_date_subquery(), m_gone=gone,
                    m_contact=Greatest(index, Least(contact, Value(as_of, output_field=DateField()))),
                    m_age=AgeYears(F("patient__birth_date"), index),
                    m_grade=baseline_grade_subquery() if f.grade_min is None and f.grade_max is None
                    else F("baseline_grade"),
                    m_kind=Coalesce(F("index_kind"), Value(""), output_field=CharField())))
    return qs.values_list("pk", "patient_id", "patient__clinic_id", "index_date", "m_kind", "m_conversion",
                          "m_gone", "m_contact", "patient__sex", "m_age", "m_grade").order_by()


def baseline_rows() -> QuerySet:
    """(id, episode, instrument, score) of the valid baseline score of each cohort episode and instrument: its latest
    baseline response (run while the cohort table exists)."""
    baseline = Q(time_point="baseline", valid=True, score__isnull=False)
    later = (Response.objects.filter(baseline, episode_id=OuterRef("episode_id"), instrument=OuterRef("instrument"))
             .filter(Q(completed_at__gt=OuterRef("completed_at"))
                     | Q(completed_at=OuterRef("completed_at"), pk__gt=OuterRef("pk"))))
    return (Response.objects.filter(baseline, episode__cohort_member__index_date__isnull=False)
            .exclude(Exists(later)).values_list("pk", "episode_id", "instrument", "score").order_by())


@contextmanager
def materialized(f: CohortFilter, *, clinic_ids, as_of: dt.date) -> Iterator[QuerySet[CohortMember]]:
    """The cohort in temporary tables for the duration of the block (CohortMember, BaselineScore); yields
    CohortMember.objects."""
    prefix = "temp" if connection.vendor == "sqlite" else "pg_temp"
    tables = [(CohortMember._meta.db_table, COLUMNS, lambda: member_rows(f, clinic_ids=clinic_ids, as_of=as_of)),
              (BaselineScore._meta.db_table, BASELINE_COLUMNS, baseline_rows)]

    def drop(cursor):
        for table, _, _ in tables:
            cursor.execute(f"DROP TABLE IF EXISTS {prefix}.{table}")

    with connection.cursor() as cursor:
        drop(cursor)
        for table, columns, rows in tables:
            if connection.vendor == "sqlite":  # INTEGER PRIMARY KEY is SQLite's rowid: one B-tree, not two
                columns = [(n, t.replace("bigint PRIMARY KEY", "INTEGER PRIMARY KEY")) for n, t in columns]
            cursor.execute(f"CREATE TEMPORARY TABLE {table} ({', '.join(f'{n} {t}' for n, t in columns)})")
            try:
                sql, params = rows().query.sql_with_params()
            except EmptyResultSet:  # e.g. no clinic in scope: the table stays empty
                continue
            cursor.execute(f"INSERT INTO {table} ({', '.join(n for n, _ in columns)}) {sql}", params)
        cursor.execute(f"CREATE UNIQUE INDEX {BaselineScore._meta.db_table}_key ON "
                       f"{BaselineScore._meta.db_table} (episode_id, instrument)")
        if connection.vendor == "postgresql":
            for table, _, _ in tables:
                cursor.execute(f"ANALYZE {table}")  # a temporary table has no statistics until analysed
    failed = False
    try:
        yield CohortMember.objects.all()
    except BaseException:
        failed = True
        raise
    finally:
        if not (failed and connection.vendor == "postgresql"):  # an aborted PostgreSQL transaction drops them itself
            with connection.cursor() as cursor:
                drop(cursor)
