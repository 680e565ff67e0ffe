"""Turn the database's frequency table of outcomes into the report's numbers (exact arithmetic on counted cells).

`metrics.outcome_cells` returns, per (time point, instrument), how many eligible assessments had each combination
of (answered, score, baseline score, converted). Everything here is a weighted sum over those few thousand cells.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np

from orthoreg.registry.rules import time_point_label

from . import definitions as defs
from . import stats
from .metrics import InstrumentInfo, PassInfo

EPS = 1e-9  # thresholds are compared with this tolerance (0.3 x 10 is 3.0000000000000004 in floating point)
MIN_ESTIMATE_N = 5  # the small-number rule: below this many, no estimate at all (see too_few)

# What a rate or proportion loses under the small-number rule: everything but its count (the denominator).
RATE_ESTIMATES = ("numerator", "rate", "ci_low", "ci_high", "worst_case_numerator", "worst_case_rate",
                  "worst_case_ci_low", "worst_case_ci_high", "best_case_rate")
SUMMARY_ESTIMATES = ("mean", "sd", "ci_low", "ci_high", "median", "median_ci_low", "median_ci_high")


def too_few(n: int | None) -> bool:
    """The small-number rule, the one home of it: an estimate (mean, median, rate, interval, survival, difference)
    from fewer than MIN_ESTIMATE_N patients is not made. Every table, chart, PDF and API figure of a cohort report
    shows only the count and "too few" instead, because the report itself carries no estimate for it."""
    return (n or 0) < MIN_ESTIMATE_N


def withhold(estimate: dict, n: int | None, keys: tuple[str, ...] = RATE_ESTIMATES) -> dict:
    """`estimate` with `too_few` set, and its estimates set to None when too few (n below the rule)."""
    few = too_few(n)
    out = {**estimate, "too_few": few}
    if few:
        out.update({k: None for k in keys if k in out})
    return out


def proportion(numerator: int, denominator: int) -> dict:
    """A proportion with its Wilson 95% CI, under the small-number rule (its denominator the count)."""
    return withhold(stats.proportion(numerator, denominator).as_dict(), denominator)


def weighted_summary(values: Iterable[tuple[float, int]], bounds: tuple[float, float] | None = None) -> dict:
    """n, mean, sd, 95% CI of the mean, median and its 95% order-statistic CI of values given with their counts.

    `bounds` are the smallest and largest values possible (an instrument's scale): the t interval of a small sample
    can run past them (NPRS -5.8 to 15.8 at n=3), so it is clamped to them. Under the small-number rule (n < 5)
    only n is given, with `too_few` true."""
    cells = sorted((float(v), int(n)) for v, n in values if n)
    n = sum(c for _, c in cells)
    out: dict[str, Any] = {"n": n, "mean": None, "sd": None, "ci_low": None, "ci_high": None, "median": None,
           "median_ci_low": None, "median_ci_high": None, "too_few": n < MIN_ESTIMATE_N}
    if not n or too_few(n):
        return out
    mean = sum(v * c for v, c in cells) / n
    sd = math.sqrt(sum(c * (v - mean) ** 2 for v, c in cells) / (n - 1)) if n > 1 else None
    low, high = stats.mean_ci(n, mean, sd)
    if bounds is not None and low is not None:
        low, high = (min(max(v, bounds[0]), bounds[1]) for v in (low, high))

    def at_rank(rank: int) -> float:
        seen = 0
        for v, c in cells:
            seen += c
            if seen >= rank:
                return v
        raise ValueError(rank)

    mid = stats.median_ranks(n)
    ci = stats.median_ci_ranks(n)
    out.update(mean=mean, sd=sd, ci_low=low, ci_high=high, median=(at_rank(mid[0]) + at_rank(mid[1])) / 2)
    if ci:
        out.update(median_ci_low=at_rank(ci[0]), median_ci_high=at_rank(ci[1]))
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in out.items()}


def improvement(info: InstrumentInfo, score: float, base: float) -> float:
    return score - base if info.higher_is_better else base - score


def room(info: InstrumentInfo, base: float) -> float:
    return info.maximum - base if info.higher_is_better else base - info.minimum


def mcid_met(info: InstrumentInfo, score, base):
    """Improved by at least the MCID (points, or percent of the room to improve): a bool for numbers, elementwise
    for numpy arrays (False where a score is missing, nan)."""
    better = improvement(info, score, base)
    met = better >= info.mcid - EPS if info.mcid is not None else False
    if info.mcid_percent is not None:
        space = room(info, base)
        met = met | ((space > 0) & (better >= info.mcid_percent / 100 * space - EPS))
    return met


def pain_50_met(score: float, base: float) -> bool:
    return base > 0 and score <= base * (1 - defs.PAIN_REDUCTION) + EPS


# One OMERACT-OARSI domain of a patient: (instrument, score, baseline).
Domain = tuple[InstrumentInfo, float, float]


def domain_improved(info: InstrumentInfo, score: float, base: float, relative: float, absolute: float) -> bool:
    """An OMERACT-OARSI domain improved by at least `relative` of its room and `absolute` points on 0-100."""
    better, space = improvement(info, score, base), room(info, base)
    return space > 0 and better >= relative * space - EPS and better >= absolute / info.to_100(1) - EPS


def oarsi_met(pain: Domain, function: Domain | None = None, glob: Domain | None = None) -> bool:
    """OMERACT-OARSI responder from (info, score, baseline) of pain, function and patient global (the same rule as
    metrics.oarsi_successes; a missing domain counts as not improved)."""
    t = defs.oarsi_thresholds()
    if domain_improved(*pain, t["high_relative"], t["high_absolute"]):
        return True
    if function and domain_improved(*function, t["high_relative"], t["high_absolute"]):
        return True
    moderate = sum(1 for d in (pain, function, glob)
                   if d and domain_improved(*d, t["moderate_relative"], t["moderate_absolute"]))
    return moderate >= 2


def pass_met(info: InstrumentInfo, score: float, value: float) -> bool:
    """At or better than the patient acceptable symptom state (an absolute score)."""
    return score >= value - EPS if info.higher_is_better else score <= value + EPS


def distribution_step(info: InstrumentInfo) -> float:
    """The spacing of the thresholds of a change distribution: one point on short scales (NPRS 0-10, LEFS 0-80 in
    2s), 2 points on 0-100 scales."""
    span = info.maximum - info.minimum
    return 1.0 if span <= 20 else 2.0 if span <= 100 else span / 50


def change_distribution(info: InstrumentInfo, improvements: list[tuple[float, int]]) -> list[dict]:
    """The share of patients improved by at least x, for every x on a grid covering the changes seen (x below 0:
    worse by at most -x). Improvement is in the direction that is better for the instrument. Empty under the
    small-number rule."""
    total = sum(n for _, n in improvements)
    if too_few(total):
        return []
    # on the counted values (one per cell), never one per patient: below = how many improved by less than x
    values = np.array([v for v, n in improvements if n], dtype=float)
    counts = np.array([n for _, n in improvements if n], dtype=np.int64)
    order = np.argsort(values, kind="stable")
    values, below = values[order], np.concatenate([[0], np.cumsum(counts[order])])
    step = distribution_step(info)
    low, high = math.floor(values[0] / step) * step, math.ceil(values[-1] / step) * step
    thresholds = np.round(np.arange(low, high + step / 2, step), 6)
    at_least = total - below[np.searchsorted(values, thresholds - EPS, side="left")]
    return [{"threshold": float(x), "share": round(float(k) / total, 6)} for x, k in zip(thresholds, at_least)]


def change_marks(info: InstrumentInfo, passed: PassInfo | None, n: int) -> dict:
    """What a change distribution chart marks: the MCID, the OMERACT-OARSI absolute thresholds in the instrument's
    points (pain and function instruments), the PASS (an absolute score, not a change: its responder rate is given
    beside the others) and how many patients the distribution is of."""
    t = defs.oarsi_thresholds()
    oarsi = info.code == defs.OARSI_PAIN or info.code in defs.OARSI_FUNCTION
    per_point = info.to_100(1)
    return {"n": n, "too_few": too_few(n), "mcid": info.mcid, "mcid_percent": info.mcid_percent,
            "oarsi_high": round(t["high_absolute"] / per_point, 6) if oarsi else None,
            "oarsi_high_relative": t["high_relative"] if oarsi else None,
            "oarsi_moderate": round(t["moderate_absolute"] / per_point, 6) if oarsi else None,
            "oarsi_moderate_relative": t["moderate_relative"] if oarsi else None,
            "pass": None if passed is None else {"value": passed.value, "source": passed.source,
                                                 "verify": passed.verify}}


def rate(successes: int, known_failures: int, eligible: int, worst_successes: int | None = None) -> dict:
    """A responder rate with its denominators: observed (Wilson CI), worst case and best case over the eligible."""
    denominator = successes + known_failures
    observed = stats.proportion(successes, denominator).as_dict()
    worst = successes if worst_successes is None else worst_successes
    unknown = max(0, eligible - denominator)
    w_low, w_high = stats.wilson(worst, eligible)
    observed.update(
        eligible=eligible, unknown=unknown,
        worst_case_numerator=worst,
        worst_case_rate=round(worst / eligible, 6) if eligible else None,
        worst_case_ci_low=None if w_low is None else round(w_low, 6),
        worst_case_ci_high=None if w_high is None else round(w_high, 6),
        best_case_rate=round(min(eligible, successes + unknown) / eligible, 6) if eligible else None)
    return withhold(observed, denominator)


def instrument_summary(info: InstrumentInfo, cells: list[dict], *, treated: int, time_point: str,
                       passed: PassInfo | None = None, distributions: bool = True) -> dict:
    eligible = sum(c["n"] for c in cells)
    responded = sum(c["n"] for c in cells if c["a"])
    converted = sum(c["n"] for c in cells if c["converted"])
    kept = [c for c in cells if not c["converted"]]  # scores of patients not converted by the time point
    scores = [(c["s"], c["n"]) for c in kept if c["s"] is not None]
    changes = [(c["s"] - c["base"], c["n"]) for c in kept if c["s"] is not None and c["base"] is not None]
    evaluable = [c for c in kept if c["s"] is not None and c["base"] is not None]
    completeness = proportion(responded, eligible)
    span = info.maximum - info.minimum
    row = {
        "instrument": info.code, "title": info.title, "better": info.better, "minimum": info.minimum,
        "maximum": info.maximum, "mcid": info.mcid,
        "mcid_percent": info.mcid_percent, "treated": treated, "eligible": eligible, "responded": responded,
        "scored": sum(c["n"] for c in cells if c["s"] is not None), "converted": converted,
        "lost": eligible - responded, "completeness": completeness,
        "score": weighted_summary(scores, (info.minimum, info.maximum)),
        "change": (weighted_summary(changes, (-span, span))
                   if time_point != "baseline" and info.has_baseline else None),
        "responders": {}, "change_distribution": [], "change_marks": None,
    }
    if time_point == "baseline":
        return row
    responded_not_converted = sum(c["n"] for c in kept if c["a"])
    responders = row["responders"]
    n_evaluable = sum(c["n"] for c in evaluable)
    if info.code == defs.PAIN_INSTRUMENT:
        pain_evaluable = [c for c in evaluable if c["base"] > 0]
        ok = sum(c["n"] for c in pain_evaluable if pain_50_met(c["s"], c["base"]))
        responders[defs.PAIN_50.code] = rate(ok, sum(c["n"] for c in pain_evaluable) - ok + converted, eligible)
    if info.mcid is not None or info.mcid_percent is not None:
        ok = sum(c["n"] for c in evaluable if mcid_met(info, c["s"], c["base"]))
        responders[defs.MCID.code] = rate(ok, n_evaluable - ok + converted, eligible)
    if info.code == defs.OARSI_PAIN:
        ok = sum(c.get("oarsi", 0) for c in evaluable)  # counted per fact by facts.oarsi_responders
        responders[defs.OARSI.code] = rate(ok, n_evaluable - ok + converted, eligible)
    if passed is not None:
        scored = [c for c in kept if c["s"] is not None]
        ok = sum(c["n"] for c in scored if pass_met(info, c["s"], passed.value))
        responders[defs.PASS.code] = rate(ok, sum(c["n"] for c in scored) - ok + converted, eligible)
    if info.has_baseline and distributions:
        gains = [(improvement(info, c["s"], c["base"]), c["n"]) for c in evaluable]
        row["change_distribution"] = change_distribution(info, gains)
        row["change_marks"] = change_marks(info, passed, n_evaluable)
    responders[defs.NO_CONVERSION.code] = rate(eligible - converted, converted, eligible,
                                               worst_successes=responded_not_converted)
    return row


def time_points(cells: list[dict], infos: dict[str, InstrumentInfo], *, treated: int,
                passes: dict[str, PassInfo] | None = None, distributions: bool = True) -> list[dict]:
    """The per-time-point, per-instrument section of the report, in protocol order; `passes` are the PASS values
    that apply to the cohort (metrics.PassInfo.applies)."""
    passes = passes or {}
    grouped: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    order: dict[str, int] = {}
    for cell in cells:
        if cell["instrument"] not in infos:
            continue
        grouped[cell["time_point"]][cell["instrument"]].append(cell)
        order[cell["time_point"]] = min(order.get(cell["time_point"], cell["order"]), cell["order"])
    codes = list(infos)
    out = []
    for tp in sorted(grouped, key=lambda t: (order[t], t)):
        by_instrument = grouped[tp]
        instruments = [instrument_summary(infos[code], by_instrument[code], treated=treated, time_point=tp,
                                          passed=passes.get(code), distributions=distributions)
                       for code in codes if code in by_instrument]
        out.append({"time_point": tp, "label": time_point_label(tp), "order": order[tp],
                    "instruments": instruments})
    return out


def flow(points: list[dict], treated: int) -> list[dict]:
    """Treated -> eligible (due) -> responded per time point, on the pain questionnaire asked at every time point
    (else the instrument with the most eligible patients)."""
    rows = []
    for tp in points:
        if not tp["instruments"]:
            continue
        anchor = next((i for i in tp["instruments"] if i["instrument"] == defs.PAIN_INSTRUMENT),
                      max(tp["instruments"], key=lambda i: i["eligible"]))
        rows.append({"time_point": tp["time_point"], "label": tp["label"], "instrument": anchor["instrument"],
                     "treated": treated, "eligible": anchor["eligible"], "responded": anchor["responded"],
                     "converted": anchor["converted"], "lost": anchor["lost"],
                     "completeness": anchor["completeness"]["rate"]})
    return rows


# ------------------------------------------------------------------------------------------------ loss to follow-up

def completeness_judgement(rate: float | None) -> tuple[str, str]:
    """(level, words) of a completeness: below 80% results may be seriously biased, 80-95% some bias is possible,
    above 95% little (DOMAIN.md section 6, after Schulz & Grimes)."""
    if rate is None:
        return "none", "nobody due yet"
    if rate < 0.80 - EPS:
        return "serious", "below 80% answered: results may be seriously biased"
    if rate <= 0.95 + EPS:
        return "some", "80-95% answered: some bias possible"
    return "little", "above 95% answered: little bias expected"


VARIABLES = ("age", "grade", "baseline")


def baseline_groups(rows: list[tuple], info: InstrumentInfo, time_point: str) -> list[dict]:
    """metrics.baseline_by_group at one time point, from the cohort's per-episode rows at it (metrics.comparison_rows,
    which a comparison reads anyway for its adjusted section): the same groups (converted, lost, MCID responder and
    non-responder, unscored) of the eligible with the same count, mean and sum of squares of age, grade and baseline
    score, without a second pass over the outcome facts."""
    if not rows:
        return []
    _pk, age, _sex, _condition, grade, _clinic, baseline, answered, score, base, converted, eligible, *_ = zip(*rows)
    ok = np.array(eligible, dtype=bool)
    score_, base_ = np.array(score, dtype=float)[ok], np.array(base, dtype=float)[ok]
    scored = ~np.isnan(score_) & ~np.isnan(base_)
    with np.errstate(invalid="ignore"):
        met = scored & mcid_met(info, score_, base_)
    # the first that holds, in the order of metrics.baseline_by_group's CASE
    group = np.select([np.array(converted, dtype=bool)[ok], ~np.array(answered, dtype=bool)[ok], met, scored],
                      ["converted", "lost", "responder", "non_responder"], "unscored")
    values = {var: np.array(col, dtype=float)[ok] for var, col in zip(VARIABLES, (age, grade, baseline))}
    out = []
    for name in np.unique(group).tolist():
        members = group == name
        row: dict = {"time_point": time_point, "group": name, "n": int(members.sum())}
        for var, column in values.items():
            known = column[members & ~np.isnan(column)]
            row.update({f"{var}_n": len(known), f"{var}_mean": float(known.sum()) / len(known) if len(known) else None,
                        f"{var}_ss": float((known * known).sum()) if len(known) else None})
        out.append(row)
    return out


def _pool(parts: list[dict], var: str) -> tuple[int, float | None, float | None]:
    """n, mean and sample SD of a variable over groups given by their count, mean and sum of squares."""
    cells = [(p[f"{var}_n"], float(p[f"{var}_mean"]), float(p[f"{var}_ss"])) for p in parts if p[f"{var}_n"]]
    n = sum(c[0] for c in cells)
    if not n:
        return 0, None, None
    mean = sum(k * m for k, m, _ in cells) / n
    if n < 2:
        return n, mean, None
    ss = sum(c[2] for c in cells) - n * mean * mean
    return n, mean, math.sqrt(max(ss, 0.0) / (n - 1))


def _described(name: str, parts: list[dict]) -> dict:
    out: dict = {"group": name, "n": sum(p["n"] for p in parts)}
    for var in VARIABLES:
        n, mean, sd = _pool(parts, var)
        few = too_few(n)
        out[var] = {"n": n, "mean": None if few or mean is None else round(mean, 3),
                    "sd": None if few or sd is None else round(sd, 3), "too_few": few}
    return out


def _compare(a: dict, b: dict) -> dict:
    """a minus b of each baseline variable (Welch 95% CI); `differs` when the interval excludes 0."""
    out: dict[str, dict[str, Any]] = {}
    for var in VARIABLES:
        x, y = a[var], b[var]
        if x["too_few"] or y["too_few"] or x["sd"] is None or y["sd"] is None:
            out[var] = {"difference": None, "ci_low": None, "ci_high": None, "differs": None, "too_few": True}
            continue
        d, low, high = stats.mean_difference_ci(x["n"], x["mean"], x["sd"], y["n"], y["mean"], y["sd"])
        out[var] = {"difference": None if d is None else round(d, 3), "ci_low": None if low is None else round(low, 3),
                    "ci_high": None if high is None else round(high, 3),
                    "differs": None if low is None else bool(low > 0 or high < 0), "too_few": False}
    return out


def loss_to_follow_up(points: list[dict], groups: list[dict], anchor: str) -> list[dict]:
    """Loss to follow-up judged, per time point after baseline, on the instrument `anchor` (pain): completeness and
    its judgement; complete case, worst case and best case of each responder definition side by side; and the
    baseline (age, grade, baseline score) of responders, non-responders (its MCID), the lost and the followed at
    the time points `groups` has (the headline one), compared (lost vs followed, responders vs non-responders) so a reader sees whether those lost differ."""
    by_tp: dict[str, list[dict]] = defaultdict(list)
    for g in groups:
        by_tp[g["time_point"]].append(g)
    out = []
    for tp in points:
        if tp["time_point"] == "baseline":
            continue
        row = next((i for i in tp["instruments"] if i["instrument"] == anchor), None)
        if row is None:
            continue
        rate = row["completeness"]["rate"]
        level, words = completeness_judgement(rate)
        if row["completeness"]["too_few"] and row["eligible"]:
            level, words = "too_few", f"too few due to judge (fewer than {MIN_ESTIMATE_N})"
        cases = {code: {"complete_case": r["rate"], "complete_ci_low": r["ci_low"], "complete_ci_high": r["ci_high"],
                        "worst_case": r["worst_case_rate"], "best_case": r["best_case_rate"],
                        "known": r["denominator"], "eligible": r["eligible"], "too_few": r["too_few"]}
                 for code, r in row["responders"].items()}
        if tp["time_point"] not in by_tp:  # groups compared at the headline time point only
            out.append({"time_point": tp["time_point"], "label": tp["label"], "instrument": anchor,
                        "eligible": row["eligible"], "responded": row["responded"],
                        "completeness": None if rate is None else round(rate, 6), "level": level,
                        "judgement": words, "cases": cases, "groups": [], "lost_vs_followed": {},
                        "responders_vs_non_responders": {}})
            continue
        parts = {name: [g for g in by_tp.get(tp["time_point"], []) if g["group"] == name]
                 for name in ("responder", "non_responder", "converted", "lost", "unscored")}
        described = {
            "responders": _described("responders", parts["responder"]),
            "non_responders": _described("non_responders", parts["non_responder"]),
            "followed": _described("followed", parts["responder"] + parts["non_responder"] + parts["unscored"]),
            "lost": _described("lost", parts["lost"]),
        }
        out.append({
            "time_point": tp["time_point"], "label": tp["label"], "instrument": anchor, "eligible": row["eligible"],
            "responded": row["responded"], "completeness": None if rate is None else round(rate, 6),
            "level": level, "judgement": words, "cases": cases, "groups": list(described.values()),
            "lost_vs_followed": _compare(described["lost"], described["followed"]),
            "responders_vs_non_responders": _compare(described["responders"], described["non_responders"]),
        })
    return out
