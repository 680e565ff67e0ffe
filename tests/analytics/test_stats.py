"""Statistics against known values: Wilson against statsmodels, Newcombe's published example, Kaplan-Meier and
the log-rank test against lifelines on a fixed data set, the median's order-statistic ranks."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lifelines import KaplanMeierFitter
from lifelines.statistics import logrank_test
from scipy import stats as sst
from statsmodels.stats.proportion import proportion_confint

from orthoreg.analytics import stats


@given(st.integers(min_value=1, max_value=5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_matches_statsmodels(pair):
    k, n = pair
    low, high = stats.wilson(k, n)
    expected = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert low == pytest.approx(expected[0], abs=1e-9)
    assert high == pytest.approx(expected[1], abs=1e-9)


def test_wilson_edges():
    assert stats.wilson(0, 0) == (None, None)
    assert stats.wilson(0, 10)[0] == 0.0
    assert stats.wilson(10, 10)[1] == 1.0
    with pytest.raises(ValueError):
        stats.wilson(11, 10)
    p = stats.proportion(3, 0)
    assert p.rate is None and p.as_dict()["ci_low"] is None


def test_newcombe_published_example():
    # Newcombe, Stat Med 1998;17:873-890, table II example (56/70 vs 48/80): method 10 gives 0.0524 to 0.3339.
    d, low, high = stats.newcombe_difference(56, 70, 48, 80)
    assert d == pytest.approx(0.2)
    assert low == pytest.approx(0.0524, abs=5e-4)
    assert high == pytest.approx(0.3339, abs=5e-4)
    assert stats.newcombe_difference(1, 0, 1, 2) == (None, None, None)


def test_mean_intervals():
    low, high = stats.mean_ci(10, 5.0, 2.0)
    half = sst.t.ppf(0.975, 9) * 2 / math.sqrt(10)
    assert (low, high) == (pytest.approx(5 - half), pytest.approx(5 + half))
    assert stats.mean_ci(1, 5.0, None) == (None, None)
    d, low, high = stats.mean_difference_ci(20, 3.0, 1.0, 30, 2.0, 1.5)
    welch = sst.ttest_ind_from_stats(3.0, 1.0, 20, 2.0, 1.5, 30, equal_var=False)
    se = d / welch.statistic
    df = (1 / 20 + 2.25 / 30) ** 2 / ((1 / 20) ** 2 / 19 + (2.25 / 30) ** 2 / 29)
    assert low == pytest.approx(1 - sst.t.ppf(0.975, df) * se)
    assert high == pytest.approx(1 + sst.t.ppf(0.975, df) * se)


@pytest.mark.parametrize(("n", "ranks"), [(5, None), (6, (1, 6)), (10, (2, 9)), (20, (6, 15)), (100, (40, 61))])
def test_median_ci_ranks(n, ranks):
    assert stats.median_ci_ranks(n) == ranks


@given(st.integers(min_value=6, max_value=3000))
def test_median_ci_coverage_is_at_least_95(n):
    j, k = stats.median_ci_ranks(n)
    assert k == n - j + 1
    assert sst.binom.cdf(j - 1, n, 0.5) <= 0.025 < sst.binom.cdf(j, n, 0.5)


DURATIONS = [5, 8, 8, 12, 15, 15, 15, 21, 30, 33, 40, 40, 52, 60, 61, 75, 90, 90, 120, 150]
EVENTS = [1, 0, 1, 1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1]


def test_kaplan_meier_matches_lifelines():
    km = stats.kaplan_meier(DURATIONS, EVENTS)
    ref = KaplanMeierFitter().fit(DURATIONS, [bool(e) for e in EVENTS])
    sf = ref.survival_function_.iloc[:, 0]
    ci = ref.confidence_interval_survival_function_
    table = ref.event_table
    assert (km.n, km.events) == (20, sum(EVENTS))
    for row in km.table:
        assert row.survival == pytest.approx(sf.loc[row.time])
        assert row.ci_low == pytest.approx(ci.iloc[:, 0].loc[row.time])
        assert row.ci_high == pytest.approx(ci.iloc[:, 1].loc[row.time])
        assert row.at_risk == table.loc[row.time, "at_risk"]
        assert row.events == table.loc[row.time, "observed"]
    assert [r.time for r in km.table] == [0.0] + sorted({d for d, e in zip(DURATIONS, EVENTS) if e})
    assert km.median == ref.median_survival_time_
    reverse = KaplanMeierFitter().fit(DURATIONS, [not e for e in EVENTS])
    assert km.median_follow_up == reverse.median_survival_time_
    # the step function holds between events
    assert km.at(14).survival == pytest.approx(sf.loc[12])
    assert km.at(1000) is None
    assert km.at_risk(15) == 16


def test_kaplan_meier_before_the_first_event_is_not_certain():
    km = stats.kaplan_meier([10, 20, 30, 40], [0, 0, 0, 1])
    before = km.at(25)
    assert before.survival == 1.0
    assert before.ci_high == 1.0 and before.ci_low == pytest.approx(stats.wilson(3, 3)[0])  # 3 at risk at 20
    assert stats.kaplan_meier([], []).n == 0


def test_logrank_matches_lifelines():
    a, b = DURATIONS[:10], DURATIONS[10:]
    ea, eb = EVENTS[:10], EVENTS[10:]
    mine = stats.logrank(a, ea, b, eb)
    ref = logrank_test(a, b, ea, eb)
    assert mine["statistic"] == pytest.approx(ref.test_statistic, abs=1e-6)
    assert mine["p_value"] == pytest.approx(ref.p_value, abs=1e-6)
    assert stats.logrank([], [], b, eb) is None
    assert stats.logrank([1, 2], [0, 0], [3], [0]) is None
