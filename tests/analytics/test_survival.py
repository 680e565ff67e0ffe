"""Survival free of conversion as of a date, and the interval before the first conversion."""

from __future__ import annotations

import datetime as dt

import pytest

from orthoreg.analytics import facts, selectors, stats
from orthoreg.analytics.filters import CohortFilter

from .conftest import AS_OF

D = dt.date


@pytest.mark.usefixtures("estimates_at_any_n")
def test_a_conversion_after_the_as_of_date_is_censored_there(hand_cohort, clinic):
    """P10 is fused on 15 Aug 2025 (226 days). As of 1 Aug 2025 that has not happened: P10 is event-free and
    censored at the as-of date (212 days), not an event."""
    as_of = D(2025, 8, 1)
    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    report = selectors.cohort_report(CohortFilter(), clinic_ids={clinic.pk}, as_of=as_of).document()
    s = report["survival"]
    assert (s["n"], s["events"], s["censored"]) == (10, 1, 9)  # only P7's fusion (1 May 2025)
    assert [r["time"] for r in s["table"]] == [0, 120]
    assert s["max_follow_up_days"] == (as_of - D(2025, 1, 1)).days == 212
    assert s["median_event_free_days"] is None
    # as of a later date the same fusion is an event at 226 days
    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    later = selectors.cohort_report(CohortFilter(), clinic_ids={clinic.pk}, as_of=AS_OF).document()["survival"]
    assert later["events"] == 2 and [r["time"] for r in later["table"]] == [0, 120, 226]


def test_comparison_log_rank_uses_the_as_of_date(hand_cohort, clinic):
    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    report = selectors.comparison_report(CohortFilter(sex="female"), CohortFilter(sex="male"),
                                         clinic_ids={clinic.pk}, as_of=D(2025, 8, 1)).document()
    assert [c["survival"]["events"] for c in report["cohorts"]] == [0, 1]  # P7 (male) only


def test_no_event_the_estimates_and_the_drawn_band_carry_the_wilson_interval():
    km = stats.kaplan_meier([181] * 12, [0] * 12)
    low = stats.wilson(12, 12)[0]
    assert km.table[0].ci_low == 1.0  # at the very instant 0 survival is certainly 1 (lifelines' table)
    # at 3 months nobody has been censored yet: still 12 followed, never the empty interval [1, 1]
    assert km.at(91).ci_low == pytest.approx(low) and km.at(91).ci_high == 1.0
    assert km.at(0).ci_low == 1.0
    band = km.band()
    assert band[0].time == 0 and band[0].ci_low == pytest.approx(low)
    assert all(r.ci_low < 1 for r in band)


def test_the_report_curve_is_what_the_estimates_at_given_times_say(builder, clinic):
    for _ in range(12):
        e = builder.episode(index_date=D(2025, 1, 1))
        builder.assessment(e, "6m", score=3)  # followed to 30 Jun 2025, no conversion
    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    s = selectors.cohort_report(CohortFilter(), clinic_ids={clinic.pk}, as_of=AS_OF).document()["survival"]
    assert s["events"] == 0
    at3 = next(a for a in s["at"] if a["months"] == 3)
    assert at3["ci_low"] == pytest.approx(stats.wilson(12, 12)[0], abs=1e-6) and at3["events"] == 0
    assert s["curve"][0]["time"] == 0 and s["curve"][0]["ci_low"] == at3["ci_low"]
    assert s["table"][0]["ci_low"] == 1.0  # the JSON table is unchanged
