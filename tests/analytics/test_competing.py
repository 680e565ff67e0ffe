"""Cumulative incidence of conversion with death as the competing event (Aalen-Johansen), against lifelines and a
hand-worked example, and in the cohort report (issue 16 item 1)."""

from __future__ import annotations

import datetime as dt
import math
import warnings

import numpy as np
import pytest
from lifelines import AalenJohansenFitter, KaplanMeierFitter

from orthoreg.analytics import facts, selectors, stats
from orthoreg.analytics.filters import CohortFilter

from .conftest import AS_OF, INDEX

D = dt.date

# A fixed data set without ties between the two kinds of event (lifelines jitters such ties apart at random):
# days and status (0 censored, 1 conversion, 2 death).
DAYS = [30, 45, 45, 60, 90, 90, 120, 150, 180, 200, 210, 240, 240, 300, 330, 365, 400, 420, 500, 600]
STATUS = [1, 0, 0, 2, 1, 1, 0, 1, 2, 0, 1, 0, 0, 2, 1, 0, 1, 0, 2, 0]


def test_point_estimate_and_interval_equal_lifelines():
    ours = stats.aalen_johansen(DAYS, STATUS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ajf = AalenJohansenFitter(calculate_variance=True).fit(DAYS, STATUS, event_of_interest=1)
    theirs = ajf.cumulative_density_.iloc[:, 0]
    assert list(ours.time) == [0.0, *sorted(set(DAYS))]
    for t, f in theirs.items():
        i = ours.index_at(t)
        assert ours.incidence[i] == pytest.approx(f, abs=1e-12), t
    variance = ajf.variance_
    bounds = ajf.confidence_interval_
    for row, t in enumerate(theirs.index):
        i = ours.index_at(t)
        assert ours.variance[i] == pytest.approx(float(variance.iloc[row]), rel=1e-9, abs=1e-14), t
        pair = sorted(float(v) for v in bounds.iloc[row])
        if ours.incidence[i] > 0:
            assert (ours.ci_low[i], ours.ci_high[i]) == pytest.approx(pair, rel=1e-9), t
    # at risk is lifelines' event table's
    table = ajf.event_table
    for t, at_risk in table["at_risk"].items():
        assert ours.at_risk[ours.index_at(t)] == at_risk


def test_hand_worked_example():
    """Five patients: conversion at 1, death at 2, censored at 3, conversion at 4, censored at 5.
    n = 5, 4, 3, 2, 1. S(1) = 4/5, S(2) = 4/5 x 3/4 = 3/5, S(4) = 3/5 x 1/2 = 3/10.
    F(1) = 1 x 1/5 = 0.2; F(2) = 0.2 (a death adds nothing); F(4) = 0.2 + S(2) x 1/2 = 0.2 + 0.3 = 0.5.
    Var F(1) = S0^2 d1 (n-d1)/n^3 = 1 x 1 x 4 / 125 = 0.032.
    Var F(4): terms j=1 (n 5, d 1, d1 1, S- 1): (0.5-0.2)^2 x 1/(5x4) + 4/125 - 2 x 0.3 x 1/25 = 0.0045 + 0.032 - 0.024;
    j=2 (n 4, d 1, d1 0, S- 0.8): (0.5-0.2)^2 x 1/(4x3) = 0.0075; j=4 (n 2, d 1, d1 1, S- 0.6):
    0 + 0.36 x 1 x 1/8 - 0 = 0.045. Total 0.065."""
    ci = stats.aalen_johansen([1, 2, 3, 4, 5], [1, 2, 0, 1, 0])
    assert list(ci.incidence) == pytest.approx([0, 0.2, 0.2, 0.2, 0.5, 0.5])
    assert ci.variance[1] == pytest.approx(0.032)
    assert ci.variance[4] == pytest.approx(0.0045 + 0.032 - 0.024 + 0.0075 + 0.045)
    f, se = 0.5, math.sqrt(0.065) / (0.5 * abs(math.log(0.5)))
    low = math.exp(-math.exp(math.log(-math.log(f)) + stats.Z95 * se))
    high = math.exp(-math.exp(math.log(-math.log(f)) - stats.Z95 * se))
    assert (ci.ci_low[4], ci.ci_high[4]) == pytest.approx((low, high))
    assert list(ci.at_risk) == [5, 5, 4, 3, 2, 1]
    # before the first event: [0, Wilson upper limit of 0 of 5]
    assert ci.ci_low[0] == 0 and ci.ci_high[0] == pytest.approx(stats.wilson(0, 5)[1])


def test_counts_weight_rows_like_repeating_them():
    once = stats.aalen_johansen(DAYS * 3, STATUS * 3)
    counted = stats.aalen_johansen(DAYS, STATUS, [3] * len(DAYS))
    assert np.allclose(once.incidence, counted.incidence) and np.allclose(once.variance, counted.variance)


def test_without_deaths_it_is_one_minus_kaplan_meier():
    status = [1 if s == 1 else 0 for s in STATUS]
    ci = stats.aalen_johansen(DAYS, status)
    km = KaplanMeierFitter().fit(DAYS, [s == 1 for s in status]).survival_function_.iloc[:, 0]
    for t, s in km.items():
        assert ci.incidence[ci.index_at(t)] == pytest.approx(1 - s)


def test_with_deaths_it_is_below_one_minus_kaplan_meier():
    ci = stats.aalen_johansen(DAYS, STATUS)
    km = KaplanMeierFitter().fit(DAYS, [s == 1 for s in STATUS]).survival_function_.iloc[:, 0]
    assert ci.incidence[-1] < 1 - km.iloc[-1]


def test_the_report_counts_a_death_as_competing_and_cuts_below_ten(builder, clinic):
    """12 patients from 1 Jan 2025: one fused 1 Mar, one died 1 Apr, the rest followed to 6 months (answered)."""
    eps = [builder.episode(index_date=INDEX) for _ in range(10)]
    for e in eps:
        builder.assessment(e, "6m", score=3)
    fused = builder.episode(index_date=INDEX)
    builder.procedure(fused, date=D(2025, 3, 1), kind="first_mtp_arthrodesis")
    builder.episode(index_date=INDEX, status="deceased", status_date=D(2025, 4, 1))
    facts.refresh()  # what the worker (or a page, once at its top) does before a report reads
    report = selectors.cohort_report(CohortFilter(), clinic_ids={clinic.pk}, as_of=AS_OF).document()
    c = report["competing_risks"]
    assert (c["n"], c["events"], c["deaths"]) == (12, 1, 1)
    rows = report["cumulative_incidence"]
    assert rows[0] == {"time": 0.0, "at_risk": 12, "events": 0, "competing": 0, "incidence": 0.0, "ci_low": 0.0,
                       "ci_high": pytest.approx(stats.wilson(0, 12)[1], abs=1e-6)}
    assert [(r["time"], r["events"], r["competing"]) for r in rows[1:]] == [(59, 1, 0), (90, 0, 1)]
    assert rows[-1]["incidence"] == pytest.approx(1 / 12, abs=1e-6)
    assert all(r["at_risk"] >= 10 for r in rows)
    assert "died without conversion" in c["shown"] and "fewer than 10" in c["shown"]


def test_the_table_stops_where_fewer_than_ten_remain():
    rows = [(d, s, 1) for d, s in zip(DAYS, STATUS)]
    table, c = selectors.incidence_section(rows)
    ci = stats.aalen_johansen(DAYS, STATUS)
    first_short = next(i for i, n in enumerate(ci.at_risk) if n < 10)
    assert c["cut_at_days"] == ci.time[first_short] == 240  # 10 at risk at 210, 9 just before 240
    assert [r["time"] for r in table] == [0, 30, 60, 90, 150, 180, 210]
    assert all(r["at_risk"] >= 10 for r in table)
    at12 = next(a for a in c["at"] if a["months"] == 12)
    assert at12["incidence"] is None and at12["too_few"]  # past the cut: no estimate
    at6 = next(a for a in c["at"] if a["months"] == 6)
    assert at6["incidence"] == pytest.approx(ci.incidence[ci.index_at(183)], abs=1e-6)
    assert "after 7.9 months" in c["shown"]


def test_too_few_patients_no_curve():
    table, c = selectors.incidence_section([(10, 1, 1), (20, 0, 3)])
    assert table == [] and c["too_few"] and all(a["incidence"] is None for a in c["at"])


@pytest.mark.usefixtures("estimates_at_any_n")
def test_the_report_without_deaths_says_both_agree(hand_cohort, clinic):
    facts.refresh()  # what the worker (or a page, once at its top) does before a report reads
    report = selectors.cohort_report(CohortFilter(), clinic_ids={clinic.pk}, as_of=AS_OF).document()
    c = report["competing_risks"]
    assert c["deaths"] == 1  # P8 died on 1 Mar 2025 without conversion
    assert c["events"] == report["survival"]["events"]


def test_small_numbers_on_every_new_figure(builder, clinic):
    """Four patients: no cumulative incidence, no change distribution, no group means; counts only."""
    for score in (2, 3, 5, 6):
        e = builder.episode(index_date=INDEX)
        builder.assessment(e, "baseline", score=7)
        builder.assessment(e, "6m", score=score)
    facts.refresh()  # what the worker (or a page, once at its top) does before a report reads
    report = selectors.cohort_report(CohortFilter(), clinic_ids={clinic.pk}, as_of=AS_OF).document()
    assert report["cumulative_incidence"] == [] and report["competing_risks"]["too_few"]
    assert all(a["incidence"] is None for a in report["competing_risks"]["at"])
    six = next(tp for tp in report["time_points"] if tp["time_point"] == "6m")["instruments"][0]
    assert six["change_distribution"] == [] and six["change_marks"]["n"] == 4 and six["change_marks"]["too_few"]
    loss = next(r for r in report["loss_to_follow_up"] if r["time_point"] == "6m")
    assert all(v["mean"] is None for g in loss["groups"] for v in (g["age"], g["grade"], g["baseline"]))
    assert loss["level"] == "too_few"
