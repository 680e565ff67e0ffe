"""The hand-built 10-patient cohort (conftest.hand_cohort): every number of its report worked out here.

    patient  baseline  6 months  notes
    P1       8         2         75% less pain; serious adverse event
    P2       6         3         exactly 50% less; mild adverse event
    P3       5         4         1 point (20%)
    P4       10        7         3 points (30%); SANE 40 -> 60
    P5       3         2         1 point (33%); SANE 50 -> 55
    P6       7         —         lost: 6-month window closed unanswered; exam at 45 days
    P7       6         —         fused at 120 days (before the 6-month due date): assessment cancelled
    P8       7         —         died at 59 days: not eligible at 6 months
    P9       6         —         treated 1 Jun 2025: 6 months not due by the as-of date (1 Sep 2025)
    P10      8         8         no change; fused at 226 days (after the 6-month due date)
"""

from __future__ import annotations

import math

import pytest
from scipy import stats as st
from statsmodels.stats.proportion import proportion_confint

from orthoreg.analytics import facts, selectors
from orthoreg.analytics.filters import CohortFilter

from .conftest import AS_OF

Z = 1.959963984540054

pytestmark = pytest.mark.usefixtures("estimates_at_any_n")  # a hand cohort smaller than the small-number rule


def wilson(k, n):
    return proportion_confint(k, n, alpha=0.05, method="wilson")


@pytest.fixture
def report(hand_cohort, clinic):
    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    return selectors.cohort_report(CohortFilter(condition="hallux_rigidus"), clinic_ids={clinic.pk}, as_of=AS_OF).document()


def row(report, time_point, instrument="nprs"):
    tp = next(t for t in report["time_points"] if t["time_point"] == time_point)
    return next(i for i in tp["instruments"] if i["instrument"] == instrument)


def check_rate(r, numerator, denominator, eligible, worst_numerator=None):
    worst_numerator = numerator if worst_numerator is None else worst_numerator
    low, high = wilson(numerator, denominator)
    w_low, w_high = wilson(worst_numerator, eligible)
    assert (r["numerator"], r["denominator"], r["eligible"]) == (numerator, denominator, eligible)
    assert r["rate"] == pytest.approx(numerator / denominator)
    assert (r["ci_low"], r["ci_high"]) == (pytest.approx(low, abs=1e-6), pytest.approx(high, abs=1e-6))
    assert r["worst_case_rate"] == pytest.approx(worst_numerator / eligible)
    assert (r["worst_case_ci_low"], r["worst_case_ci_high"]) == (pytest.approx(w_low, abs=1e-6),
                                                                 pytest.approx(w_high, abs=1e-6))
    assert r["unknown"] == eligible - denominator
    assert r["best_case_rate"] == pytest.approx((numerator + eligible - denominator) / eligible)


def test_cohort_and_baseline(report):
    c = report["cohort"]
    assert (c["episodes"], c["patients"], c["clinics"]) == (10, 10, 1)
    assert c["sex"] == {"female": 6, "male": 4}
    assert (c["index_from"], c["index_to"]) == ("2025-01-01", "2025-06-01")
    base = row(report, "baseline")
    assert (base["treated"], base["eligible"], base["responded"], base["lost"]) == (10, 10, 10, 0)
    assert base["score"]["mean"] == pytest.approx(6.6)  # 8+6+5+10+3+7+6+7+6+8 = 66
    assert base["score"]["median"] == 6.5  # 3 5 6 6 6 | 7 7 8 8 10
    assert base["change"] is None and base["responders"] == {}


def test_six_months_counts(report):
    six = row(report, "6m")
    # P8 died before it was due, P9's window is still open: 8 eligible; P6 and P7 did not answer.
    assert (six["treated"], six["eligible"], six["responded"], six["lost"], six["converted"]) == (10, 8, 6, 2, 1)
    assert six["completeness"]["rate"] == pytest.approx(0.75)
    low, high = wilson(6, 8)
    assert six["completeness"]["ci_low"] == pytest.approx(low, abs=1e-6)
    assert six["completeness"]["ci_high"] == pytest.approx(high, abs=1e-6)


def test_six_months_scores(report):
    s = row(report, "6m")["score"]
    values = [2, 3, 4, 7, 2, 8]  # P1 P2 P3 P4 P5 P10 (P7's conversion keeps nothing out: it did not answer)
    mean, sd = sum(values) / 6, math.sqrt(sum((v - 26 / 6) ** 2 for v in values) / 5)
    half = st.t.ppf(0.975, 5) * sd / math.sqrt(6)
    assert s["n"] == 6
    assert s["mean"] == pytest.approx(26 / 6)
    assert s["sd"] == pytest.approx(sd)
    assert (s["ci_low"], s["ci_high"]) == (pytest.approx(mean - half, abs=1e-6), pytest.approx(mean + half, abs=1e-6))
    assert s["median"] == 3.5  # 2 2 3 | 4 7 8
    assert (s["median_ci_low"], s["median_ci_high"]) == (2, 8)  # n=6: ranks 1 and 6


