"""The adjusted comparison in the comparison report (issue 16 item 4): from the registry through the facts."""

from __future__ import annotations

import datetime as dt

from orthoreg.analytics import facts, selectors
from orthoreg.analytics.filters import CohortFilter

from .conftest import AS_OF, INDEX

D = dt.date


def _cohort(builder, kind, n, grade_of, improved_of):
    for i in range(n):
        grade = grade_of(i)
        e = builder.episode(index_date=INDEX, kind=kind, grade=grade, birth=D(1970 + i % 3, 1, 1))
        builder.assessment(e, "baseline", score=7)
        builder.assessment(e, "6m", score=7 - improved_of(i, grade))


def test_the_comparison_carries_an_adjusted_difference_with_balance(builder, clinic):
    # bone marrow concentrate: 70% grade 2; hyaluronic acid: 70% grade 3; grade 3 improves less
    _cohort(builder, "bmc", 30, lambda i: 2 if i % 10 < 7 else 3, lambda i, g: 3 if g == 2 or i % 2 else 0)
    _cohort(builder, "hyaluronic_acid", 30, lambda i: 3 if i % 10 < 7 else 2,
            lambda i, g: 3 if g == 2 or i % 3 == 0 else 1)
    facts.refresh()  # what the worker (or a page, once at its top) does before a report reads
    report = selectors.comparison_report(CohortFilter(procedures=("bmc",)),
                                         CohortFilter(procedures=("hyaluronic_acid",)),
                                         clinic_ids={clinic.pk}, as_of=AS_OF).document()
    adj = report["adjusted"]
    assert "reason" not in adj, (adj.get("reason"), str(adj.get("overlap")))
    assert adj["time_point"] == "6m" and adj["definition"] == "mcid"
    assert adj["ci_low"] <= adj["difference"] <= adj["ci_high"]
    balance = {r["covariate"]: r for r in adj["balance"]}
    assert {"age", "grade"} <= set(balance)
    assert balance["grade"]["flagged_before"] and abs(balance["grade"]["smd_after"]) < abs(
        balance["grade"]["smd_before"])
    assert "only in what was measured" in adj["sentence"]
    assert adj["surgery_free"]["difference"] == 0  # nobody converted
    assert adj["overlap"]["outside_a"] <= 0.1


def test_too_few_gives_a_reason_and_no_figure(hand_cohort, clinic):
    facts.refresh()  # what the worker (or a page, once at its top) does before a report reads
    report = selectors.comparison_report(CohortFilter(sex="female"), CohortFilter(sex="male"),
                                         clinic_ids={clinic.pk}, as_of=AS_OF).document()
    adj = report["adjusted"]
    assert adj["reason"] and "difference" not in adj
