"""Interval estimates and survival. Pure functions of counts and small summaries: the database does the counting.

* proportions: Wilson score interval (Wilson 1927), the interval DOMAIN.md asks for on every rate;
* differences of two proportions: Newcombe's hybrid score interval (Newcombe 1998, method 10), built from the two
  Wilson intervals;
* means: Student t interval from n, mean and sample standard deviation;
* medians: the distribution-free interval between two order statistics whose ranks come from Binomial(n, 1/2)
  (coverage at least 95%; none for n < 6, where no such pair of ranks exists);
* survival: Kaplan-Meier with lifelines (exponential Greenwood "log(-log)" 95% interval; before the first event,
  where Greenwood gives the empty interval [1, 1], the Wilson interval of no event among those still followed, in the
  estimates at given times and in the band drawn (KaplanMeier.band), though the table keeps lifelines' [1, 1] at 0),
  median follow-up by the reverse Kaplan-Meier method (Schemper & Smith 1996), log-rank test between two groups.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where it is used: loading it is a good part of every command's start-up
    import numpy as np


@functools.cache
def _scipy_stats():
    """scipy.stats, imported when a confidence interval first needs it (it takes seconds to import, and every
    process imports this module: analytics' event handlers are connected at start-up, e.g. by an import)."""
    from scipy import stats

    return stats

Z95 = 1.959963984540054  # two-sided 95% normal quantile
ALPHA = 0.05


@dataclass(frozen=True)
class Proportion:
    numerator: int
    denominator: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None

    def as_dict(self) -> dict:
        return {"numerator": self.numerator, "denominator": self.denominator, "rate": _r(self.rate),
                "ci_low": _r(self.ci_low), "ci_high": _r(self.ci_high)}


def _r(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(float(value), digits)


def wilson(numerator: int, denominator: int, z: float = Z95) -> tuple[float | None, float | None]:
    """Wilson score interval of numerator/denominator; (None, None) when the denominator is 0."""
    if denominator <= 0:
        return None, None
    if not 0 <= numerator <= denominator:
        raise ValueError(f"numerator {numerator} is outside 0..{denominator}")
    n, p = denominator, numerator / denominator
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    low = 0.0 if numerator == 0 else max(0.0, centre - half)
    high = 1.0 if numerator == denominator else min(1.0, centre + half)
    return low, high


def proportion(numerator: int, denominator: int) -> Proportion:
    low, high = wilson(numerator, denominator)
    rate = numerator / denominator if denominator else None
    return Proportion(numerator, denominator, rate, low, high)


def newcombe_difference(k1: int, n1: int, k2: int, n2: int) -> tuple[float | None, float | None, float | None]:
    """p1 - p2 with Newcombe's hybrid score 95% interval; Nones when either denominator is 0."""
    if n1 <= 0 or n2 <= 0:
        return None, None, None
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1)
    l2, u2 = wilson(k2, n2)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, low, high


def mean_ci(n: int, mean: float | None, sd: float | None) -> tuple[float | None, float | None]:
    """Student t 95% interval of a mean; needs n >= 2 and a standard deviation."""
    if n is None or n < 2 or mean is None or sd is None:
        return None, None
    half = _scipy_stats().t.ppf(1 - ALPHA / 2, n - 1) * sd / math.sqrt(n)
    return mean - half, mean + half


def mean_difference_ci(n1: int, m1: float | None, s1: float | None, n2: int, m2: float | None,
                       s2: float | None) -> tuple[float | None, float | None, float | None]:
    """Difference of two independent means with Welch's 95% interval."""
    if not n1 or not n2 or n1 < 2 or n2 < 2 or None in (m1, m2, s1, s2):
        return None, None, None
    v1, v2 = s1 * s1 / n1, s2 * s2 / n2
    d = m1 - m2
    se = math.sqrt(v1 + v2)
    if se == 0:
        return d, d, d
    df = (v1 + v2) ** 2 / ((v1 * v1) / (n1 - 1) + (v2 * v2) / (n2 - 1))
    half = _scipy_stats().t.ppf(1 - ALPHA / 2, df) * se
    return d, d - half, d + half


def median_ranks(n: int) -> tuple[int, int] | None:
    """1-based ranks of the middle order statistic(s): (k, k) for odd n, (k, k+1) for even n."""
    if n <= 0:
        return None
    return (n + 1) // 2, (n + 2) // 2


def median_ci_ranks(n: int) -> tuple[int, int] | None:
    """1-based ranks (j, n-j+1) of the order statistics bounding the median with >= 95% coverage:
    the largest j with P(Binomial(n, 1/2) < j) <= 2.5%. None when n is too small (n < 6)."""
    if n < 6:
        return None
    # j = the smallest k with P(X <= k) > 2.5%, so that P(X < j) = P(X <= j - 1) <= 2.5%.
    j = int(_scipy_stats().binom.ppf(ALPHA / 2, n, 0.5))
    if _scipy_stats().binom.cdf(j, n, 0.5) <= ALPHA / 2:
        j += 1
    return (j, n - j + 1) if j >= 1 else None


# ------------------------------------------------------------------------------------------------ survival

@dataclass
class KMRow:
    time: float
    at_risk: int
    events: int
    censored: int
    survival: float
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict:
        return {"time": self.time, "at_risk": self.at_risk, "events": self.events, "censored": self.censored,
                "survival": _r(self.survival), "ci_low": _r(self.ci_low), "ci_high": _r(self.ci_high)}


@dataclass
class KaplanMeier:
    n: int
    events: int
    table: list[KMRow]  # time 0 and every time with at least one event
    curve: list[KMRow]  # every distinct time (events or censoring), for drawing
    median: float | None  # median event-free time, None when the curve stays above 50%
    median_follow_up: float | None  # reverse Kaplan-Meier median
    durations_max: float | None

    @property
    def censored(self) -> int:
        return self.n - self.events

    def at(self, time: float) -> KMRow | None:
        """The estimate holding at `time` (the last step at or before it), None beyond the longest follow-up.
        After time 0 the interval is never the empty [1, 1] (see `band`)."""
        if not self.curve or self.durations_max is None or time > self.durations_max:
            return None
        if time <= 0:
            return self.curve[0]
        band = self.band()
        row = band[0]
        for candidate in band:
            if candidate.time > time:
                break
            row = candidate
        return row

    def band(self) -> list[KMRow]:
        """The step function to draw, with its 95% band: the curve, whose first step (from time 0 to the next time)
        carries the Wilson interval of no event among everyone followed when nothing happened at time 0, as every
        later step before the first event does. Only at the very instant 0 is survival certainly 1; the reported
        estimates (`at`) and the drawn band are the same numbers."""
        if not self.curve:
            return []
        first = self.curve[0]
        if first.survival == 1.0 and first.ci_low >= 1.0 and first.at_risk:
            first = KMRow(first.time, first.at_risk, first.events, first.censored, first.survival,
                          wilson(first.at_risk, first.at_risk)[0], first.ci_high)
        return [first, *self.curve[1:]]

    def events_by(self, time: float) -> int:
        """Number of events at or before `time`."""
        return sum(r.events for r in self.curve if r.time <= time)

    def at_risk(self, time: float) -> int:
        """Number still followed and event-free just before `time` (the at-risk table under the curve)."""
        for row in self.curve:
            if row.time >= time:
                return row.at_risk
        return 0


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def kaplan_meier(durations: Sequence[float], events: Sequence[bool]) -> KaplanMeier:
    """Kaplan-Meier estimate of event-free survival (lifelines), with its table and median follow-up."""
    n = len(durations)
    if n == 0:
        return KaplanMeier(0, 0, [], [], None, None, None)
    import numpy as np
    from lifelines import KaplanMeierFitter

    observed = np.asarray(events, dtype=bool)
    times_in = np.asarray(durations, dtype=float)
    # lifelines is given the frequency table (each distinct (time, event) pair once, its count as an integer weight):
    # the same sums, over a few thousand rows instead of one per episode
    (t_event, n_event), (t_censored, n_censored) = (np.unique(times_in[m], return_counts=True)
                                                    for m in (observed, ~observed))
    times_u = np.concatenate([t_event, t_censored])
    observed_u = np.concatenate([np.ones(len(t_event), dtype=bool), np.zeros(len(t_censored), dtype=bool)])
    weights = np.concatenate([n_event, n_censored]).astype(float)
    kmf = KaplanMeierFitter(alpha=ALPHA).fit(times_u, observed_u, weights=weights)
    table = kmf.event_table
    index = table.index
    # the columns read at once (one row of Python objects per distinct time; reading row by row through pandas
    # took a second at 100,000 episodes)
    sf = kmf.survival_function_.iloc[:, 0].loc[index].to_numpy(dtype=float)
    ci = kmf.confidence_interval_survival_function_.loc[index]
    low, high = ci.iloc[:, 0].to_numpy(dtype=float), ci.iloc[:, 1].to_numpy(dtype=float)
    curve = [KMRow(time=t, at_risk=r, events=o, censored=c, survival=s, ci_low=lo, ci_high=hi)
             for t, r, o, c, s, lo, hi in zip(index.to_numpy(dtype=float).tolist(),
                                              table["at_risk"].to_numpy().astype(np.int64).tolist(),
                                              table["observed"].to_numpy().astype(np.int64).tolist(),
                                              table["censored"].to_numpy().astype(np.int64).tolist(),
                                              sf.tolist(), low.tolist(), high.tolist())]
    for row in curve:
        if row.time > 0 and row.survival == 1.0 and row.ci_low >= 1.0:
            # No event yet: Greenwood's variance is 0 and gives the empty interval [1, 1], which claims certainty.
            # Use the Wilson interval of no event among those still followed instead.
            row.ci_low = wilson(row.at_risk, row.at_risk)[0]
    steps = [r for r in curve if r.time == 0 or r.events]
    if not steps or steps[0].time != 0:
        steps.insert(0, KMRow(0.0, n, 0, 0, 1.0, 1.0, 1.0))
    reverse = KaplanMeierFitter().fit(times_u, ~observed_u, weights=weights)
    return KaplanMeier(
        n=n, events=int(observed.sum()), table=steps, curve=curve, median=_finite(kmf.median_survival_time_),
        median_follow_up=_finite(reverse.median_survival_time_), durations_max=float(times_in.max()))


def logrank(durations_a, events_a, durations_b, events_b) -> dict | None:
    """Log-rank test of two groups' event-free survival; None when either group is empty or nothing happened."""
    if not len(durations_a) or not len(durations_b) or not (sum(events_a) + sum(events_b)):
        return None
    from lifelines.statistics import logrank_test

    result = logrank_test(list(durations_a), list(durations_b), [bool(e) for e in events_a],
                          [bool(e) for e in events_b])
    return {"test": "log-rank", "statistic": _r(result.test_statistic), "df": 1, "p_value": _r(result.p_value)}


# ------------------------------------------------------------------------------------------------ competing risks

CENSORED, EVENT, COMPETING = 0, 1, 2


@dataclass
class CumulativeIncidence:
    """Aalen-Johansen cumulative incidence of one event with a competing event, one row per distinct time (time 0
    first): at risk just before the time, events of interest, competing events, censored, the incidence and its
    95% interval."""
    time: np.ndarray
    at_risk: np.ndarray
    events: np.ndarray
    competing: np.ndarray
    censored: np.ndarray
    incidence: np.ndarray
    variance: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray

    @property
    def n(self) -> int:
        return int(self.at_risk[0]) if len(self.at_risk) else 0

    def index_at(self, time: float) -> int | None:
        """The row holding at `time` (the last at or before it); None before the first or past the last time."""
        import numpy as np

        i = int(np.searchsorted(self.time, time, side="right")) - 1
        return None if i < 0 or time > self.time[-1] else i

    def at_risk_at(self, time: float) -> int:
        """Number still followed and free of both events just before `time`."""
        import numpy as np

        i = int(np.searchsorted(self.time, time, side="left"))
        return int(self.at_risk[i]) if i < len(self.time) else 0


def aalen_johansen(durations, status, counts=None) -> CumulativeIncidence:
    """The Aalen-Johansen estimate of the cumulative incidence of the event (status 1) with a competing event
    (status 2; 0 = censored), vectorised over the distinct times; `counts` weights each row (a frequency table).

    F(t) = sum over event times t_j <= t of S(t_j-) d1_j / n_j, with S the Kaplan-Meier survival free of either event.
    Variance: the Greenwood-type delta-method estimator (Collett, Modelling Survival Data, 3rd ed., p. 411; the one
    lifelines' AalenJohansenFitter uses), summed in closed form with cumulative sums:

        Var F(t) = sum_j [(F(t) - F(t_j))^2 d_j / (n_j (n_j - d_j)) + S(t_j-)^2 d1_j (n_j - d1_j) / n_j^3
                          - 2 (F(t) - F(t_j)) S(t_j-) d1_j / n_j^2]

    (d_j = events of either kind; a time where everyone at risk has an event adds nothing to the first term, which
    would otherwise be 0 x infinity). The 95% interval is lifelines': on log(-log F) by the delta method, so it stays
    within (0, 1). Where F is still 0 that transform is undefined: the interval is [0, Wilson upper limit of no
    event among those at risk], as the Kaplan-Meier band before the first event (`kaplan_meier`).
    Ties between the two kinds of event are taken as they are (lifelines instead jitters them apart at random)."""
    import numpy as np

    t = np.asarray(durations, dtype=float)
    s = np.asarray(status, dtype=int)
    w = np.ones(len(t), dtype=np.int64) if counts is None else np.asarray(counts, dtype=np.int64)
    if len(t) == 0 or w.sum() == 0:
        empty = np.zeros(0)
        return CumulativeIncidence(*(empty,) * 9)
    times, inverse = np.unique(np.concatenate([[0.0], t]), return_inverse=True)
    inverse = inverse[1:]
    m = len(times)

    def tally(mask) -> np.ndarray:
        return np.bincount(inverse, weights=np.where(mask, w, 0), minlength=m).astype(np.int64)

    d1, d2, c = tally(s == EVENT), tally(s == COMPETING), tally(s == CENSORED)
    removed = d1 + d2 + c
    n = w.sum() - np.concatenate([[0], np.cumsum(removed)[:-1]])
    d = d1 + d2
    with np.errstate(divide="ignore", invalid="ignore"):
        hazard = np.where(n > 0, d / np.maximum(n, 1), 0.0)
        surv = np.cumprod(1.0 - hazard)
        lag = np.concatenate([[1.0], surv[:-1]])
        f = np.cumsum(lag * d1 / np.maximum(n, 1))
        a = np.where(n > d, d / (n * np.maximum(n - d, 1)), 0.0)
        b = lag ** 2 * d1 * (n - d1) / np.maximum(n, 1) ** 3
        cc = lag * d1 / np.maximum(n, 1) ** 2
        var = (f ** 2 * np.cumsum(a) - 2 * f * np.cumsum(f * a) + np.cumsum(f ** 2 * a) + np.cumsum(b)
               - 2 * (f * np.cumsum(cc) - np.cumsum(f * cc)))
        var = np.maximum(var, 0.0)
        positive = (f > 0) & (f < 1)
        log_f = np.log(np.where(positive, f, 0.5))
        centre = np.log(-log_f)
        se = np.sqrt(var) / (np.where(positive, f, 0.5) * np.abs(log_f))
        low = np.where(positive, np.exp(-np.exp(centre + Z95 * se)), f)
        high = np.where(positive, np.exp(-np.exp(centre - Z95 * se)), f)
    # before the first event: the Wilson upper limit of 0 events among n, z^2 / (n + z^2)
    high = np.where((f == 0) & (n > 0), Z95 ** 2 / (np.maximum(n, 1) + Z95 ** 2), high)
    return CumulativeIncidence(times, n.astype(np.int64), d1, d2, c, f, var, low, high)
