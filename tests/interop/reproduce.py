"""The cohort report recomputed from the research export alone, with pandas (what a statistician would write).

Nothing here imports orthoreg: the tables, their types, the code lists and the report's constants all come from the
export folder (data_dictionary.json). The intervals come from other libraries than the report's (statsmodels' Wilson
interval; the Kaplan-Meier product-limit estimate, Greenwood variance and its log(-log) interval written out here).
`recompute(folder)` returns the sections of the report ("orthoreg.cohort-report/1") that do not name a calendar
date, in the report's own shape and rounding.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

PANDAS_TYPES = {"id": "string", "code": "string", "string": "string", "json": "string", "integer": "Int64",
                "number": "float64", "boolean": "boolean"}
Z = stats.norm.ppf(0.975)


def load(folder: Path) -> tuple[dict, dict[str, pd.DataFrame]]:
    """The data dictionary and every table of an export folder (CSV or Parquet), typed as the dictionary says."""
    dictionary = json.loads((folder / "data_dictionary.json").read_text(encoding="utf-8"))
    tables = {}
    for table in dictionary["tables"]:
        types = {f["name"]: PANDAS_TYPES[f["type"]] for f in table["fields"]}
        csv, parquet = folder / f"{table['name']}.csv", folder / f"{table['name']}.parquet"
        if parquet.exists():
            frame = pd.read_parquet(parquet)
        else:
            frame = pd.read_csv(csv, dtype={k: ("string" if v == "boolean" else v) for k, v in types.items()},
                                keep_default_na=False, na_values={k: [""] for k in types})
            for name, kind in types.items():
                if kind == "boolean":
                    frame[name] = frame[name].map({"True": True, "False": False}).astype("boolean")
        assert list(frame.columns) == list(types), (table["name"], list(frame.columns))
        tables[table["name"]] = frame.astype(types)
    return dictionary, tables


# ------------------------------------------------------------------------------------------------ arithmetic

def r6(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(float(value), 6)


def wilson(k: int, n: int) -> tuple[float | None, float | None]:
    if n <= 0:
        return None, None
    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    return (0.0 if k == 0 else float(low)), (1.0 if k == n else float(high))


class Rules:
    def __init__(self, dictionary: dict):
        self.__dict__.update(dictionary["rules"])
        self.few = self.small_number_rule

    def withhold(self, estimate: dict, n: int, keys) -> dict:
        out = {**estimate, "too_few": n < self.few}
        if out["too_few"]:
            out.update({k: None for k in keys if k in out})
        return out


RATE_KEYS = ("numerator", "rate", "ci_low", "ci_high", "worst_case_numerator", "worst_case_rate",
             "worst_case_ci_low", "worst_case_ci_high", "best_case_rate")
SUMMARY_KEYS = ("mean", "sd", "ci_low", "ci_high", "median", "median_ci_low", "median_ci_high")


def proportion(rules: Rules, k: int, n: int) -> dict:
    low, high = wilson(k, n)
    return rules.withhold({"numerator": k, "denominator": n, "rate": r6(k / n) if n else None, "ci_low": r6(low),
                           "ci_high": r6(high)}, n, RATE_KEYS)


def rate(rules: Rules, successes: int, failures: int, eligible: int, worst: int | None = None) -> dict:
    n = successes + failures
    low, high = wilson(successes, n)
    worst = successes if worst is None else worst
    unknown = max(0, eligible - n)
    w_low, w_high = wilson(worst, eligible)
    out = {"numerator": successes, "denominator": n, "rate": r6(successes / n) if n else None, "ci_low": r6(low),
           "ci_high": r6(high), "eligible": eligible, "unknown": unknown, "worst_case_numerator": worst,
           "worst_case_rate": r6(worst / eligible) if eligible else None, "worst_case_ci_low": r6(w_low),
           "worst_case_ci_high": r6(w_high),
           "best_case_rate": r6(min(eligible, successes + unknown) / eligible) if eligible else None}
    return rules.withhold(out, n, RATE_KEYS)


def summary(rules: Rules, values: pd.Series, bounds: tuple[float, float]) -> dict:
    """n, mean, SD, t interval (clamped to the scale), median and its distribution-free interval."""
    v = np.sort(values.dropna().astype(float).to_numpy())
    n = len(v)
    out = {"n": n, **{k: None for k in SUMMARY_KEYS}, "too_few": n < rules.few}
    if n < rules.few:
        return out
    mean, sd = float(v.mean()), float(v.std(ddof=1))
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    low, high = (min(max(x, bounds[0]), bounds[1]) for x in (mean - half, mean + half))
    out.update(mean=r6(mean), sd=r6(sd), ci_low=r6(low), ci_high=r6(high), median=r6(float(np.median(v))))
    # the largest j with P(Binomial(n, 1/2) <= j - 1) <= 2.5%: the interval is the j-th to (n-j+1)-th values
    j = max((j for j in range(1, n + 1) if stats.binom.cdf(j - 1, n, 0.5) <= 0.025), default=0)
    if n >= 6 and j >= 1:
        out.update(median_ci_low=r6(v[j - 1]), median_ci_high=r6(v[n - j]))
    return out


# ------------------------------------------------------------------------------------------------ the report

def improvement(info, score, base):
    return score - base if info["better"] == "higher" else base - score


def room(info, base):
    return info["maximum"] - base if info["better"] == "higher" else base - info["minimum"]


def domain_met(rules: Rules, info, score, base, relative: float, absolute: float):
    better, space = improvement(info, score, base), room(info, base)
    to_100 = 100.0 / (info["maximum"] - info["minimum"])
    return (space > 0) & (better >= space * relative - rules.tolerance) & (better >= absolute / to_100 - rules.tolerance)


def recompute(folder: Path) -> dict:
    dictionary, t = load(folder)
    rules = Rules(dictionary)
    codes = {(tb["name"], f["name"]): f["codes"] for tb in dictionary["tables"] for f in tb["fields"]}
    infos = {row["instrument"]: row for row in t["instruments"].to_dict("records")}
    thresholds = rules.oarsi_thresholds

    patients = t["patients"].set_index("patient")
    episodes = t["episodes"]
    treated = episodes[episodes["treated"]].join(patients[["clinic", "sex", "status", "status_day", "as_of_day"]],
                                                 on="patient").set_index("episode")
    n_treated = len(treated)

    # -- who is in the cohort
    sexes = list(codes[("patients", "sex")])
    kinds = treated["index_kind"].value_counts()
    grades = treated["grade"].astype("float").fillna(-1).astype(int).value_counts()
    cohort = {
        "episodes": n_treated, "patients": treated["patient"].nunique(), "clinics": treated["clinic"].nunique(),
        "age": {"mean": round(float(treated["age_at_index"].mean()), 1) if treated["age_at_index"].notna().any()
                else None,
                "min": _int(treated["age_at_index"].min()), "max": _int(treated["age_at_index"].max())},
        "sex": {s: int((treated["sex"] == s).sum()) for s in sexes if (treated["sex"] == s).sum()},
        "grades": {("none" if g < 0 else str(g)): int(n) for g, n in sorted(grades.items(),
                                                                          key=lambda x: (x[0] < 0, x[0]))},
        "index_procedures": [{"kind": k, "label": codes[("episodes", "index_kind")].get(k, k), "episodes": int(n)}
                             for k, n in sorted(kinds.items(), key=lambda x: (-x[1], x[0]))],
    }

    # -- baselines: the latest valid scored baseline response of each treated episode and instrument
    responses = t["responses"]
    scored = responses[responses["valid"] & responses["score"].notna()]
    base = (scored[(scored["time_point"] == "baseline") & scored["episode"].isin(treated.index)]
            .sort_values("sequence").groupby(["episode", "instrument"])["score"].last())

    # -- outcome rows: assessments of treated episodes, not those removed from the protocol
    a = t["assessments"]
    a = a[a["episode"].isin(treated.index) & ~((a["status"] == "cancelled") & (a["cancelled"] == "not_in_protocol"))]
    a = a.join(treated[["conversion_day", "status_day", "as_of_day"]], on="episode")
    linked = scored.set_index("response")["score"]
    a["answered"] = a["response"].notna()
    a["score"] = a["response"].map(linked).astype("float64")
    a["converted"] = (a["conversion_day"] <= a["due_day"]).fillna(False).astype(bool)
    a["excused"] = (a["status_day"] <= a["due_day"]).fillna(False).astype(bool)
    with_baseline = {c for c, i in infos.items() if i["has_baseline"]}
    keys = pd.MultiIndex.from_arrays([a["episode"], a["instrument"]])
    a["base"] = np.where(a["score"].notna() & a["instrument"].isin(with_baseline) & (a["time_point"] != "baseline"),
                         base.reindex(keys).to_numpy(dtype="float64"), np.nan)
    eligible = a[a["answered"] | ((a["window_end_day"] < a["as_of_day"]) & ~a["excused"])].copy()
    eligible = eligible[eligible["instrument"].isin(infos)]
    eligible["oarsi"] = oarsi(rules, eligible, scored, base, infos, thresholds)

    time_points = []
    order = eligible.groupby("time_point")["time_point_order"].min()
    for tp in sorted(order.index, key=lambda x: (order[x], x)):
        rows = eligible[eligible["time_point"] == tp]
        instruments = [instrument_summary(rules, infos[code], rows[rows["instrument"] == code], n_treated, tp)
                       for code in infos if (rows["instrument"] == code).any()]
        time_points.append({"time_point": tp, "order": int(order[tp]), "instruments": instruments})

    flow = []
    for tp in time_points:
        ins = tp["instruments"]
        anchor = next((i for i in ins if i["instrument"] == rules.pain_instrument), None) or \
            max(ins, key=lambda i: i["eligible"])
        flow.append({"time_point": tp["time_point"], "instrument": anchor["instrument"], "treated": n_treated,
                     "eligible": anchor["eligible"], "responded": anchor["responded"],
                     "converted": anchor["converted"], "lost": anchor["lost"],
                     "completeness": anchor["completeness"]["rate"]})

    # -- adverse events of the index procedure or of a later non-surgical procedure
    procedures = t["procedures"].set_index("procedure")
    ae = t["adverse_events"].join(procedures[["day", "is_index", "surgical"]], on="procedure", rsuffix="_procedure")
    ae = ae.join(treated["index_day"], on="episode", how="inner")
    ae = ae[(ae["day_procedure"] >= ae["index_day"]) & (ae["is_index"] | ~ae["surgical"])]
    adverse = {"any": proportion(rules, ae["episode"].nunique(), n_treated),
               "serious": proportion(rules, ae[ae["serious"]]["episode"].nunique(), n_treated)}

    return {"cohort": cohort, "time_points": time_points, "flow": flow, "adverse_events": adverse,
            "survival": survival(rules, treated)}


def _int(value):
    return None if pd.isna(value) else int(value)


def oarsi(rules: Rules, rows: pd.DataFrame, scored: pd.DataFrame, base: pd.Series, infos: dict,
          t: dict) -> pd.Series:
    """OMERACT-OARSI responder of each pain row with a score and a baseline: high improvement in pain or in a
    function score answered at the same time point (against its own baseline), or improvement in two of pain,
    function and patient global."""
    result = pd.Series(False, index=rows.index)
    if rules.oarsi_pain not in infos:
        return result
    pain = rows[(rows["instrument"] == rules.oarsi_pain) & rows["score"].notna() & rows["base"].notna()]
    if pain.empty:
        return result
    info = infos[rules.oarsi_pain]
    high = domain_met(rules, info, pain["score"], pain["base"], t["high_relative"], t["high_absolute"])
    moderate = domain_met(rules, info, pain["score"], pain["base"], t["moderate_relative"],
                          t["moderate_absolute"]).astype(int)
    for members, counts_high in ((rules.oarsi_function, True), ([rules.oarsi_global], False)):
        members = [m for m in members if m in infos]
        if not members:
            continue
        answers = scored[scored["instrument"].isin(members) & scored["episode"].notna()]
        answers = answers.join(base.rename("baseline"), on=["episode", "instrument"], how="inner")
        met_high, met_moderate = [], []
        for code in members:
            mine = answers[answers["instrument"] == code]
            met_high.append(mine[domain_met(rules, infos[code], mine["score"], mine["baseline"], t["high_relative"],
                                            t["high_absolute"])])
            met_moderate.append(mine[domain_met(rules, infos[code], mine["score"], mine["baseline"],
                                                t["moderate_relative"], t["moderate_absolute"])])
        if counts_high:
            high = high | any_of(pain, met_high)
        moderate = moderate + any_of(pain, met_moderate).astype(int)
    result.loc[pain.index] = high | (moderate >= 2)
    return result


def any_of(pain: pd.DataFrame, frames: list[pd.DataFrame]) -> pd.Series:
    """Whether each pain row's episode answered one of `frames` at the same time point."""
    found = set()
    for f in frames:
        found |= set(zip(f["episode"], f["time_point"]))
    return pd.Series([k in found for k in zip(pain["episode"], pain["time_point"])], index=pain.index)


