"""Loss to follow-up judged (issue 16 item 3): completeness labels, best / worst / complete case side by side, and
the baseline of responders, non-responders, the lost and the followed, on the hand-built cohort (conftest.py)."""

from __future__ import annotations

import math

import pytest

from orthoreg.analytics import facts, selectors, summaries
from orthoreg.analytics.filters import CohortFilter

from .conftest import AS_OF


@pytest.mark.parametrize("rate, level", [(0.79, "serious"), (0.80, "some"), (0.95, "some"), (0.951, "little"),
                                         (None, "none")])
def test_completeness_labels(rate, level):
    assert summaries.completeness_judgement(rate)[0] == level


def _six(report):
    return next(r for r in report["loss_to_follow_up"] if r["time_point"] == "6m")


def test_hand_cohort_at_six_months(hand_cohort, clinic):
    """Eligible at 6 months: P1-P7 and P10 (P8 died, P9 not due); answered P1-P5 and P10 (6 of 8 = 75%: serious).
    NPRS MCID (2 points or 30%): responders P1 (8->2), P2 (6->3), P4 (10->7), P5 (3->2); non-responders P3 (5->4),
    P10 (8->8); lost P6 (baseline 7); converted P7."""
    facts.refresh()  # what the worker (or a page, once at its top) does before a report reads
    report = selectors.cohort_report(CohortFilter(), clinic_ids={clinic.pk}, as_of=AS_OF).document()
    six = _six(report)
    assert (six["eligible"], six["responded"], six["completeness"], six["level"]) == (8, 6, 0.75, "serious")
    assert "seriously biased" in six["judgement"]
    groups = {g["group"]: g for g in six["groups"]}
    assert {k: g["n"] for k, g in groups.items()} == {"responders": 4, "non_responders": 2, "followed": 6, "lost": 1}
    # fewer than 5: no mean (the small-number rule); the followed six have one
    assert groups["responders"]["baseline"]["mean"] is None and groups["responders"]["baseline"]["too_few"]
    followed = groups["followed"]["baseline"]
    values = [8, 6, 5, 10, 3, 8]
    mean = sum(values) / 6
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 5)
    assert followed["mean"] == pytest.approx(mean, abs=1e-3) and followed["sd"] == pytest.approx(sd, abs=1e-3)
    assert groups["followed"]["age"]["mean"] == 44  # all born 15 Jun 1980, treated 1 Jan 2025
    assert six["lost_vs_followed"]["baseline"]["too_few"]  # one lost patient: no comparison
    mcid = six["cases"]["mcid"]
    assert mcid["known"] == 7 and mcid["eligible"] == 8  # 4 responders, 2 non-responders, 1 converted


@pytest.mark.usefixtures("estimates_at_any_n")
def test_groups_pool_exactly(hand_cohort, clinic):
    facts.refresh()  # what the worker (or a page, once at its top) does before a report reads
    report = selectors.cohort_report(CohortFilter(), clinic_ids={clinic.pk}, as_of=AS_OF).document()
    six = _six(report)
    groups = {g["group"]: g for g in six["groups"]}
    assert groups["responders"]["baseline"]["mean"] == pytest.approx((8 + 6 + 10 + 3) / 4)
    assert groups["non_responders"]["baseline"]["mean"] == pytest.approx(6.5)
    assert groups["lost"]["baseline"]["mean"] == 7
    mcid = six["cases"]["mcid"]
    # complete case 4/7, worst case 4/8 (the lost one a failure), best case 5/8
    assert (mcid["complete_case"], mcid["worst_case"], mcid["best_case"]) == pytest.approx((4 / 7, 0.5, 5 / 8),
                                                                                          abs=1e-6)
    diff = six["responders_vs_non_responders"]["baseline"]
    assert diff["difference"] == pytest.approx(6.75 - 6.5, abs=1e-3) and diff["differs"] is False


def test_methods_section_is_written_from_the_report(hand_cohort, clinic):
    facts.refresh()  # what the worker (or a page, once at its top) does before a report reads
    report = selectors.cohort_report(CohortFilter(condition="hallux_rigidus", consented_only=True),
                                     clinic_ids={clinic.pk}, as_of=AS_OF).document()
    items = {m["item"]: m["text"] for m in report["methods"]}
    assert list(items) == ["Data source", "Time span", "Inclusion", "Outcomes", "Completeness",
                           "Statistical methods", "Limits", "Reporting"]
    assert clinic.name in items["Data source"]
    assert "2025-01-01" in items["Time span"] and "as of 2025-09-01" in items["Time span"]
    assert "Hallux rigidus" in items["Inclusion"] and "consented" in items["Inclusion"]
    assert "Farrar" not in items["Outcomes"] or "MCID" in items["Outcomes"]
    assert "Pain (MCID 2 or 30%)" in items["Outcomes"]
    assert "6 months: 6 of 8 due answered (75%)" in items["Completeness"]
    assert "Aalen-Johansen" in items["Statistical methods"]
    assert "6 months below 80% answered" in items["Limits"]
