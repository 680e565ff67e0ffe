"""Pages of the instruments app. Thin: parse, authorize (orthoreg.accounts.access), call services/selectors."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from orthoreg.accounts import access
from orthoreg.registry import rules

from . import charts, selectors, services
from .definitions import UnknownInstrument, all_definitions, get_definition
from .forms import InstrumentForm, InstrumentPickForm
from .models import Response
from .types import DefinitionError, format_number

# The chart is an image of our own making with no script; its inline styles need this when it is opened
# on its own (the site's policy forbids inline styles in pages).
CHART_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _private(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "private, no-store"
    return response


def _definition_or_404(code: str):
    try:
        return get_definition(code)
    except (UnknownInstrument, DefinitionError):
        raise Http404("No such instrument") from None


@login_required
@require_GET
def instrument_list(request):
    return render(request, "instruments/instrument_list.html",
                  {"definitions": all_definitions(), "nav": "instruments"})


@login_required
@require_GET
def instrument_detail(request, code: str):
    definition = _definition_or_404(code)
    return render(request, "instruments/instrument_detail.html", {"d": definition, "nav": "instruments"})


@login_required
@require_http_methods(["GET", "POST"])
def response_new(request, patient_id: int):
    patient = access.access_patient(request.user, patient_id, access.CLINICAL)
    code = request.POST.get("instrument") or request.GET.get("instrument") or ""
    episode_id = _int(request.GET.get("episode"))
    if episode_id is not None and not patient.episodes.filter(pk=episode_id).exists():
        episode_id = None  # not this patient's episode: start without one
    initial = {"episode": episode_id, "time_point": request.GET.get("time_point") or ""}
    pick = InstrumentPickForm(initial={**initial, "instrument": code}, patient=patient)
    try:
        definition = get_definition(code) if code else None
    except (UnknownInstrument, DefinitionError):
        definition = None
        messages.error(request, f"Unknown instrument {code!r}: choose one from the list.")
    if definition is None:
        return render(request, "instruments/response_pick.html", {"patient": patient, "pick": pick})
    form = InstrumentForm(request.POST or None, initial=initial, definition=definition, patient=patient)
    if request.method == "POST" and form.is_valid():
        try:
            response = services.response_record(
                patient=patient, episode=form.cleaned_data["episode"], instrument=definition.code,
                answers=form.answers, time_point=form.cleaned_data["time_point"], completed_at=form.completed_at,
                source=Response.Source.STAFF, entered_by=request.user, request=request)
        except ValidationError as exc:
            form.apply_errors(exc)
        else:
            if response.valid:
                messages.success(request, f"{definition.short_title} recorded: score {response.score_display}.")
            else:
                messages.warning(request, f"{definition.short_title} recorded without a score: "
                                          f"{response.invalid_reason}")
            return redirect(response.get_absolute_url())
    status = 400 if request.method == "POST" else 200
    return _private(render(request, "instruments/response_form.html",
                           {"patient": patient, "form": form, "d": definition, "pick": pick}, status=status))


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@login_required
@require_GET
def response_detail(request, pk: int):
    response = access.access_object(request.user, Response, pk, access.CLINICAL,
                                    Response.objects.select_related("patient", "episode", "entered_by"))
    definition = response.definition
    rows = []
    if definition is not None and len(definition.items) == len(response.answers or []):
        for item, answer in zip(definition.items, response.answers):
            option = next((o for o in item.scored_options if answer is not None and o.value == answer), None)
            rows.append({"item": item, "answer": "—" if answer is None else (option.label if option
                                                                              else format_number(answer))})
    scores = []
    for code, value in (response.scores or {}).items():
        title = code
        if definition is not None:
            try:
                title = definition.subscale(code).title
            except KeyError:
                pass
        scores.append({"code": code, "title": title, "value": format_number(value)})
    return _private(render(request, "instruments/response_detail.html", {
        "r": response, "d": definition, "rows": rows, "scores": scores,
        "time_point": rules.time_point_label(response.time_point)}))


@login_required
@require_GET
def episode_responses(request, episode_id: int):
    episode = access.access_episode(request.user, episode_id, access.CLINICAL)
    return _private(render(request, "instruments/episode_responses.html", {
        "episode": episode, "patient": episode.patient, "responses": selectors.episode_responses(episode)}))


@login_required
@require_GET
def episode_chart(request, episode_id: int, code: str, fmt: str):
    if fmt not in charts.FORMATS:
        raise Http404("No such chart format")
    episode = access.access_episode(request.user, episode_id, access.CLINICAL)
    definition = _definition_or_404(code)
    if definition.primary is None:
        raise Http404("This instrument has no score to chart")
    trajectory = selectors.trajectory_of(definition, selectors.episode_responses(episode, definition.code))
    response = HttpResponse(charts.trajectory_chart(trajectory, fmt), content_type=charts.FORMATS[fmt])
    response["Content-Security-Policy"] = CHART_CSP
    response["Content-Disposition"] = f'inline; filename="episode-{episode.pk}-{definition.code}.{fmt}"'
    return _private(response)

