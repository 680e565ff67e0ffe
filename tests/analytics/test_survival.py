"""Survival free of conversion as of a date."""

from __future__ import annotations

import datetime as dt

from orthoreg.analytics import selectors
from orthoreg.analytics.filters import CohortFilter

from .conftest import AS_OF

D = dt.date


def test_a_conversion_after_the_as_of_date_is_censored_there(hand_cohort, clinic):
    """P10 is fused on 15 Aug 2025 (226 days). As of 1 Aug 2025 that has not happened: P10 is event-free and
    censored at the as-of date (212 days), not an event."""
    as_of = D(2025, 8, 1)
    report = selectors.cohort_report(CohortFilter(), clinic_ids={clinic.pk}, as_of=as_of)
    s = report["survival"]
    assert (s["n"], s["events"], s["censored"]) == (10, 1, 9)  # only P7's fusion (1 May 2025)
    assert [r["time"] for r in s["table"]] == [0, 120]
    assert s["max_follow_up_days"] == (as_of - D(2025, 1, 1)).days == 212
    assert s["median_event_free_days"] is None
    # as of a later date the same fusion is an event at 226 days
    later = selectors.cohort_report(CohortFilter(), clinic_ids={clinic.pk}, as_of=AS_OF)["survival"]
    assert later["events"] == 2 and [r["time"] for r in later["table"]] == [0, 120, 226]


def test_comparison_log_rank_uses_the_as_of_date(hand_cohort, clinic):
    report = selectors.comparison_report(CohortFilter(sex="female"), CohortFilter(sex="male"),
                                         clinic_ids={clinic.pk}, as_of=D(2025, 8, 1))
    assert [c["survival"]["events"] for c in report["cohorts"]] == [0, 1]  # P7 (male) only
