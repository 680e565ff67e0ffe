"""Case-mix adjusted comparison of two cohorts by inverse probability of treatment weighting (issue 16 item 4).

    result = adjusted_difference(covariates, in_a, responder, days, converted)

* Propensity: the probability of being in cohort A given the covariates the data allow (age, sex, condition, grade,
  baseline pain, clinic: numbers as they are with a missing indicator, categories as indicators; columns constant
  over both cohorts dropped), by logistic regression (statsmodels Logit).
* Weights: stabilised (P(A) / e for A, P(B) / (1 - e) for B), truncated at their 1st and 99th percentiles.
  The estimand is the average treatment effect over both cohorts.
* Balance: standardised mean differences of every covariate column before and after weighting (pooled SD of the
  unweighted groups), flagged above 0.1.
* Overlap: the propensity scores of each cohort in ten bins of 0.1; no adjusted figure when more than 10% of either
  cohort lies in fifths of the scale where the other cohort has nobody, when a cohort has fewer than MIN_GROUP patients with a known
  outcome, or when the model does not converge (e.g. a covariate separates the cohorts).
* Estimates: the weighted difference in responder rates (A minus B, among patients with a known outcome) and in
  survival free of surgery at `horizon_days` (weighted Kaplan-Meier), each with a bootstrap 95% percentile interval:
  Poisson(1) resampling weights, vectorised over the replicates (B = BOOTSTRAP, seeded, so a report is
  reproducible). The propensity model is not refitted in each replicate; ignoring that it was estimated usually
  makes the interval of an IPW estimate slightly wider, not narrower (Lunceford & Davidian, Stat Med 2004;23:2937).

Weighting removes only the differences that were measured; the report says so beside every adjusted figure.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

MIN_GROUP = 20  # patients with a known outcome per cohort, below which no adjusted figure is given
MAX_OUTSIDE = 0.10  # share of a cohort outside the other's propensity range above which overlap is too poor
SMD_FLAG = 0.1
BOOTSTRAP = 300
CHUNK = 50  # replicates per vectorised block (memory: CHUNK x patients floats)
SEED = 16_2026
TRUNCATE = (1.0, 99.0)  # percentiles

SENTENCE = ("Weighting makes the two cohorts alike only in what was measured and put in the model ({covariates}); "
            "differences that were not measured (activity, expectations, why a treatment was chosen) remain, so "
            "this is still not what a randomized trial would show.")


def design(columns: dict[str, tuple[str, Sequence]]) -> tuple[np.ndarray, list[str]]:
    """The covariate matrix (no intercept) from named columns: ("number", values with None for missing) gives the
    value (missing set to the mean) and, when any is missing, a missing indicator; ("category", values) gives one
    indicator per category but the most common. Columns constant over everyone are dropped."""
    out, names = [], []
    for name, (kind, values) in columns.items():
        if kind == "number":
            raw = np.array(values, dtype=float)  # None: nan
            missing = np.isnan(raw)
            if missing.all():
                continue
            filled = np.where(missing, np.nanmean(raw), raw)
            out.append(filled)
            names.append(name)
            if missing.any():
                out.append(missing.astype(float))
                names.append(f"{name} missing")
        else:
            labels = np.array(["" if v is None else str(v) for v in values])
            kinds, counts = np.unique(labels, return_counts=True)
            for kind_ in kinds[np.argsort(-counts, kind="stable")][1:]:
                out.append((labels == kind_).astype(float))
                names.append(f"{name}: {kind_ or 'not recorded'}")
    if not out:
        return np.zeros((len(next(iter(columns.values()))[1]) if columns else 0, 0)), []
    x = np.column_stack(out)
    keep = x.std(axis=0) > 0
    return x[:, keep], [n for n, k in zip(names, keep) if k]


def _smd(x: np.ndarray, a: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Standardised mean differences of each column, A minus B, over the pooled SD of the unweighted groups."""
    wa = np.ones(a.sum()) if w is None else w[a]
    wb = np.ones((~a).sum()) if w is None else w[~a]
    ma = (x[a] * wa[:, None]).sum(0) / wa.sum()
    mb = (x[~a] * wb[:, None]).sum(0) / wb.sum()
    sd = np.sqrt((x[a].var(0, ddof=1) + x[~a].var(0, ddof=1)) / 2)
    return np.where(sd > 0, (ma - mb) / np.where(sd > 0, sd, 1), 0.0)