def test_six_months_change(report):
    c = row(report, "6m")["change"]
    changes = [-6, -3, -1, -3, -1, 0]
    assert c["n"] == 6
    assert c["mean"] == pytest.approx(-14 / 6)
    assert c["median"] == -2  # -6 -3 -3 | -1 -1 0
    sd = st.tstd(changes)
    assert c["sd"] == pytest.approx(sd)


def test_six_months_responders(report):
    r = row(report, "6m")["responders"]
    # >= 50% less pain: P1, P2 of the evaluable P1-P5, P10; P7's conversion is a known failure: 2 / 7.
    check_rate(r["pain_50"], 2, 7, 8)
    # >= MCID (2 points or 30%): P1 (6), P2 (3), P4 (3), P5 (1 point = 33% of 3): 4 / 7.
    check_rate(r["mcid"], 4, 7, 8)
    # OMERACT-OARSI: P1 and P2 (high pain improvement); P4 (moderate pain 30% and 3/10, moderate SANE +20 = 33%
    # of its room): 3 / 7. P5's SANE +5 is below 10/100.
    check_rate(r["omeract_oarsi"], 3, 7, 8)
    # No conversion by the due date: 7 of 8; worst case: only those who answered and had not converted, 6 of 8.
    check_rate(r["no_conversion"], 7, 8, 8, worst_numerator=6)


def test_sane_rows(report):
    sane = row(report, "6m", "sane")
    assert (sane["eligible"], sane["responded"]) == (2, 2)
    assert sane["change"]["mean"] == pytest.approx(12.5)  # (+20 + +5) / 2
    assert "mcid" not in sane["responders"]  # SANE has no MCID for the foot


def test_flow_and_headline(report):
    flow = {f["time_point"]: f for f in report["flow"]}
    assert (flow["6m"]["treated"], flow["6m"]["eligible"], flow["6m"]["responded"]) == (10, 8, 6)
    assert report["headline"]["time_point"] == "6m"
    assert "2 of 8 eligible patients (25%) did not answer" in report["limits"]
    assert "serious threat" in report["limits"]  # more than 20% lost


def test_adverse_events(report):
    ae = report["adverse_events"]
    assert (ae["any"]["numerator"], ae["any"]["denominator"]) == (2, 10)
    assert (ae["serious"]["numerator"], ae["serious"]["denominator"]) == (1, 10)
    assert ae["serious"]["ci_low"] == pytest.approx(wilson(1, 10)[0], abs=1e-6)


def test_survival(report):
    s = report["survival"]
    # Durations (days to conversion or last contact): P1-P5 181 (6-month answer), P6 45 (exam), P7 120 (fused),
    # P8 59 (died), P9 44 (exam), P10 226 (fused).
    assert (s["n"], s["events"], s["censored"]) == (10, 2, 8)
    steps = [(r["time"], r["at_risk"], r["events"], r["survival"]) for r in s["table"]]
    assert steps == [(0, 10, 0, 1.0), (120, 7, 1, pytest.approx(6 / 7)), (226, 1, 1, 0.0)]
    # Exponential Greenwood ("log(-log)") interval at 120 days, by hand.
    surv = 6 / 7
    var = 1 / (7 * 6)
    se = math.sqrt(var / math.log(surv) ** 2)
    centre = math.log(-math.log(surv))
    low, high = math.exp(-math.exp(centre + Z * se)), math.exp(-math.exp(centre - Z * se))
    at120 = s["table"][1]
    assert (at120["ci_low"], at120["ci_high"]) == (pytest.approx(low, abs=1e-5), pytest.approx(high, abs=1e-5))
    assert s["median_event_free_days"] == 226
    # Reverse Kaplan-Meier (censoring as the event): 0.9 at 44, 0.8 at 45, 0.7 at 59, 0.7 x 1/6 at 181.
    assert s["median_follow_up_days"] == 181
    at = {a["months"]: a for a in s["at"]}
    assert at[3]["survival"] == 1.0 and at[3]["at_risk"] == 7  # 91 days: still followed: P1-P5, P7, P10
    assert at[6]["survival"] == pytest.approx(6 / 7) and at[6]["at_risk"] == 1  # 183 days: P10 only
    assert at[12]["survival"] is None  # beyond the longest follow-up


def test_grade_combination_and_age_filters_on_the_same_data(hand_cohort, clinic):
    ids = {clinic.pk}
    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    assert selectors.cohort_report(CohortFilter(sex="male"), clinic_ids=ids, as_of=AS_OF).document()["cohort"]["episodes"] == 4
    assert selectors.cohort_report(CohortFilter(procedures=("prp",)), clinic_ids=ids,
                                   as_of=AS_OF).document()["cohort"]["episodes"] == 0