def instrument_summary(rules: Rules, info: dict, cells: pd.DataFrame, treated: int, tp: str) -> dict:
    eligible = len(cells)
    responded = int(cells["answered"].sum())
    converted = int(cells["converted"].sum())
    kept = cells[~cells["converted"]]
    span = info["maximum"] - info["minimum"]
    row = {
        "instrument": info["instrument"], "title": info["title"], "better": info["better"],
        "minimum": info["minimum"], "maximum": info["maximum"], "mcid": _num(info["mcid"]),
        "mcid_percent": _num(info["mcid_percent"]), "treated": treated, "eligible": eligible,
        "responded": responded, "scored": int(cells["score"].notna().sum()), "converted": converted,
        "lost": eligible - responded, "completeness": proportion(rules, responded, eligible),
        "score": summary(rules, kept["score"], (info["minimum"], info["maximum"])),
        "change": (summary(rules, kept["score"] - kept["base"], (-span, span))
                   if tp != "baseline" and info["has_baseline"] else None),
        "responders": {}, "change_distribution": [], "change_marks": None,
    }
    if tp == "baseline":
        return row
    evaluable = kept[kept["score"].notna() & kept["base"].notna()]
    answered_free = int(kept["answered"].sum())
    if info["instrument"] == rules.pain_instrument:
        e = evaluable[evaluable["base"] > 0]
        ok = int((e["score"] <= e["base"] * (1 - rules.pain_reduction) + rules.tolerance).sum())
        row["responders"]["pain_50"] = rate(rules, ok, len(e) - ok + converted, eligible)
    if _num(info["mcid"]) is not None or _num(info["mcid_percent"]) is not None:
        better, space = improvement(info, evaluable["score"], evaluable["base"]), room(info, evaluable["base"])
        met = pd.Series(False, index=evaluable.index)
        if _num(info["mcid"]) is not None:
            met |= better >= info["mcid"] - rules.tolerance
        if _num(info["mcid_percent"]) is not None:
            met |= (space > 0) & (better >= info["mcid_percent"] / 100 * space - rules.tolerance)
        ok = int(met.sum())
        row["responders"]["mcid"] = rate(rules, ok, len(evaluable) - ok + converted, eligible)
    if info["instrument"] == rules.oarsi_pain:
        ok = int(evaluable["oarsi"].sum())
        row["responders"]["omeract_oarsi"] = rate(rules, ok, len(evaluable) - ok + converted, eligible)
    passed = pass_of(info)
    if passed is not None:
        s = kept[kept["score"].notna()]["score"]
        met = s >= passed["value"] - rules.tolerance if info["better"] == "higher" else \
            s <= passed["value"] + rules.tolerance
        ok = int(met.sum())
        row["responders"]["pass"] = rate(rules, ok, len(s) - ok + converted, eligible)
    if info["has_baseline"]:
        gains = improvement(info, evaluable["score"], evaluable["base"]).to_numpy(dtype=float)
        row["change_distribution"] = change_distribution(rules, info, gains)
        row["change_marks"] = change_marks(rules, info, passed, len(evaluable))
    row["responders"]["no_conversion"] = rate(rules, eligible - converted, converted, eligible, worst=answered_free)
    return row


