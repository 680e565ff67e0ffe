"""/api/v1/cohorts/: the cohort report (and the comparison of two cohorts) as JSON, the same document as
`orthoreg report cohort --format json`. Aggregates only; scoped to the clinics where the user has the research
capability."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from ninja import Field, Query, Router, Schema, Status

from orthoreg import replica
from orthoreg.accounts import access
from orthoreg.accounts.models import AuditEvent
from orthoreg.accounts.services import audit_record
from orthoreg.analytics import cohorts, disclosure, facts, selectors
from orthoreg.analytics.filters import VS_PREFIX, CohortFilterError, parse_filters
from orthoreg.analytics.report_types import CohortReport, ComparisonReport
from orthoreg.registry.coding import BodySite, Condition, ProcedureKind, Side
from orthoreg.registry.models import Patient

from ..common import error_body
from ..schemas import Error, IsoDate

router = Router(tags=["cohorts"])

ConditionCode = Literal[tuple(Condition.values)]
SiteCode = Literal[tuple(BodySite.values)]
SideCode = Literal[tuple(Side.values)]
KindCode = Literal[tuple(ProcedureKind.values)]
SexCode = Literal[tuple(Patient.Sex.values)]
ERRORS = {400: Error, 401: Error, 403: Error, 422: Error}  # 400: a malformed request (e.g. a NUL character)


class CohortQuery(Schema):
    clinic: list[str] = Field([], description="Clinic code; repeat for several (default: all your clinics)")
    condition: ConditionCode | None = None
    site: SiteCode | None = Field(None, description="Body site")
    side: SideCode | None = None
    grade_min: int | None = Field(None, ge=0, le=4, description="Lowest grade of record at the index procedure")
    grade_max: int | None = Field(None, ge=0, le=4)
    procedure: list[KindCode] = Field([], description="Index procedure kind; repeat for a combination: the "
                                                      "episode also had each further kind within within_days days")
    also: list[KindCode] = Field([], description="Further kinds of a combination (appended to procedure)")
    within_days: int | None = Field(None, ge=0, le=3650, description="Default 30")
    age_min: int | None = Field(None, ge=0, le=120, description="Age in completed years at the index date")
    age_max: int | None = Field(None, ge=0, le=120)
    sex: SexCode | None = None
    index_from: IsoDate | None = Field(None, description="First index date (inclusive), YYYY-MM-DD")
    index_to: IsoDate | None = Field(None, description="Last index date (inclusive), YYYY-MM-DD")


class CompareQuery(CohortQuery):
    vs_condition: ConditionCode | None = Field(None, description="Second cohort: each vs_ value replaces the "
                                                                 "first cohort's")
    vs_site: SiteCode | None = None
    vs_side: SideCode | None = None
    vs_grade_min: int | None = Field(None, ge=0, le=4)
    vs_grade_max: int | None = Field(None, ge=0, le=4)
    vs_procedure: list[KindCode] = []
    vs_also: list[KindCode] = []
    vs_within_days: int | None = Field(None, ge=0, le=3650)
    vs_age_min: int | None = Field(None, ge=0, le=120)
    vs_age_max: int | None = Field(None, ge=0, le=120)
    vs_sex: SexCode | None = None
    vs_index_from: IsoDate | None = None
    vs_index_to: IsoDate | None = None


def _params(query: Schema) -> dict:
    params = {}
    for name, value in query.model_dump().items():
        if value in (None, [], ""):
            continue
        params[name] = [str(v) for v in value] if isinstance(value, list) else \
            value.isoformat() if isinstance(value, dt.date) else str(value)
    return params


def _pairs(errors: dict[str, list[str]]) -> list[tuple[str, str]]:
    return [(name, message) for name, messages in errors.items() for message in messages]


def _scope(request):
    ids = access.clinic_ids(request.auth, access.RESEARCH)
    if not ids:
        return None, Status(403, error_body("Your role gives no clinic whose outcomes you may analyse."))
    return ids, None


def _audit(request, what: str, filters: Schema) -> None:
    """One audit entry per answered request, whatever the role: the figures are aggregates (no patient is named),
    but who asked which cohort of whose clinics is what an auditor needs to see (e.g. narrowing filters)."""
    asked = " ".join(f"{name}={value}" for name, value in _params(filters).items()) or "no filters"
    audit_record(request=request, user=request.auth, action=AuditEvent.Action.VIEW, detail=f"API {what}: {asked}")


def _parse(request, params: dict, ids):
    try:
        return parse_filters(params, clinic_codes=cohorts.clinic_codes(ids),
                             consented_only=access.research_needs_consent(request.auth)), None
    except CohortFilterError as exc:
        return None, Status(422, error_body(f"Bad filters: {exc}", _pairs(exc.errors)))


def _disclosure(request, first, second, ids):
    """422 when the cohort would single out patients for a role without clinical access (analytics.disclosure)."""
    try:
        disclosure.check(first, second, clinic_ids=ids, user=request.auth)
    except CohortFilterError as exc:
        return Status(422, error_body(f"Not shown: {exc}", _pairs(exc.errors)))
    return None


@router.get("/report", response={200: CohortReport, **ERRORS}, by_alias=True,
            summary="Outcomes of a cohort")
def cohort_report(request, filters: Query[CohortQuery]):
    """Per time point and instrument: treated, eligible, responded, scores and changes with 95% CIs and the
    responder rates under each definition (numerator, denominator, Wilson CI, worst case); adverse events;
    Kaplan-Meier survival free of conversion to surgery."""
    ids, error = _scope(request)
    if error:
        return error
    facts.ensure_current()  # once, at the top (with a worker running: what it produced)
    parsed, error = _parse(request, _params(filters), ids)
    if error:
        return error
    first, _ = parsed
    error = _disclosure(request, first, None, ids)
    if error:
        return error
    report = selectors.cohort_report(first, clinic_ids=ids).with_source(replica.source())  # where it was read
    _audit(request, "cohort report", filters)
    return Status(200, report)


@router.get("/compare", response={200: ComparisonReport, **ERRORS}, by_alias=True,
            summary="Two cohorts side by side")
def cohort_compare(request, filters: Query[CompareQuery]):
    """The first cohort as in /report; the second takes the first's filters and replaces those given with a vs_
    prefix (e.g. procedure=bmc&vs_procedure=hyaluronic_acid). Differences with Newcombe (rates) and Welch (mean
    change) 95% CIs, and the log-rank test of survival free of surgery."""
    ids, error = _scope(request)
    if error:
        return error
    facts.ensure_current()  # once, at the top (with a worker running: what it produced)
    params = _params(filters)
    if not any(k.startswith(VS_PREFIX) for k in params):
        return Status(422, error_body("Give at least one vs_ parameter: what differs in the second cohort.",
                                      [("vs_", "Give at least one vs_ parameter.")]))
    parsed, error = _parse(request, params, ids)
    if error:
        return error
    first, second = parsed
    error = _disclosure(request, first, second, ids)
    if error:
        return error
    report = selectors.comparison_report(first, second, clinic_ids=ids).with_source(replica.source())
    _audit(request, "cohort comparison", filters)
    return Status(200, report)
