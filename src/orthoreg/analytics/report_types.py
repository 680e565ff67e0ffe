"""The cohort report's shape, declared once: what analytics.selectors returns, the pages, PDF, plots and exports
read (as attributes) and the API serves as its response schema (django-ninja's Schema is a pydantic model too).

    report = selectors.cohort_report(f, clinic_ids=ids)        # a CohortReport
    report.headline.responders["pain_50"].rate
    report.document()                                          # the JSON document (schema "orthoreg.cohort-report/1")

`document()` is the JSON of `orthoreg report cohort --format json`: the keys the producer set, in its order (a key it
did not set, e.g. the adjusted figure after a `reason`, is left out); the API gives every declared key.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

# A number as the producer gave it: an int stays an int (the JSON document is written as computed; a plain `float`
# would turn 365 into 365.0).
Number = int | float
# Where a whole report was read (orthoreg.replica.source(): set by the page, API and command that show it).
ReadFrom = Annotated[str | None, Field(description="where the report was read: primary or replica (orthoreg.replica)")]
ReplicaLag = Annotated[Number | None, Field(description="how far behind the primary the replica was, in seconds")]


class ReportModel(BaseModel):
    """A part of a cohort report: built by analytics.selectors, read by attribute, dumped by alias."""

    model_config = ConfigDict(populate_by_name=True)

    def document(self) -> dict[str, Any]:
        """The JSON-able dict of this part: keys by alias (`schema`, `pass`), only those the producer set."""
        return self.model_dump(by_alias=True, exclude_unset=True)

    def with_source(self, source: dict[str, Any]):
        """This report marked with where it was read (orthoreg.replica.source(): read_from, replica_lag_seconds)."""
        return self.model_copy(update=source)


class Rate(ReportModel):
    numerator: int | None = Field(description="None when too_few")
    denominator: int
    rate: Number | None
    ci_low: Number | None
    ci_high: Number | None
    too_few: bool = Field(False, description="fewer than 5 behind it (the small-number rule): no estimate, the "
                                             "count only")


class ResponderRate(ReportModel):
    """A responder rate: observed (Wilson CI), worst case and best case over the eligible (analytics.summaries.rate)."""

    numerator: int | None = Field(description="None when too_few")
    denominator: int
    rate: Number | None
    ci_low: Number | None
    ci_high: Number | None
    eligible: int
    unknown: int
    worst_case_numerator: int | None
    worst_case_rate: Number | None
    worst_case_ci_low: Number | None
    worst_case_ci_high: Number | None
    best_case_rate: Number | None
    too_few: bool = Field(False, description="fewer than 5 behind it (the small-number rule): no estimate, the "
                                             "count only")


class Summary(ReportModel):
    n: int
    mean: Number | None
    sd: Number | None
    ci_low: Number | None
    ci_high: Number | None
    median: Number | None
    median_ci_low: Number | None
    median_ci_high: Number | None
    too_few: bool = Field(False, description="fewer than 5 answers (the small-number rule): n only, no mean, "
                                             "median or interval")


class DistributionRow(ReportModel):
    threshold: Number = Field(description="improvement from baseline in the instrument's points (in its better "
                                         "direction; below 0: worse)")
    share: Number = Field(description="share of the patients with a baseline and an answer, not converted, improved "
                                     "by at least the threshold")


class PassMark(ReportModel):
    value: Number
    source: str
    verify: bool


class ChangeMarks(ReportModel):
    n: int
    too_few: bool
    mcid: Number | None
    mcid_percent: Number | None
    oarsi_high: Number | None
    oarsi_high_relative: Number | None
    oarsi_moderate: Number | None
    oarsi_moderate_relative: Number | None
    pass_: PassMark | None = Field(None, alias="pass")


class InstrumentRow(ReportModel):
    instrument: str
    title: str
    better: str
    minimum: Number
    maximum: Number
    mcid: Number | None
    mcid_percent: Number | None
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


class TimePoint(ReportModel):
    time_point: str
    label: str
    order: int
    instruments: list[InstrumentRow]


class FlowRow(ReportModel):
    time_point: str
    label: str
    instrument: str
    treated: int
    eligible: int
    responded: int
    converted: int
    lost: int
    completeness: Number | None


class KMRow(ReportModel):
    time: Number
    at_risk: int
    events: int | None
    censored: int
    survival: Number | None
    ci_low: Number | None
    ci_high: Number | None


class CurvePoint(ReportModel):
    time: Number
    at_risk: int
    survival: Number | None
    ci_low: Number | None
    ci_high: Number | None


class SurvivalAt(ReportModel):
    months: int
    days: int
    at_risk: int
    survival: Number | None
    ci_low: Number | None
    ci_high: Number | None
    events: int | None
    too_few: bool = Field(False, description="fewer than 5 still followed (the small-number rule): no estimate, the "
                                             "count only")


class Survival(ReportModel):
    event: str
    time_unit: str
    n: int
    events: int
    censored: int
    too_few: bool = Field(False, description="fewer than 5 treated: no survival estimate")
    median_event_free_days: Number | None
    median_follow_up_days: Number | None
    max_follow_up_days: Number | None
    estimable_until_days: Number | None = Field(None, description="the last day with at least 5 still followed: the "
                                                                 "curve and table stop there")
    at: list[SurvivalAt]
    table: list[KMRow]
    curve: list[CurvePoint] = Field(description="the drawn curve and its 95% band, where either changes")


class IncidenceRow(ReportModel):
    time: Number
    at_risk: int
    events: int
    competing: int
    incidence: Number | None
    ci_low: Number | None
    ci_high: Number | None


class IncidenceAt(ReportModel):
    months: int
    days: int
    at_risk: int
    incidence: Number | None
    ci_low: Number | None
    ci_high: Number | None
    too_few: bool


class CompetingRisks(ReportModel):
    event: str
    competing_event: str
    time_unit: str
    n: int
    events: int
    deaths: int
    censored: int
    too_few: bool
    min_at_risk: int
    cut_at_days: Number | None = Field(description="the first time fewer than min_at_risk remain at risk: the table "
                                                  "and curve stop before it")
    at: list[IncidenceAt]
    shown: str = Field(description="which curve is shown and why")


class GroupValue(ReportModel):
    n: int
    mean: Number | None
    sd: Number | None
    too_few: bool


class BaselineGroup(ReportModel):
    group: str = Field(description="responders, non_responders (pain MCID), followed (answered), lost (did not answer)")
    n: int
    age: GroupValue
    grade: GroupValue
    baseline: GroupValue


class GroupDifference(ReportModel):
    difference: Number | None
    ci_low: Number | None
    ci_high: Number | None
    differs: bool | None
    too_few: bool


class CaseRates(ReportModel):
    complete_case: Number | None
    complete_ci_low: Number | None
    complete_ci_high: Number | None
    worst_case: Number | None
    best_case: Number | None
    known: int
    eligible: int
    too_few: bool


class LossRow(ReportModel):
    time_point: str
    label: str
    instrument: str
    eligible: int
    responded: int
    completeness: Number | None
    level: str = Field(description="serious (< 80% answered), some (80-95%), little (> 95%), none, too_few")
    judgement: str
    cases: dict[str, CaseRates]
    groups: list[BaselineGroup]
    lost_vs_followed: dict[str, GroupDifference]
    responders_vs_non_responders: dict[str, GroupDifference]


class MethodsItem(ReportModel):
    item: str
    text: str


class Headline(ReportModel):
    time_point: str
    label: str
    instrument: str
    eligible: int
    responded: int
    lost: int
    responders: dict[str, ResponderRate]


class Age(ReportModel):
    mean: Number | None
    min: int | None
    max: int | None


class IndexProcedure(ReportModel):
    kind: str
    label: str
    episodes: int


class CohortSummary(ReportModel):
    episodes: int
    patients: int
    clinics: int
    index_from: str | None
    index_to: str | None
    age: Age
    sex: dict[str, int]
    grades: dict[str, int]
    index_procedures: list[IndexProcedure]


class AdverseEvents(ReportModel):
    any: Rate
    serious: Rate


class CohortReport(ReportModel):
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
    read_from: ReadFrom = None
    replica_lag_seconds: ReplicaLag = None


class Difference(ReportModel):
    difference: Number | None
    ci_low: Number | None
    ci_high: Number | None
    too_few: bool = Field(False, description="fewer than 5 behind either side (the small-number rule): no estimate, no "
                                             "difference")


class DifferenceRow(ReportModel):
    time_point: str | None
    label: str
    instrument: str | None
    title: str
    responders: dict[str, Difference]
    mean_change: Difference | None
    adverse_events: dict[str, Difference] | None = None


class LogRank(ReportModel):
    test: str
    statistic: Number | None
    df: int
    p_value: Number | None


class BalanceRow(ReportModel):
    covariate: str
    smd_before: Number
    smd_after: Number
    flagged: bool = Field(description="|standardised difference| after weighting above 0.1")
    flagged_before: bool


class AdjustedInterval(ReportModel):
    difference: Number | None
    ci_low: Number | None
    ci_high: Number | None


class Overlap(ReportModel):
    bins: list[Number]
    a: list[int]
    b: list[int]
    outside_a: Number
    outside_b: Number


class Adjusted(ReportModel):
    """The case-mix adjusted comparison (analytics.weighting); the keys after `sentence` are there only when the
    weighting ran (`method` ...), and a figure only when no `reason` stopped it."""

    definition: str
    instrument: str
    time_point: str | None
    label: str | None
    horizon_months: int
    sentence: str = Field(description="weighting removes only the measured differences")
    method: str | None = None
    covariates: list[str] = []
    n_a: int | None = None
    n_b: int | None = None
    known_a: int | None = None
    known_b: int | None = None
    horizon_days: Number | None = None
    replicates: int | None = None
    seed: int | None = None
    reason: str | None = Field(None, description="why no adjusted figure is given (then no difference)")
    overlap: Overlap | None = None
    balance: list[BalanceRow] = []
    unadjusted: dict[str, Number] | None = None
    difference: Number | None = Field(None, description="IPW difference in responder rates, A minus B")
    ci_low: Number | None = None
    ci_high: Number | None = None
    surgery_free: AdjustedInterval | None = Field(None, description="IPW difference in survival free of surgery at "
                                                                    "horizon_months")
    weights: dict[str, Number] | None = None


class ComparisonReport(ReportModel):
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
    read_from: ReadFrom = None
    replica_lag_seconds: ReplicaLag = None