def pass_of(info: dict) -> dict | None:
    """The instrument's patient acceptable symptom state where it applies to the recomputed cohort (every treated
    episode, of any condition): only a PASS published for any condition (an empty pass_scope) does."""
    if _num(info["pass"]) is None or (not pd.isna(info["pass_scope"]) and info["pass_scope"]):
        return None
    return {"value": float(info["pass"]), "source": info["pass_source"], "verify": bool(info["pass_verify"])}


def change_distribution(rules: Rules, info: dict, gains: np.ndarray) -> list[dict]:
    """The share of the evaluable patients improved by at least each threshold (a grid of distribution_step points
    from the worst change to the best), counted by comparing every gain with every threshold."""
    if len(gains) < rules.few:
        return []
    step = float(info["distribution_step"])
    thresholds = np.arange(math.floor(gains.min() / step), math.ceil(gains.max() / step) + 1) * step
    return [{"threshold": r6(x), "share": r6((gains >= x - rules.tolerance).sum() / len(gains))}
            for x in thresholds]


def change_marks(rules: Rules, info: dict, passed: dict | None, n: int) -> dict:
    """The marks of a change distribution chart: MCID, the OMERACT-OARSI absolute thresholds (0-100) on the
    instrument's scale for the pain and function instruments, and the PASS."""
    t = rules.oarsi_thresholds
    oarsi = info["instrument"] == rules.oarsi_pain or info["instrument"] in rules.oarsi_function
    points = (info["maximum"] - info["minimum"]) / 100.0  # instrument points per point on a 0-100 scale
    return {"n": n, "too_few": n < rules.few, "mcid": _num(info["mcid"]), "mcid_percent": _num(info["mcid_percent"]),
            "oarsi_high": r6(t["high_absolute"] * points) if oarsi else None,
            "oarsi_high_relative": t["high_relative"] if oarsi else None,
            "oarsi_moderate": r6(t["moderate_absolute"] * points) if oarsi else None,
            "oarsi_moderate_relative": t["moderate_relative"] if oarsi else None, "pass": passed}


