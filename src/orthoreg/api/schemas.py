"""Response schemas of the API: the cohort report as documented in the OpenAPI schema (analytics.selectors)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from ninja import Field, Schema
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date(value):
    """Only a calendar date written YYYY-MM-DD: pydantic alone would read 0 as 1970-01-01 (a Unix time)."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value.strip()):
        return value.strip()
    raise PydanticCustomError("iso_date", "Give a date as YYYY-MM-DD (e.g. 2025-03-01), not {value}.",
                              {"value": repr(value)})


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]

_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?)?")


def _iso_datetime(value):
    """Only a moment written as ISO 8601 (2025-03-01T08:00:00Z; a date alone is its midnight in UTC), not a number
    (pydantic alone would read 0.5 as half a second after 1970)."""
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _ISO_DATETIME.fullmatch(value.strip()):
        return value.strip()
    raise PydanticCustomError("iso_datetime", "Give a moment as ISO 8601 (e.g. 2025-03-01T08:00:00Z), not {value}.",
                              {"value": repr(value)})


IsoDateTime = Annotated[dt.datetime, BeforeValidator(_iso_datetime)]


class ErrorItem(Schema):
    location: str = Field(description="The field, parameter or header, e.g. birth_date, limit, Idempotency-Key")
    message: str


class Error(Schema):
    """The one error body of the API, for every 4xx."""

    detail: str = Field(description="What went wrong, in one sentence")
    errors: list[ErrorItem] = Field([], description="Each problem with where it is")


class Rate(Schema):
    numerator: int | None = Field(description="None when too_few")
    denominator: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    too_few: bool = Field(False, description="fewer than 5 behind it (the small-number rule): no estimate, the "
                                             "count only")


class ResponderRate(Rate):
    eligible: int
    unknown: int
    worst_case_numerator: int | None
    worst_case_rate: float | None
    worst_case_ci_low: float | None
    worst_case_ci_high: float | None
    best_case_rate: float | None


class Summary(Schema):
    n: int
    mean: float | None
    sd: float | None
    ci_low: float | None
    ci_high: float | None
    median: float | None
    median_ci_low: float | None
    median_ci_high: float | None
    too_few: bool = Field(False, description="fewer than 5 answers (the small-number rule): n only, no mean, "
                                             "median or interval")


class DistributionRow(Schema):
    threshold: float = Field(description="improvement from baseline in the instrument's points (in its better "
                                         "direction; below 0: worse)")
    share: float = Field(description="share of the patients with a baseline and an answer, not converted, improved "
                                     "by at least the threshold")


class PassMark(Schema):
    value: float
    source: str
    verify: bool


class ChangeMarks(Schema):
    n: int
    too_few: bool
    mcid: float | None
    mcid_percent: float | None
    oarsi_high: float | None
    oarsi_high_relative: float | None
    oarsi_moderate: float | None
    oarsi_moderate_relative: float | None
    pass_: PassMark | None = Field(None, alias="pass")


class InstrumentRow(Schema):
    instrument: str
    title: str
    better: str
    minimum: float
    maximum: float
    mcid: float | None
    mcid_percent: float | None
    treated: int
    eligible: int
    responded: int
    scored: int
    converted: int
    lost: int
    completeness: Rate
    score: Summary
    change: Summary | None
    responders: dict[str, ResponderRate] = Field(description="per responder definition (pain_50, mcid, "
                                                             "omeract_oarsi, pass, no_conversion) where it applies")
    change_distribution: list[DistributionRow] = Field(
        [], description="responders at every threshold: the cumulative distribution of change from baseline (empty "
                        "under the small-number rule)")
    change_marks: ChangeMarks | None = None


class TimePoint(Schema):
    time_point: str
    label: str
    order: int
    instruments: list[InstrumentRow]


class FlowRow(Schema):
    time_point: str
    label: str
    instrument: str
    treated: int
    eligible: int
    responded: int
    converted: int
    lost: int
    completeness: float | None


class KMRow(Schema):
    time: float
    at_risk: int
    events: int | None
    censored: int
    survival: float | None
    ci_low: float | None
    ci_high: float | None


class CurvePoint(Schema):
    time: float
    at_risk: int
    survival: float | None
    ci_low: float | None
    ci_high: float | None


class SurvivalAt(Schema):
    months: int
    days: int
    at_risk: int
    events: int | None
    survival: float | None
    ci_low: float | None
    ci_high: float | None
    too_few: bool = Field(False, description="fewer than 5 still followed (the small-number rule): no estimate, the "
                                             "count only")


class Survival(Schema):
    event: str
    time_unit: str
    n: int
    events: int
    censored: int
    median_event_free_days: float | None
    median_follow_up_days: float | None
    max_follow_up_days: float | None
    too_few: bool = Field(False, description="fewer than 5 treated: no survival estimate")
    estimable_until_days: float | None = Field(None, description="the last day with at least 5 still followed: the "
                                                                 "curve and table stop there")
    at: list[SurvivalAt]
    table: list[KMRow]
    curve: list[CurvePoint] = Field(description="the drawn curve and its 95% band, where either changes")


class IncidenceRow(Schema):
    time: float
    at_risk: int
    events: int
    competing: int
    incidence: float | None
    ci_low: float | None
    ci_high: float | None


class IncidenceAt(Schema):
    months: int
    days: int
    at_risk: int
    incidence: float | None
    ci_low: float | None
    ci_high: float | None
    too_few: bool


