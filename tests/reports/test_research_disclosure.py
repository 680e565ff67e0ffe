"""A researcher (no clinical access) cannot single out one patient (issue 12, item 5): no figures from a cohort
under the small-number rule, treatment dates in whole months, and cohorts that differ by 1 to 4 patients from one
already shown (or from each other in a comparison) are refused. The attacks below are the ones that worked: a
day-level index date that holds only DF, and two overlapping filters whose difference is DF."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from orthoreg.analytics.models import ReleasedCohort
from tests.analytics.builders import Builder
from tests.conftest import login

REPORT = "/api/v1/cohorts/report"
COMPARE = "/api/v1/cohorts/compare"
DF_DAY = dt.date(2025, 3, 17)
DF_SCORE = 3


@pytest.fixture
def registry(clinic):
    """11 consented patients treated in March 2025 on different days, aged 41-55; DF, aged 40, alone on 17 March;
    3 treated in April. NPRS at baseline and 6 months."""
    b = Builder(clinic)
    for n in range(10):
        e = b.episode(index_date=dt.date(2025, 3, 1) + dt.timedelta(days=n), birth=dt.date(1984 - n - 1, 1, 1),
                      sex="female" if n % 4 else "male")
        b.assessment(e, "baseline", score=8)
        b.assessment(e, "6m", score=4 + n % 4)
    df = b.episode(index_date=DF_DAY, birth=dt.date(1984, 6, 1))  # 40 at treatment
    b.assessment(df, "baseline", score=7)
    b.assessment(df, "6m", score=DF_SCORE)
    for n in range(3):
        e = b.episode(index_date=dt.date(2025, 4, 2 + n), birth=dt.date(1970, 1, 1))
        b.assessment(e, "baseline", score=8)
        b.assessment(e, "6m", score=6)
    return df


def six_months(report: dict) -> dict:
    tp = next(t for t in report["time_points"] if t["time_point"] == "6m")
    return next(i for i in tp["instruments"] if i["instrument"] == "nprs")["score"]


def test_a_single_day_is_a_whole_month(researcher, registry):
    client = login(researcher)
    response = client.get(REPORT, {"index_from": DF_DAY.isoformat(), "index_to": DF_DAY.isoformat()})
    assert response.status_code == 200, response.content
    report = response.json()
    assert report["filters"]["index_from"] == "2025-03-01" and report["filters"]["index_to"] == "2025-03-31"
    assert report["cohort"]["episodes"] == 11 and six_months(report)["n"] == 11
    page = client.get("/reports/cohort/", {"index_from": DF_DAY.isoformat(), "index_to": DF_DAY.isoformat()})
    html = page.content.decode()
    assert page.status_code == 200 and "whole months" in html and "Mar 2025" in html


def test_no_figures_from_a_small_cohort(researcher, registry):
    client = login(researcher)
    response = client.get(REPORT, {"index_from": "2025-04-01", "index_to": "2025-04-30"})  # 3 patients
    assert response.status_code == 422
    assert "Fewer than 5 patients" in [e["message"] for e in response.json()["errors"] if e["location"] == "cohort"][0]
    page = client.get("/reports/cohort/", {"index_from": "2025-04-01", "index_to": "2025-04-30"})
    assert page.status_code == 400 and "Fewer than 5 patients" in page.content.decode()
    assert "treated episodes" not in page.content.decode()


def test_a_clinician_keeps_day_level_dates(clinician, registry):
    response = login(clinician).get(REPORT, {"index_from": DF_DAY.isoformat(), "index_to": DF_DAY.isoformat()})
    assert response.status_code == 200 and response.json()["cohort"]["episodes"] == 1
    assert six_months(response.json())["mean"] is None  # still the small-number rule on the figures


ATTACKS = [  # (base, neighbour): filters a researcher could try to isolate DF
    ({}, {"age_min": "41"}),
    ({"age_max": "45"}, {"age_max": "45", "age_min": "41"}),
    ({"index_from": "2025-03-01", "index_to": "2025-03-17"}, {"index_from": "2025-03-01", "index_to": "2025-03-16"}),
    ({"index_to": "2025-03-31"}, {"index_to": "2025-03-31", "sex": "female"}),
    ({"sex": "female"}, {"sex": "female", "age_min": "41"}),
]


@pytest.mark.parametrize("base, neighbour", ATTACKS)
def test_differencing_two_cohorts_never_gives_one_patient_away(researcher, registry, base, neighbour):
    client = login(researcher)
    shown = []
    for params in (base, neighbour):
        response = client.get(REPORT, params)
        assert response.status_code in (200, 422), response.content
        if response.status_code == 200:
            shown.append(response.json())
    assert set(base) <= set(neighbour)  # the neighbour adds to or replaces the base's values, as vs_ can
    compare = client.get(COMPARE, {**base, **{f"vs_{k}": v for k, v in neighbour.items()}})
    assert compare.status_code in (200, 422), compare.content
    if compare.status_code == 200:
        shown += compare.json()["cohorts"]
    for a, b in itertools.combinations(shown, 2):
        sa, sb = six_months(a), six_months(b)
        apart = abs(a["cohort"]["episodes"] - b["cohort"]["episodes"])
        assert apart == 0 or apart >= 5, (a["description"], b["description"])
        if sa["mean"] is not None and sb["mean"] is not None and abs(sa["n"] - sb["n"]) == 1:
            derived = abs(sa["n"] * sa["mean"] - sb["n"] * sb["mean"])
            assert derived != pytest.approx(DF_SCORE, abs=0.05), "DF's score worked out by subtraction"


def test_the_refusal_says_why(researcher, registry):
    client = login(researcher)
    assert client.get(REPORT).status_code == 200
    response = client.get(REPORT, {"age_min": "41"})  # everyone but DF
    assert response.status_code == 422
    assert "differs by fewer than 5 patients from one whose figures you were shown" in response.json()["detail"]
    compare = login(researcher).get(COMPARE, {"vs_age_min": "41"})
    assert compare.status_code == 422
    assert ReleasedCohort.objects.filter(user=researcher).count() == 1
