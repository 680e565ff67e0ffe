"""Each clinical rule of registry/rules.py: its ORM expression and its Python twin agree, on any episode."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orthoreg.analytics.filters import DEFAULT_WITHIN_DAYS, CohortFilter
from orthoreg.followup.scheduling import DEFAULT_TIME_POINTS
from orthoreg.instruments.services import TIME_POINTS
from orthoreg.registry import rules, selectors
from orthoreg.registry.models import Episode, Grade, Procedure
from orthoreg.reports.case import PROTOCOL_TIME_POINTS

D = dt.date(2025, 3, 1)
KINDS = ["bmc", "prp", "prolotherapy", "cheilectomy", "first_mtp_arthrodesis"]
HYPO = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

procedures = st.lists(st.tuples(st.integers(-60, 400), st.sampled_from(KINDS)), max_size=5)


def _episode(patient, index_offset, index_kind, others) -> Episode:
    episode = Episode.objects.create(patient=patient, body_site="first_mtp", side="right",
                                     condition="hallux_rigidus")
    if index_offset is not None:
        Procedure.objects.create(episode=episode, date=D + dt.timedelta(days=index_offset), kind=index_kind,
                                 is_index=True)
    for offset, kind in others:
        Procedure.objects.create(episode=episode, date=D + dt.timedelta(days=offset), kind=kind)
    return episode


def _with_index_date(episode):
    return Episode.objects.filter(pk=episode.pk).annotate(index_date=selectors.index_date_subquery())


@pytest.mark.django_db
@HYPO
@given(index=st.one_of(st.none(), st.integers(-5, 5)), index_kind=st.sampled_from(KINDS), others=procedures)
def test_conversion_to_surgery_sql_and_python_agree(patient, index, index_kind, others):
    episode = _episode(patient, index, index_kind, others)
    in_python = rules.conversion_of(episode.procedures.all())
    in_sql = _with_index_date(episode).annotate(c=rules.conversion_date_subquery()).get().c
    assert in_sql == (in_python.date if in_python else None)
    Episode.objects.filter(pk=episode.pk).delete()


grades = st.lists(st.tuples(st.integers(-90, 120), st.integers(0, 4)), max_size=4)


@pytest.mark.django_db
@HYPO
@given(grades=grades)
def test_grade_at_treatment_sql_and_python_agree(patient, grades):
    episode = _episode(patient, 0, "bmc", [])
    for offset, grade in grades:
        Grade.objects.create(episode=episode, date=D + dt.timedelta(days=offset), system="coughlin_shurnas",
                             grade=grade)
    in_python = rules.grade_at_treatment(episode.grades.all(), D)
    in_sql = _with_index_date(episode).annotate(g=rules.grade_at_treatment_subquery()).get().g
    assert in_sql == (in_python.grade if in_python else None)
    # the boundary: a grade exactly GRADE_GRACE_DAYS after the index counts, one day later does not
    assert rules.grade_at_treatment([Grade(pk=1, date=D + dt.timedelta(days=rules.GRADE_GRACE_DAYS), grade=2)], D)
    assert not rules.grade_at_treatment([Grade(pk=1, date=D + dt.timedelta(days=rules.GRADE_GRACE_DAYS + 1),
                                               grade=2)], D)
    Episode.objects.filter(pk=episode.pk).delete()


@pytest.mark.django_db
@HYPO
@given(others=procedures, within=st.sampled_from([0, 7, rules.COMBINATION_WINDOW_DAYS, 90]))
def test_combination_window_sql_and_python_agree(patient, others, within):
    episode = _episode(patient, 0, "bmc", others)
    in_python = {p.kind for p in rules.combined_kinds(episode.procedures.all(), within)}
    for kind in KINDS:
        in_sql = _with_index_date(episode).filter(rules.combined_with_index(kind, within)).exists()
        assert in_sql == (kind in in_python), (kind, others, within)
    Episode.objects.filter(pk=episode.pk).delete()


def test_the_combination_window_is_the_cohort_filters_default():
    assert DEFAULT_WITHIN_DAYS == CohortFilter().within_days == rules.COMBINATION_WINDOW_DAYS == 30
    assert rules.in_combination_window(D + dt.timedelta(days=30), D)
    assert rules.in_combination_window(D - dt.timedelta(days=30), D)
    assert not rules.in_combination_window(D + dt.timedelta(days=31), D)


def test_the_time_points_are_one_list():
    assert [row[0] for row in DEFAULT_TIME_POINTS] == list(rules.TIME_POINT_CODES)
    assert [row[1:3] for row in DEFAULT_TIME_POINTS] == [(tp.months, tp.days) for tp in rules.TIME_POINTS]
    assert [code for code, _ in TIME_POINTS] == list(rules.TIME_POINT_CODES)
    assert PROTOCOL_TIME_POINTS == rules.FOLLOW_UP_CODES == rules.TIME_POINT_CODES[1:]
    assert all(rules.TIME_POINT_RE.match(c) for c in rules.TIME_POINT_CODES)
    assert rules.time_point_label("6w") == "6 weeks" and rules.time_point_label("baseline") == "Baseline"
