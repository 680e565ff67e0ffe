"""The adjusted comparison in the comparison report (issue 16 item 4): from the registry through the facts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from orthoreg.analytics import cohorts, facts, metrics, selectors, summaries
from orthoreg.analytics import definitions as defs
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


def _without_time(document):
    return {k: v for k, v in document.items() if k != "generated_at"}


def test_each_cohort_of_a_comparison_is_its_own_report(hand_cohort, clinic):
    """A comparison counts both outcome tables together and takes the baseline of the groups from the rows of its
    adjusted section: each of its cohorts is still exactly the report of that cohort alone."""
    facts.refresh()
    for a, b in ((CohortFilter(sex="female"), CohortFilter(sex="male")),  # disjoint
                 (CohortFilter(grade_min=1), CohortFilter(sex="male"))):  # sharing patients
        report = selectors.comparison_report(a, b, clinic_ids={clinic.pk}, as_of=AS_OF, use_cache=False)
        for f, cohort in zip((a, b), report.cohorts):
            alone = selectors.cohort_report(f, clinic_ids={clinic.pk}, as_of=AS_OF, use_cache=False)
            assert _without_time(cohort.document()) == _without_time(alone.document())


def test_baseline_of_the_groups_from_the_rows_is_the_database_s(hand_cohort, clinic):
    facts.refresh()
    info = metrics.instrument_infos()[defs.PAIN_INSTRUMENT]
    members = cohorts.cohort_episodes(CohortFilter(), clinic_ids={clinic.pk})
    counted = metrics.baseline_by_group(metrics.eligible_outcomes(members, as_of=AS_OF).filter(time_point="6m"),
                                        info)
    rows = metrics.comparison_rows(members, as_of=AS_OF, time_point="6m", info=info)
    from_rows = summaries.baseline_groups(rows, info, "6m")
    assert {g["group"] for g in counted} == {"responder", "non_responder", "lost", "converted"}
    by_group = {g["group"]: g for g in from_rows}
    for group in counted:
        mine = by_group.pop(group["group"])
        assert set(mine) == set(group)
        for key, value in group.items():
            assert mine[key] == (pytest.approx(float(value)) if isinstance(value, float | Decimal) else value), key
    assert not by_group


def test_rows_of_the_adjusted_section_come_in_the_order_of_the_episodes(builder, clinic):
    """The bootstrap draws its seeded resampling counts for the rows in the order they come: in the order of the
    episodes, whatever the plan (an index on condition and site returned them grouped by condition)."""
    for i in range(12):
        e = builder.episode(index_date=INDEX, condition=("oa_primary", "hallux_rigidus")[i % 2],
                            site=("knee", "first_mtp")[i % 2])
        builder.assessment(e, "baseline", score=7)
    facts.refresh()
    info = metrics.instrument_infos()[defs.PAIN_INSTRUMENT]
    members = cohorts.cohort_episodes(CohortFilter(procedures=("bmc",)), clinic_ids={clinic.pk})
    pks = [row[0] for row in metrics.comparison_rows(members, as_of=AS_OF, time_point="6m", info=info)]
    assert len(pks) == 12 and pks == sorted(pks)
