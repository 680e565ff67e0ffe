"""Cohort filters: one parser for the page, the API and the command line; every bad value named."""

from __future__ import annotations

import datetime as dt

import pytest
from django.http import QueryDict
from hypothesis import given
from hypothesis import strategies as st

from orthoreg.analytics.filters import CohortFilter, CohortFilterError, display_forms, parse_filters
from orthoreg.registry.coding import Condition, ProcedureKind

CODES = ["east", "west"]


def parse(query: str):
    return parse_filters(QueryDict(query), clinic_codes=CODES)


def test_combination_and_ranges():
    f, versus = parse("condition=hallux_rigidus&procedure=bmc&procedure=prolotherapy&within_days=21"
                      "&grade_min=2&grade_max=3&age_min=30&age_max=60&sex=female&index_from=2024-01-01")
    assert versus is None
    assert f.index_kind == "bmc" and f.combined_kinds == ("prolotherapy",) and f.within_days == 21
    assert (f.grade_min, f.grade_max, f.age_min, f.age_max) == (2, 3, 30, 60)
    assert f.index_from == dt.date(2024, 1, 1)
    assert f.describe() == ("Hallux rigidus · grade 2–3 · Bone marrow concentrate injection + Prolotherapy within "
                            "21 days · age 30–60 · female · treated 1 Jan 2024 – today")


def test_web_checkboxes_append_to_the_index_procedure():
    f, _ = parse("procedure=bmc&also=prolotherapy&also=prp")
    assert f.procedures == ("bmc", "prolotherapy", "prp") and f.within_days == 30


def test_versus_replaces_only_what_is_given():
    f, versus = parse("condition=hallux_rigidus&procedure=bmc&also=prolotherapy&vs_procedure=hyaluronic_acid")
    assert versus.condition == "hallux_rigidus" and versus.procedures == ("hyaluronic_acid",)
    _, grades = parse("grade_min=1&grade_max=2&vs_grade_min=3&vs_grade_max=4")
    assert (grades.grade_min, grades.grade_max) == (3, 4)


@pytest.mark.parametrize(("query", "field", "words"), [
    ("grade_min=5", "grade_min", "less than or equal to 4"),
    ("grade_min=3&grade_max=1", "grade_max", "below the lower one"),
    ("age_min=abc", "age_min", "whole number"),
    ("condition=gout", "condition", "Unknown condition gout"),
    ("procedure=magic", "procedure", "Unknown procedure kind magic"),
    ("procedure=bmc&procedure=bmc", "procedure", "listed twice"),
    ("also=prp", "procedure", "index procedure of the combination"),
    ("index_from=01/02/2024", "index_from", "YYYY-MM-DD"),
    ("index_from=2024-05-01&index_to=2024-01-01", "index_to", "below the lower one"),
    ("clinic=nowhere", "clinic", "Unknown clinic nowhere"),
    ("sex=f", "sex", "Unknown sex"),
    ("grade_min=1&grade_min=2", "grade_min", "one value only"),
    ("within_days=-3", "within_days", "greater than or equal to 0"),
    ("vs_grade_min=9", "vs_grade_min", "less than or equal to 4"),
])
def test_bad_values_are_named(query, field, words):
    with pytest.raises(CohortFilterError) as exc:
        parse(query)
    assert field in exc.value.errors
    assert words in " ".join(exc.value.errors[field])
    assert field in str(exc.value)


def test_every_error_at_once():
    with pytest.raises(CohortFilterError) as exc:
        parse("grade_min=9&condition=x&vs_sex=q")
    assert set(exc.value.errors) == {"grade_min", "condition", "vs_sex"}


def test_plain_dicts_and_empty_values():
    f, _ = parse_filters({"procedure": ["bmc"], "grade_min": 2, "condition": "", "site": None}, clinic_codes=[])
    assert f == CohortFilter(procedures=("bmc",), grade_min=2)
    assert parse("")[0] == CohortFilter()
    assert CohortFilter().describe() == "All treated episodes"


@given(condition=st.sampled_from([""] + Condition.values),
       kinds=st.lists(st.sampled_from(ProcedureKind.values), unique=True, max_size=3),
       grades=st.tuples(st.integers(0, 4), st.integers(0, 4)).map(sorted),
       within=st.integers(0, 365))
def test_params_round_trip(condition, kinds, grades, within):
    f = CohortFilter(condition=condition, procedures=tuple(kinds), grade_min=grades[0], grade_max=grades[1],
                     within_days=within if len(kinds) > 1 else 30)
    query = QueryDict(mutable=True)
    for key, value in f.to_params():
        query.appendlist(key, value)
    assert parse_filters(query, clinic_codes=CODES)[0] == f


def test_display_forms_show_the_request():
    form, versus = display_forms(QueryDict("procedure=bmc&vs_procedure=prp&grade_min=x"), clinic_codes=CODES)
    assert "grade_min" in form.errors
    assert 'value="bmc" selected' in str(form["procedure"])
    assert 'name="vs_procedure"' in str(versus["procedure"]) and 'value="prp" selected' in str(versus["procedure"])