def propensity(x: np.ndarray, a: np.ndarray) -> np.ndarray | None:
    """P(A | x) by logistic regression (statsmodels Logit, intercept added); None when it cannot be fitted."""
    import statsmodels.api as sm  # heavy: imported only when a comparison is adjusted
    from statsmodels.tools.sm_exceptions import (
        ConvergenceWarning,
        PerfectSeparationError,
        PerfectSeparationWarning,
    )

    design_ = sm.add_constant(x, has_constant="add")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            # statsmodels 0.14 warns (at every iteration) where older releases raised: the same verdict, no noise
            warnings.simplefilter("error", PerfectSeparationWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            fit = sm.Logit(a.astype(float), design_).fit(disp=0, maxiter=100)
    except (PerfectSeparationError, PerfectSeparationWarning, ConvergenceWarning, np.linalg.LinAlgError, ValueError):
        return None
    ps = fit.predict(design_)
    if not np.all(np.isfinite(ps)) or ps.min() <= 1e-6 or ps.max() >= 1 - 1e-6:
        return None
    return ps


def stabilised_weights(ps: np.ndarray, a: np.ndarray) -> np.ndarray:
    share = a.mean()
    w = np.where(a, share / ps, (1 - share) / (1 - ps))
    low, high = np.percentile(w, TRUNCATE)
    return np.clip(w, low, high)


def overlap(ps: np.ndarray, a: np.ndarray) -> dict:
    """The propensity scores of each cohort in ten bins of 0.1 (drawn), and the share of each cohort in fifths of the
    scale (0-0.2, ..., 0.8-1) where the other cohort has nobody: patients with no comparable patient in the other."""
    edges = np.linspace(0, 1, 11)
    ha, hb = np.histogram(ps[a], edges)[0], np.histogram(ps[~a], edges)[0]
    fa, fb = ha.reshape(5, 2).sum(1), hb.reshape(5, 2).sum(1)
    return {"bins": [round(float(e), 2) for e in edges], "a": ha.tolist(), "b": hb.tolist(),
            "outside_a": round(float(fa[fb == 0].sum() / max(fa.sum(), 1)), 4),
            "outside_b": round(float(fb[fa == 0].sum() / max(fb.sum(), 1)), 4)}


def _poisson_table(bits: int = 16) -> np.ndarray:
    """Poisson(1) counts by inverse CDF over 2^bits equally likely codes (drawing uint16 codes and looking them up is
    an order of magnitude faster than numpy's Poisson sampler; the probabilities are exact to 2^-16)."""
    from scipy.stats import poisson

    cdf = poisson.cdf(np.arange(20), 1.0)
    codes = (np.arange(2 ** bits) + 0.5) / 2 ** bits
    return np.searchsorted(cdf, codes).astype(np.float64)


POISSON = _poisson_table()


def _replicates(n: int, rng: np.random.Generator, b: int):
    """Blocks of Poisson(1) resampling counts, n patients x CHUNK replicates each (patients first: the sparse
    products below then read them without a copy)."""
    done = 0
    while done < b:
        k = min(CHUNK, b - done)
        yield np.take(POISSON, rng.integers(0, len(POISSON), size=(n, k), dtype=np.uint16))  # patients x replicates
        done += k


class _Sums:
    """What the estimates of one cohort need from each replicate, as one sparse linear map of the resampling counts
    (built once per cohort, applied to every block of replicates in one product): row 0 the weight of responders
    among those with a known outcome, row 1 the weight of those with a known outcome, then per time bin (one per
    distinct day up to the horizon, and one after it) the weight leaving the risk set there and the weight of the
    conversions there."""

    def __init__(self, w: np.ndarray, y: np.ndarray, known: np.ndarray, days: np.ndarray, event: np.ndarray,
                 horizon: float):
        from scipy import sparse

        times = np.unique(days[days <= horizon])
        self.k = k = len(times)
        bins = np.where(days <= horizon, np.searchsorted(times, days), k)
        n = len(days)
        rows = np.concatenate([np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.int64), 2 + bins, 3 + k + bins])
        values = np.concatenate([np.where(known, w * y, 0), np.where(known, w, 0), w, np.where(event, w, 0)])
        kept = values != 0
        self.matrix = sparse.csr_matrix((values[kept], (rows[kept], np.tile(np.arange(n), 4)[kept])),
                                        shape=(2 + 2 * (k + 1), n))

    def estimates(self, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(weighted responder rate, weighted Kaplan-Meier survival at the horizon) for each column of resampling
        counts `c` (patients x replicates)."""
        k = self.k
        sums = np.asarray(self.matrix @ c)  # rows x replicates
        rate = sums[0] / sums[1]
        removed, events = sums[2:3 + k].T, sums[3 + k:3 + k + k].T  # replicates x bins
        at_risk = np.cumsum(removed[:, ::-1], axis=1)[:, ::-1][:, :k]
        with np.errstate(divide="ignore", invalid="ignore"):
            factors = np.where(at_risk > 0, 1 - events / np.where(at_risk > 0, at_risk, 1), 1.0)
        return rate, np.prod(factors, axis=1)


def _interval(point: float, boot: np.ndarray) -> dict:
    boot = boot[np.isfinite(boot)]
    low, high = np.percentile(boot, [2.5, 97.5]) if len(boot) else (np.nan, np.nan)
    return {"difference": round(float(point), 6), "ci_low": round(float(low), 6), "ci_high": round(float(high), 6)}


def adjusted_difference(x: np.ndarray, names: list[str], a: np.ndarray, responder: np.ndarray, days: np.ndarray,
                        converted: np.ndarray, *, horizon_days: float = 365.0, replicates: int = BOOTSTRAP,
                        seed: int = SEED) -> dict:
    """The IPW-adjusted differences (A minus B) in responder rate (`responder`: 1, 0 or nan when unknown) and in
    survival free of surgery at `horizon_days`; with `reason` and no figure when numbers or overlap are too poor."""
    a = np.asarray(a, dtype=bool)
    y = np.asarray(responder, dtype=float)
    known = np.isfinite(y)
    y0 = np.where(known, y, 0.0)
    days = np.asarray(days, dtype=float)
    event = np.asarray(converted, dtype=bool)
    out: dict = {"method": "inverse probability of treatment weighting (stabilised, truncated at the 1st and 99th "
                           "percentiles), propensity by logistic regression; bootstrap 95% percentile intervals",
                 "covariates": names, "n_a": int(a.sum()), "n_b": int((~a).sum()),
                 "known_a": int((known & a).sum()), "known_b": int((known & ~a).sum()),
                 "horizon_days": horizon_days, "replicates": replicates, "seed": seed,
                 "sentence": SENTENCE.format(covariates=", ".join(sorted({n.split(':')[0].replace(' missing', '')
                                                                          for n in names})) or "nothing")}
    if min(out["known_a"], out["known_b"]) < MIN_GROUP:
        return {**out, "reason": f"Too few patients with a known outcome to adjust (fewer than {MIN_GROUP} in a "
                                 "cohort): no adjusted figure."}
    if not names:
        return {**out, "reason": "No measured difference to adjust for (no covariate varies): no adjusted figure."}
    ps = propensity(x, a)
    if ps is None:
        return {**out, "reason": "The propensity model could not be fitted (a covariate separates the cohorts "
                                 "completely, e.g. one clinic or one grade only in one of them): the cohorts do "
                                 "not overlap enough to compare like with like; no adjusted figure."}
    out["overlap"] = overlap(ps, a)
    if max(out["overlap"]["outside_a"], out["overlap"]["outside_b"]) > MAX_OUTSIDE:
        return {**out, "reason": f"The propensity scores overlap too little (more than {MAX_OUTSIDE:.0%} of a cohort "
                                 "has no comparable patient in the other): no adjusted figure."}
    w = stabilised_weights(ps, a)
    before, after = _smd(x, a), _smd(x, a, w)
    out["balance"] = [{"covariate": n, "smd_before": round(float(b), 4), "smd_after": round(float(f), 4),
                       "flagged": bool(abs(f) > SMD_FLAG), "flagged_before": bool(abs(b) > SMD_FLAG)}
                      for n, b, f in zip(names, before, after)]
    masks = (a, ~a)

    def sums(weights: np.ndarray) -> list[_Sums]:
        return [_Sums(weights[m], y0[m], known[m], days[m], event[m], horizon_days) for m in masks]

    def difference(cohorts: list[_Sums], counts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(rate difference, survival difference) per replicate from each cohort's resampling counts."""
        (rate_a, surv_a), (rate_b, surv_b) = (s_.estimates(c) for s_, c in zip(cohorts, counts))
        return rate_a - rate_b, surv_a - surv_b

    ones = [np.ones((int(m.sum()), 1)) for m in masks]
    weighted = sums(w)
    rate_point, surv_point = (float(v[0]) for v in difference(weighted, ones))
    plain_rate, plain_surv = (float(v[0]) for v in difference(sums(np.ones(len(a))), ones))
    out["unadjusted"] = {"difference": round(plain_rate, 6), "surgery_free": round(plain_surv, 6)}
    rng = np.random.default_rng(seed)
    rates, survs = [], []
    # resampling within each cohort (stratified): each replicate keeps both cohorts
    for ca, cb in zip(_replicates(int(a.sum()), rng, replicates), _replicates(int((~a).sum()), rng, replicates)):
        with np.errstate(divide="ignore", invalid="ignore"):
            r, v = difference(weighted, [ca, cb])
        rates.append(r)
        survs.append(v)
    out.update(_interval(rate_point, np.concatenate(rates)))
    out["surgery_free"] = _interval(surv_point, np.concatenate(survs))
    out["weights"] = {"min": round(float(w.min()), 4), "max": round(float(w.max()), 4)}
    return out