def _num(value):
    return None if value is None or pd.isna(value) else float(value)


# ------------------------------------------------------------------------------------------------ survival

def kaplan_meier(durations: np.ndarray, events: np.ndarray) -> pd.DataFrame:
    """Product-limit table at time 0 and every distinct time: at risk, events, censored, S, Greenwood log(-log) 95%
    interval (the empty [1, 1] where S is 1)."""
    times = np.union1d([0.0], durations)
    rows = []
    log_s = cum = 0.0
    for time in times:
        at_risk = int((durations >= time).sum())
        d = int(((durations == time) & events).sum())
        c = int(((durations == time) & ~events).sum())
        if d:
            log_s += math.log(at_risk - d) - math.log(at_risk) if at_risk > d else -math.inf
            cum += d / (at_risk * (at_risk - d)) if at_risk > d else 0.0
        s = math.exp(log_s)
        if s == 1.0:
            low = high = 1.0
        elif s == 0.0:
            low = high = 0.0
        else:
            v = math.log(s)
            low = math.exp(-math.exp(math.log(-v) - Z * math.sqrt(cum) / v))
            high = math.exp(-math.exp(math.log(-v) + Z * math.sqrt(cum) / v))
        rows.append({"time": float(time), "at_risk": at_risk, "events": d, "censored": c, "survival": s,
                     "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


def median_time(table: pd.DataFrame) -> float | None:
    below = table[table["survival"] <= 0.5]
    return None if below.empty else float(below["time"].iloc[0])


def survival(rules: Rules, treated: pd.DataFrame) -> dict:
    """Survival free of conversion: from the index day to a conversion by the as-of day, else censored at the last
    contact (never after the as-of day, never before the index day)."""
    by_as_of = treated["conversion_day"].notna() & (treated["conversion_day"] <= treated["as_of_day"])
    contact = np.maximum(treated["index_day"], np.minimum(treated["last_contact_day"], treated["as_of_day"]))
    end = treated["conversion_day"].where(by_as_of, contact)
    durations = np.maximum(0, (end - treated["index_day"]).astype(int)).to_numpy(dtype=float)
    events = by_as_of.to_numpy(dtype=bool)
    n = len(durations)
    km = kaplan_meier(durations, events)
    wilson_low = km.apply(lambda r: wilson(r["at_risk"], r["at_risk"])[0], axis=1)
    no_event = (km["time"] > 0) & (km["survival"] == 1.0) & (km["ci_low"] >= 1.0)
    km.loc[no_event, "ci_low"] = wilson_low[no_event]
    band = km.copy()
    if band["survival"].iloc[0] == 1.0 and band["ci_low"].iloc[0] >= 1.0 and band["at_risk"].iloc[0]:
        band.loc[band.index[0], "ci_low"] = wilson_low.iloc[0]
    reverse = kaplan_meier(durations, ~events)
    few = n < rules.few
    horizon = None if few else float(np.sort(durations)[-rules.few])

    at = []
    for months in rules.survival_months:
        days = round(months * rules.days_per_month)
        at_risk = int(km[km["time"] >= days]["at_risk"].iloc[0]) if (km["time"] >= days).any() else 0
        if days > durations.max():
            estimate = {"survival": None, "ci_low": None, "ci_high": None, "events": None}
        else:
            row = km.iloc[0] if days <= 0 else band[band["time"] <= days].iloc[-1]
            estimate = {"survival": r6(row["survival"]), "ci_low": r6(row["ci_low"]), "ci_high": r6(row["ci_high"]),
                        "events": int(km[km["time"] <= days]["events"].sum())}
        at.append({"months": months, "days": days, "at_risk": at_risk,
                   **rules.withhold(estimate, at_risk, ("survival", "ci_low", "ci_high", "events"))})

    def rounded(frame):
        return [{"time": r["time"], "at_risk": int(r["at_risk"]), "events": int(r["events"]),
                 "censored": int(r["censored"]), "survival": r6(r["survival"]), "ci_low": r6(r["ci_low"]),
                 "ci_high": r6(r["ci_high"])} for r in frame.to_dict("records")]

    steps = km[(km["time"] == 0) | (km["events"] > 0)]
    curve, last = [], None
    for r in rounded(band):
        key = (r["survival"], r["ci_low"], r["ci_high"])
        if key != last:
            curve.append({k: r[k] for k in ("time", "at_risk", "survival", "ci_low", "ci_high")})
            last = key
    events_n = int(events.sum())
    return {
        "n": n, "events": events_n, "censored": n - events_n, "too_few": few,
        "median_event_free_days": None if few else median_time(km),
        "median_follow_up_days": None if few else median_time(reverse),
        "max_follow_up_days": None if few else float(durations.max()), "estimable_until_days": horizon, "at": at,
        "table": [] if few else [r for r in rounded(steps) if r["time"] <= horizon],
        "curve": [] if few else [r for r in curve if r["time"] <= horizon],
    }
