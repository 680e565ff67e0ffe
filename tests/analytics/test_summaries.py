"""Means of few answers: the t interval stays on the instrument's scale, and fewer than five are marked."""

from __future__ import annotations

import datetime as dt

import pytest

from orthoreg.analytics import facts, selectors, summaries
from orthoreg.analytics.filters import CohortFilter

D = dt.date


def test_fewer_than_five_give_no_estimate():
    """The small-number rule: n only, no mean, median or interval (the JSON and API carry none either)."""
    s = summaries.weighted_summary([(0, 1), (10, 1), (5, 1), (7, 1)], (0, 10))
    assert s["too_few"] is True and s["n"] == 4
    assert all(s[k] is None for k in summaries.SUMMARY_ESTIMATES)
    r = summaries.rate(1, 0, 7)  # "100% responders (1/1)"
    assert r["too_few"] and r["denominator"] == 1 and all(r[k] is None for k in summaries.RATE_ESTIMATES)
    assert summaries.weighted_summary([(4, 3), (5, 2)])["mean"] == pytest.approx(4.4)


@pytest.mark.usefixtures("estimates_at_any_n")
def test_mean_interval_is_clamped_to_the_scale():
    s = summaries.weighted_summary([(0, 1), (10, 1), (5, 1)], (0, 10))  # NPRS 0, 5, 10: t gives -7.4 to 17.4
    assert (s["mean"], s["ci_low"], s["ci_high"]) == (5, 0, 10)
    unclamped = summaries.weighted_summary([(0, 1), (10, 1), (5, 1)])
    assert unclamped["ci_low"] < 0 and unclamped["ci_high"] > 10
    many = summaries.weighted_summary([(4, 3), (5, 3)], (0, 10))
    assert many["too_few"] is False and 0 < many["ci_low"] < many["ci_high"] < 10


@pytest.mark.usefixtures("estimates_at_any_n")
def test_report_scores_and_changes_stay_on_the_scale(builder, clinic):
    for base, six in ((9, 0), (1, 10), (5, 9)):
        e = builder.episode(index_date=D(2025, 1, 1))
        builder.assessment(e, "baseline", score=base)
        builder.assessment(e, "6m", score=six)
    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    report = selectors.cohort_report(CohortFilter(), clinic_ids={clinic.pk}, as_of=D(2025, 9, 1)).document()
    tp = next(t for t in report["time_points"] if t["time_point"] == "6m")
    row = next(i for i in tp["instruments"] if i["instrument"] == "nprs")
    score, change = row["score"], row["change"]
    assert score["n"] == 3
    assert 0 <= score["ci_low"] <= score["mean"] <= score["ci_high"] <= 10
    assert score["ci_low"] == 0 and score["ci_high"] == 10  # t at n=3 runs far past both ends
    assert -10 <= change["ci_low"] and change["ci_high"] <= 10 and change["mean"] == pytest.approx(4 / 3, abs=1e-6)