class CompetingRisks(Schema):
    event: str
    competing_event: str
    time_unit: str
    n: int
    events: int
    deaths: int
    censored: int
    too_few: bool
    min_at_risk: int
    cut_at_days: float | None = Field(description="the first time fewer than min_at_risk remain at risk: the table "
                                                  "and curve stop before it")
    at: list[IncidenceAt]
    shown: str = Field(description="which curve is shown and why")


class GroupValue(Schema):
    n: int
    mean: float | None
    sd: float | None
    too_few: bool


class BaselineGroup(Schema):
    group: str = Field(description="responders, non_responders (pain MCID), followed (answered), lost (did not answer)")
    n: int
    age: GroupValue
    grade: GroupValue
    baseline: GroupValue


class GroupDifference(Schema):
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    differs: bool | None
    too_few: bool


class CaseRates(Schema):
    complete_case: float | None
    complete_ci_low: float | None
    complete_ci_high: float | None
    worst_case: float | None
    best_case: float | None
    known: int
    eligible: int
    too_few: bool


class LossRow(Schema):
    time_point: str
    label: str
    instrument: str
    eligible: int
    responded: int
    completeness: float | None
    level: str = Field(description="serious (< 80% answered), some (80-95%), little (> 95%), none, too_few")
    judgement: str
    cases: dict[str, CaseRates]
    groups: list[BaselineGroup]
    lost_vs_followed: dict[str, GroupDifference]
    responders_vs_non_responders: dict[str, GroupDifference]


class MethodsItem(Schema):
    item: str
    text: str


class Headline(Schema):
    time_point: str
    label: str
    instrument: str
    eligible: int
    responded: int
    lost: int
    responders: dict[str, ResponderRate]


class Age(Schema):
    mean: float | None
    min: int | None
    max: int | None


class IndexProcedure(Schema):
    kind: str
    label: str
    episodes: int


class CohortSummary(Schema):
    episodes: int
    patients: int
    clinics: int
    index_from: str | None
    index_to: str | None
    age: Age
    sex: dict[str, int]
    grades: dict[str, int]
    index_procedures: list[IndexProcedure]


class AdverseEvents(Schema):
    any: Rate
    serious: Rate


class CohortReport(Schema):
    schema_: str = Field(alias="schema", description="orthoreg.cohort-report/1")
    generated_at: str
    as_of: str
    filters: dict[str, Any]
    description: str
    cohort: CohortSummary
    headline: Headline | None
    time_points: list[TimePoint]
    flow: list[FlowRow]
    adverse_events: AdverseEvents
    survival: Survival
    limits: str
    definitions: dict[str, Any]
    cumulative_incidence: list[IncidenceRow] = Field(
        [], description="Aalen-Johansen cumulative incidence of conversion, death competing (95% CI, delta method "
                        "on log(-log)), time 0 and every event time until fewer than 10 remain at risk")
    competing_risks: CompetingRisks | None = None
    loss_to_follow_up: list[LossRow] = []
    methods: list[MethodsItem] = Field([], description="the methods section (RECORD items) written from the report")


class Difference(Schema):
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    too_few: bool = Field(False, description="fewer than 5 behind either side (the small-number rule): no estimate, no "
                                             "difference")


class DifferenceRow(Schema):
    time_point: str | None
    label: str
    instrument: str | None
    title: str
    responders: dict[str, Difference]
    mean_change: Difference | None
    adverse_events: dict[str, Difference] | None = None


class LogRank(Schema):
    test: str
    statistic: float | None
    df: int
    p_value: float | None


class BalanceRow(Schema):
    covariate: str
    smd_before: float
    smd_after: float
    flagged: bool = Field(description="|standardised difference| after weighting above 0.1")
    flagged_before: bool


class AdjustedInterval(Schema):
    difference: float | None
    ci_low: float | None
    ci_high: float | None


class Overlap(Schema):
    bins: list[float]
    a: list[int]
    b: list[int]
    outside_a: float
    outside_b: float


class Adjusted(Schema):
    definition: str
    instrument: str
    time_point: str | None
    label: str | None
    horizon_months: int
    horizon_days: float | None = None
    sentence: str = Field(description="weighting removes only the measured differences")
    reason: str | None = Field(None, description="why no adjusted figure is given (then no difference)")
    difference: float | None = Field(None, description="IPW difference in responder rates, A minus B")
    ci_low: float | None = None
    ci_high: float | None = None
    balance: list[BalanceRow] = []
    surgery_free: AdjustedInterval | None = Field(None, description="IPW difference in survival free of surgery at "
                                                                    "horizon_months")
    unadjusted: dict[str, float] | None = None
    overlap: Overlap | None = None
    method: str | None = None
    covariates: list[str] = []
    n_a: int | None = None
    n_b: int | None = None
    known_a: int | None = None
    known_b: int | None = None
    replicates: int | None = None
    seed: int | None = None
    weights: dict[str, float] | None = None


class ComparisonReport(Schema):
    schema_: str = Field(alias="schema", description="orthoreg.cohort-report/1")
    comparison: bool
    generated_at: str
    as_of: str
    cohorts: list[CohortReport]
    differences: list[DifferenceRow]
    survival_test: LogRank | None
    overlap: int
    limits: str
    adjusted: Adjusted | None = None
