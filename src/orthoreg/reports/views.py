"""Pages of the reports app. Thin: parse (analytics.filters), authorize (accounts.access), call, render.

Cohort pages need the research capability and show aggregates only; case reports need the clinical capability
for the episode's clinic (another clinic's episode answers 404); public pages need no login and show only clinics
that opted in, with small cells hidden.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.forms.utils import pretty_name
from django.http import Http404, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.views.decorators.http import require_GET

from orthoreg import replica
from orthoreg.accounts import access
from orthoreg.accounts.models import AuditEvent
from orthoreg.accounts.services import audit_record
from orthoreg.analytics import cohorts, disclosure, facts, selectors
from orthoreg.analytics import definitions as defs
from orthoreg.analytics.filters import (
    MONTHS_NOTE,
    VS_PREFIX,
    CohortFilterError,
    CohortForm,
    display_forms,
    parse_filters,
)
from orthoreg.analytics.options import OptionsQuery, options_for
from orthoreg.analytics.report_types import CohortReport, ComparisonReport
from orthoreg.instruments.charts import render as render_chart
from orthoreg.registry.coding import BodySite, Condition, Side
from orthoreg.registry.models import Patient

from . import case as case_reports
from . import pdf, plots, public
from .plots import CHARTS

FORMATS = {"svg": "image/svg+xml", "png": "image/png"}


def _private(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "private, no-store"
    return response


def _research_clinics(request) -> set[int]:
    ids = access.clinic_ids(request.user, access.RESEARCH)
    if not ids:
        raise Http404("No clinic where you may analyse outcomes")
    return ids


def _filters(request, ids):
    """(cohort, versus, errors) from the query string."""
    try:
        first, second = parse_filters(request.GET, clinic_codes=cohorts.clinic_codes(ids),
                                      consented_only=access.research_needs_consent(request.user))
    except CohortFilterError as exc:
        return None, None, labelled(exc.errors)
    return first, second, {}


def _query(request) -> str:
    query = request.GET.copy()
    query.pop("show", None)
    return query.urlencode()


def labelled(errors: dict[str, list[str]]) -> dict[str, list[str]]:
    """The cohort filter's errors keyed by what the form calls each field ("Grade to", "Cohort B: Age from"), not
    by its parameter name; errors of no field keep the key "" (shown without a label)."""
    out: dict[str, list[str]] = {}
    for name, msgs in errors.items():
        bare = name.removeprefix(VS_PREFIX)
        field = CohortForm.base_fields.get(bare)
        label = "" if name in ("__all__", "") else str(field.label if field and field.label else pretty_name(bare))
        if label and name.startswith(VS_PREFIX):
            label = f"Cohort B: {label}"
        out.setdefault(label, []).extend(msgs)
    return out


def _bad_request(errors: dict) -> HttpResponse:
    text = "Bad filters: " + "; ".join(f"{name}: {' '.join(msgs)}" if name else " ".join(msgs)
                                       for name, msgs in errors.items())
    return HttpResponseBadRequest(text, content_type="text/plain; charset=utf-8")


@login_required
@require_GET
@replica.reading_from_replica()
def cohort(request):
    ids = _research_clinics(request)
    facts.ensure_current()
    codes = cohorts.clinic_codes(ids)
    first, second, errors = _filters(request, ids)
    form, versus = display_forms(request.GET, clinic_codes=codes)
    report = None
    wanted = bool(request.GET)
    if wanted and not errors:
        report, errors = _disclosed(request, first, second, ids)
    context = {
        "nav": "outcomes", "form": form, "versus": versus, "errors": errors, "report": report,
        "comparing": second is not None or any(k.startswith("vs_") for k in request.GET),
        "query": _query(request), "charts": CHARTS, "freshness": facts.freshness() if report else None, "definitions": list(defs.DEFINITIONS.values()),
        "read_from": replica.describe(replica.source()) if report else "",
        "months_note": MONTHS_NOTE if first is not None and first.whole_months or
        second is not None and second.whole_months else "",
        "cohorts": plots.cohorts_of(report) if report else [],
        "sections": plots.sections_of(report) if report else [],
        "chart_src": {name: f"{reverse('reports:cohort_chart', args=[name, 'svg'])}?{_query(request)}"
                      for name in CHARTS},
        "distributions": [
            (code, title, f"{reverse('reports:cohort_chart', args=[plots.DISTRIBUTION + code, 'svg'])}?"
                          f"{_query(request)}")
            for code, title in plots.distribution_instruments(plots.cohorts_of(report) if report else [])],
    }
    return _private(render(request, "reports/cohort.html", context, status=400 if errors else 200))


def _disclosed(request, first, second, ids) -> tuple[CohortReport | ComparisonReport | None, dict]:
    """(report, {}) or (None, errors) when the report would single out patients for a role without clinical access
    (analytics.disclosure)."""
    try:
        disclosure.check(first, second, clinic_ids=ids, user=request.user)
    except CohortFilterError as exc:
        return None, exc.errors
    return selectors.report_for(first, second, clinic_ids=ids), {}


def _report_or_400(request):
    ids = _research_clinics(request)
    facts.ensure_current()
    first, second, errors = _filters(request, ids)
    if not errors:
        report, errors = _disclosed(request, first, second, ids)
    if errors:
        return None, _bad_request(errors)
    return report.with_source(replica.source()), None  # where it was read (the replica's delay): shown in PDF and JSON


@login_required
@require_GET
@replica.reading_from_replica()
def cohort_chart(request, name: str, fmt: str):
    if (name not in CHARTS and not name.startswith(plots.DISTRIBUTION)) or fmt not in FORMATS:
        raise Http404("No such chart")
    report, bad = _report_or_400(request)
    if bad:
        return bad
    cohorts_ = plots.cohorts_of(report)
    if name.startswith(plots.DISTRIBUTION) and name.removeprefix(plots.DISTRIBUTION) not in dict(
            plots.distribution_instruments(cohorts_)):
        raise Http404("No such chart")
    figure = plots.chart(name, cohorts_, **({"report": report} if name == "overlap" else {}))
    return _private(HttpResponse(render_chart(figure, fmt), content_type=FORMATS[fmt]))


@login_required
@require_GET
@replica.reading_from_replica()
def cohort_pdf(request):
    report, bad = _report_or_400(request)
    if bad:
        return bad
    data = pdf.cohort_pdf(report)
    response = _download(data, "application/pdf", f"cohort-{slugify(_title(report))[:60] or 'all'}.pdf")
    audit_record(request=request, action=AuditEvent.Action.EXPORT, detail=f"cohort report PDF: {_title(report)}")
    return response


@login_required
@require_GET
@replica.reading_from_replica()
def cohort_json(request):
    report, bad = _report_or_400(request)
    if bad:
        return bad
    audit_record(request=request, action=AuditEvent.Action.EXPORT, detail=f"cohort report JSON: {_title(report)}")
    response = JsonResponse(report.document(), json_dumps_params={"indent": 1, "ensure_ascii": False})
    response["Content-Disposition"] = f'attachment; filename="cohort-{slugify(_title(report))[:60] or "all"}.json"'
    return _private(response)


def _title(report: CohortReport | ComparisonReport) -> str:
    if isinstance(report, ComparisonReport):
        return " vs ".join(r.description for r in report.cohorts)
    return report.description


def _download(data: bytes, content_type: str, filename: str) -> HttpResponse:
    """A download; the header is built by Django from the name (quotes escaped, non-ASCII encoded), never by hand."""
    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return _private(response)


# ------------------------------------------------------------------------------------------------ options

OPTION_FIELDS = (("condition", "Condition", Condition.choices, True), ("site", "Site", BodySite.choices, True),
                 ("side", "Side", Side.choices, True),
                 ("grade", "Grade", [(str(g), str(g)) for g in range(5)], True),
                 ("sex", "Sex", Patient.Sex.choices, False))


@login_required
@require_GET
@replica.reading_from_replica()
def options(request):
    """Options for the next patient: for clinicians (clinical access), from the clinics whose outcomes they may
    analyse; logged in the audit trail whenever shown, like a case report."""
    if not access.clinic_ids(request.user, access.CLINICAL):
        raise Http404("No clinic where you see patients")
    facts.ensure_current()
    ids = _research_clinics(request)
    page, errors = None, {}
    wanted = any(request.GET.get(name) for name, *_ in OPTION_FIELDS)
    if wanted:
        try:
            q = OptionsQuery.parse(request.GET)
        except CohortFilterError as exc:
            errors = labelled(exc.errors)
        else:
            page = options_for(q, clinic_ids=ids, consented_only=access.research_needs_consent(request.user))
            fmt = request.GET.get("format", "html")
            if fmt == "pdf":
                data = pdf.options_pdf(page)
                response = _download(data, "application/pdf", f"options-{slugify(page['description'])[:60]}.pdf")
                audit_record(request=request, action=AuditEvent.Action.EXPORT,
                             detail=f"options page PDF: {page['description']}")
                return response
            if fmt == "json":
                audit_record(request=request, action=AuditEvent.Action.EXPORT,
                             detail=f"options page JSON: {page['description']}")
                return _private(JsonResponse({**page, **replica.source()}, json_dumps_params={"indent": 1, "ensure_ascii": False}))
            audit_record(request=request, action=AuditEvent.Action.VIEW, detail=f"options page: {page['description']}")
    fields = [{"name": name, "label": label, "choices": choices, "required": required,
               "value": request.GET.get(name, "")} for name, label, choices, required in OPTION_FIELDS]
    query = request.GET.copy()
    query.pop("format", None)
    return _private(render(request, "reports/options.html", {
        "nav": "outcomes", "page": page, "errors": errors, "fields": fields, "query": query.urlencode(),
        "age_band": request.GET.get("age_band", "")}, status=400 if errors else 200))


# ------------------------------------------------------------------------------------------------ case report

@login_required
@require_GET
@replica.reading_from_replica()
def case(request, episode_id: int):
    episode = access.access_episode(request.user, episode_id, access.CLINICAL)
    facts.ensure_current()
    report = case_reports.case_report(episode, user=request.user)
    audit_record(request=request, action=AuditEvent.Action.VIEW, obj=episode, detail="case report")
    srcs = {"images": reverse("reports:case_images", args=[episode.pk]),
            "trajectories": {t.code: reverse("instruments:episode_chart", args=[episode.pk, t.code, "svg"])
                             for t in report.trajectories}}
    return _private(render(request, "reports/case.html", {"case": report, "srcs": srcs, "nav": "patients"}))


@login_required
@require_GET
@replica.reading_from_replica()
def case_pdf(request, episode_id: int):
    episode = access.access_episode(request.user, episode_id, access.CLINICAL)
    facts.ensure_current()
    report = case_reports.case_report(episode, user=request.user)
    data = pdf.case_pdf(report)
    response = _download(data, "application/pdf", f"case-report-{episode.patient.initials}-{episode.pk}.pdf")
    # Logged once the download exists: a response that could not be built was never an export.
    audit_record(request=request, action=AuditEvent.Action.EXPORT, obj=episode, detail="case report PDF")
    return response


@login_required
@require_GET
@replica.reading_from_replica()
def case_images(request, episode_id: int):
    episode = access.access_episode(request.user, episode_id, access.CLINICAL)
    png = case_reports.comparison_png(episode)
    if png is None:
        raise Http404("No before/after radiographs for this episode")
    return _private(HttpResponse(png, content_type="image/png"))


# ------------------------------------------------------------------------------------------------ public pages

@require_GET
@replica.reading_from_replica()
def public_index(request):
    facts.ensure_current()
    return render(request, "reports/public_index.html", {"index": public.public_index(), "static_export": False})


@require_GET
@replica.reading_from_replica()
def public_outcomes(request, site: str, condition: str):
    facts.ensure_current()
    page = public.public_page(site, condition)
    if page is None:
        raise Http404("Unknown body part or condition")
    return render(request, "reports/public_outcomes.html", {"page": page, "static_export": False,
                                                            "chart_url": reverse("reports:public_chart",
                                                                                 args=[site, condition])})


@require_GET
@replica.reading_from_replica()
def public_chart(request, site: str, condition: str):
    facts.ensure_current()
    page = public.public_page(site, condition)
    if page is None:
        raise Http404("Unknown body part or condition")
    return HttpResponse(public.public_chart_svg(page), content_type="image/svg+xml")
