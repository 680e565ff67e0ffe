"""Outcome metrics of a cohort per time point and instrument, aggregated in the database.

The unit is one assessment (an instrument due at a time point of an episode), kept as an outcome fact (facts.py:
its answer, score, the baseline score of the same instrument and whether it meets OMERACT-OARSI).
`eligible_outcomes` applies the eligibility rule of definitions.py to a cohort's facts and marks whether the
episode had converted to surgery by the due date; `outcome_cells` aggregates it in one GROUP BY into a frequency
table that summaries.py turns into counts, means, SDs, medians and responder rates by exact arithmetic.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import reduce
from operator import or_
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import (
    Avg,
    BooleanField,
    Case,
    CharField,
    Count,
    F,
    FilteredRelation,
    FloatField,
    IntegerField,
    Min,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast

from orthoreg.instruments.definitions import UnknownInstrument, available_codes, get_definition
from orthoreg.instruments.types import DefinitionError

from .models import OutcomeCell, OutcomeFact, OutcomeKindCell
from .survival import with_end

EPS = 1e-9  # tolerance of threshold comparisons (0.2 x 15 is 3.0000000000000004 in floating point)


@dataclass(frozen=True)
class InstrumentInfo:
    code: str
    title: str
    better: str  # "higher" | "lower"
    minimum: float
    maximum: float
    mcid: float | None
    mcid_percent: float | None  # only where percent change is meaningful (NPRS: 30%)
    has_baseline: bool  # False for transition questions (global improvement) that have no baseline

    @property
    def higher_is_better(self) -> bool:
        return self.better == "higher"

    def to_100(self, points: float) -> float:
        """A difference on this scale expressed on a 0-100 scale."""
        return points * 100.0 / (self.maximum - self.minimum)


def instrument_infos() -> dict[str, InstrumentInfo]:
    infos = {}
    for code in available_codes():
        try:
            definition = get_definition(code)
        except (UnknownInstrument, DefinitionError):
            continue
        sub = definition.primary
        if sub is None:
            continue
        infos[code] = InstrumentInfo(
            code=code, title=definition.short_title, better=sub.better, minimum=sub.minimum, maximum=sub.maximum,
            mcid=sub.mcid, mcid_percent=sub.mcid_percent if sub.percent_change else None,
            has_baseline=sub.method != "signed_amount")
    return infos


@dataclass(frozen=True)
class PassInfo:
    """A patient acceptable symptom state of an instrument: the absolute score at or better than which patients call
    their state acceptable, with where it was published and for which conditions (the instrument's definition)."""
    value: float
    source: str
    scope: tuple[tuple[str, str], ...]
    verify: bool

    def applies(self, condition: str | None, site: str | None) -> bool:
        """Whether it was published for the cohort's condition at its site (a cohort not narrowed to one condition
        and site gets no PASS that is scoped)."""
        return not self.scope or (condition, site) in self.scope


def pass_infos() -> dict[str, PassInfo]:
    """The instruments whose primary score has a published PASS (instrument definitions: pass, passSource)."""
    out = {}
    for code in available_codes():
        try:
            sub = get_definition(code).primary
        except (UnknownInstrument, DefinitionError):
            continue
        if sub is not None and sub.pass_value is not None:
            out[code] = PassInfo(sub.pass_value, sub.pass_source, sub.pass_scope, sub.pass_verify)
    return out


# --------------------------------------------------------------------------------------------- the row set

def eligible_outcomes(members: QuerySet, *, as_of: dt.date) -> QuerySet:
    """The eligible assessments (definitions.py) of the cohort `members` (EpisodeFact rows) as outcome facts: those
    answered, and those whose window closed before `as_of` unless the patient had died or withdrawn by the due
    date."""
    return (OutcomeFact.objects.filter(episode_id__in=members.values("pk"))
            .filter(Q(answered=True) | Q(window_end__lt=as_of, excused=False)))


CELL = ("time_point", "instrument", "answered", "converted", "score", "base")  # the order of the covering index


def outcome_cells(rows: QuerySet) -> list[dict]:
    """The outcome table of the cohort as a frequency table, in one GROUP BY: how many eligible assessments there
    are of each (time point, instrument, answered, converted, score, baseline score), and how many of them are
    OMERACT-OARSI responders. Every count, mean, standard deviation, median and responder count of summaries.py is
    exact arithmetic on these cells (a few tens of thousands of rows whatever the number of patients): the
    database does the counting, nothing reads individual responses."""
    return _cells(rows)


def _cells(rows: QuerySet, *by: str) -> list[dict]:
    """The cells of outcome_cells, grouped further by the columns `by` (kept in each cell under their names)."""
    cells = (rows.values(*by, *CELL).annotate(n=Count("*"), order=Min("time_point_order"),
                                              oarsi=Count("oarsi", filter=Q(oarsi=True))).order_by())
    return [{**{b: c[b] for b in by}, "time_point": c["time_point"], "instrument": c["instrument"],
             "a": c["answered"], "converted": c["converted"], "s": c["score"], "base": c["base"], "n": c["n"],
             "order": c["order"], "oarsi": c["oarsi"]} for c in cells]


def outcome_cells_of(cohorts: list[QuerySet], *, as_of: dt.date, disjoint: bool = False) -> list[list[dict]]:
    """outcome_cells of the eligible outcome facts of each cohort (EpisodeFact rows). Cohorts without a common
    episode (`disjoint`) are counted in one GROUP BY on PostgreSQL, which reads the outcome facts in one sequential
    scan instead of one per cohort; SQLite looks each cohort's facts up by episode, so one query each is faster."""
    if not disjoint or len(cohorts) < 2 or connections[cohorts[0].db].vendor != "postgresql":
        return [outcome_cells(eligible_outcomes(members, as_of=as_of)) for members in cohorts]
    side = Case(*[When(episode_id__in=members.values("pk"), then=Value(i)) for i, members in enumerate(cohorts[:-1])],
                default=Value(len(cohorts) - 1), output_field=IntegerField())
    rows = (OutcomeFact.objects.filter(reduce(or_, [Q(episode_id__in=members.values("pk")) for members in cohorts]))
            .filter(Q(answered=True) | Q(window_end__lt=as_of, excused=False)).annotate(side=side))
    out: list[list[dict]] = [[] for _ in cohorts]
    for cell in _cells(rows, "side"):
        out[cell.pop("side")].append(cell)
    return out


def raw_rows(qs: QuerySet) -> list[tuple]:
    """The rows of `qs` as the database driver gives them, without Django's per-value converters (they cost more
    than the query on a few hundred thousand cells); [] when `qs` can match nothing."""
    try:
        sql, params = qs.query.sql_with_params()
    except EmptyResultSet:
        return []
    with connections[qs.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def clinic_cells(clinic_ids: list[int], *, as_of: dt.date, index_kind: str | None = None) -> list[dict]:
    """The same frequency table as outcome_cells for every treated episode of whole clinics (with `index_kind`, every
    one of that index procedure), read from the clinics' counted cells (models.OutcomeCell, OutcomeKindCell)
    instead of one row per assessment."""
    counted = OutcomeCell.objects.filter(clinic_id__in=clinic_ids) if index_kind is None else \
        OutcomeKindCell.objects.filter(clinic_id__in=clinic_ids, index_kind=index_kind)
    cells = (counted
             .filter(Q(answered=True) | Q(window_end__lt=as_of, excused=False))
             .values("time_point", "instrument", "answered", "converted", "has_score", "score", "has_base", "base")
             .annotate(total=Sum("n"), order=Min("time_point_order"), responders=Sum("oarsi"))
             .filter(total__gt=0).order_by()
             .values_list("time_point", "instrument", "answered", "converted", "has_score", "score", "has_base",
                          "base", "total", "order", "responders"))
    # converted here, column by column: SQLite gives booleans as 0/1, PostgreSQL sums as numeric
    return [{"time_point": tp, "instrument": instrument, "a": bool(answered), "converted": bool(converted),
             "s": float(score) if has_score else None, "base": float(base) if has_base else None, "n": int(total),
             "order": int(order), "oarsi": int(responders)}
            for tp, instrument, answered, converted, has_score, score, has_base, base, total, order, responders
            in raw_rows(cells)]


GROUPS = ("responder", "non_responder", "converted", "lost", "unscored")


def responder_q(info: InstrumentInfo) -> tuple[Q, Any, Any]:
    """The MCID responder rule of summaries.mcid_met as a database condition on an outcome fact's score and base."""
    better = F("score") - F("base") if info.higher_is_better else F("base") - F("score")
    room = Value(info.maximum) - F("base") if info.higher_is_better else F("base") - Value(info.minimum)
    q = Q(pk__in=[])
    if info.mcid is not None:
        q |= Q(gain__gte=info.mcid - EPS)
    if info.mcid_percent is not None:
        q |= Q(room__gt=0, gain__gte=F("room") * (info.mcid_percent / 100) - EPS)
    return q, better, room


def _moments(name: str, field: str) -> dict:
    """Count, mean and sum of squares of a column (the standard deviation follows exactly; SQLite's STDDEV fails on
    one row)."""
    return {f"{name}_n": Count(field), f"{name}_mean": Avg(field),
            f"{name}_ss": Sum(Cast(F(field), FloatField()) * Cast(F(field), FloatField()))}


def baseline_by_group(rows: QuerySet, info: InstrumentInfo) -> list[dict]:
    """Per time point of the instrument `info`, the eligible patients in groups (responder and non-responder by its
    MCID, converted to surgery, lost = did not answer, unscored = answered without a score and baseline) with their
    count, and count, mean and sum of squares of age, grade and baseline score at treatment: one GROUP BY."""
    q, better, room = responder_q(info)
    group = Case(When(converted=True, then=Value("converted")), When(answered=False, then=Value("lost")),
                 When(Q(score__isnull=False, base__isnull=False) & q, then=Value("responder")),
                 When(score__isnull=False, base__isnull=False, then=Value("non_responder")),
                 default=Value("unscored"), output_field=CharField())
    data = (rows.filter(instrument=info.code)
            .annotate(gain=better, room=room, group=group,
                      bl=FilteredRelation("episode__baseline_facts",
                                          condition=Q(episode__baseline_facts__instrument=info.code)))
            .values("time_point", "group")
            .annotate(n=Count("pk"), **_moments("age", "episode__fact__age"), **_moments("grade", "episode__fact__grade"),
                      **_moments("baseline", "bl__score"))
            .order_by())
    return list(data)


def comparison_rows(members: QuerySet, *, as_of: dt.date, time_point: str, info: InstrumentInfo) -> list[tuple]:
    """One row per episode of a cohort for the adjusted comparison (weighting.py), in one query: covariates (age,
    sex, condition, grade, clinic, baseline score of `info`), the outcome fact of `info` at `time_point` (answered,
    score, baseline, converted by its due date, whether it is eligible) and days to conversion or censoring, in the
    order of the episodes."""
    eligible = Q(o__answered=True) | Q(o__window_end__lt=as_of, o__excused=False)
    rows = (with_end(members, as_of=as_of)
            .annotate(bl=FilteredRelation("episode__baseline_facts",
                                          condition=Q(episode__baseline_facts__instrument=info.code)),
                      o=FilteredRelation("episode__outcome_facts",
                                         condition=Q(episode__outcome_facts__instrument=info.code,
                                                     episode__outcome_facts__time_point=time_point)))
            .annotate(o_eligible=Case(When(eligible, then=Value(True)), default=Value(False),
                                      output_field=BooleanField()))
            .values_list("pk", "age", "sex", "condition", "grade", "clinic_id", "bl__score", "o__answered",
                         "o__score", "o__base", "o__converted", "o_eligible", "days", "converted")
            # in the order of the episodes: the bootstrap's seeded draws go to the same patients whichever plan the
            # database chose (SQLite's and PostgreSQL's differ, and a parallel plan differs from run to run)
            .order_by("pk"))
    # (raw_rows: a third of the time on 30,000 rows; flags come as 0/1 on SQLite, which every reader takes as numpy
    # booleans: summaries.baseline_groups, selectors.adjusted_section)
    seen: set[int] = set()
    out = []
    for row in raw_rows(rows):
        if row[0] not in seen:
            seen.add(row[0])
            out.append(row)
    return out
