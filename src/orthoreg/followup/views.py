"""Patient survey pages (no account: the link is the key), staff entry, and the coordinator's worklist."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from orthoreg.accounts import access
from orthoreg.instruments.definitions import UnknownInstrument, get_definition
from orthoreg.instruments.forms import InstrumentForm
from orthoreg.instruments.types import DefinitionError
from orthoreg.registry.forms import apply_errors
from orthoreg.registry.models import Clinic

from . import selectors, services, wording
from .forms import CancelForm, ProtocolForm, RevokeForm, time_point_formset
from .models import Assessment, Invitation, Protocol

# ------------------------------------------------------------------------------------------ patient pages


def _survey_error(request, error: services.LinkError):
    status = 404 if error.kind == "unknown" else 410
    return render(request, "followup/survey_message.html", {"title": "Link not usable", "message": error.message,
                                                            "kind": error.kind}, status=status)


@never_cache
def survey(request, token: str):
    try:
        invitation = services.invitation_for_token(token)
    except services.LinkError as error:
        if request.method == "POST" and error.kind == "used":
            return redirect("survey_done")  # the last page submitted again: its answers are in
        return _survey_error(request, error)
    pending, total = selectors.link_questionnaires(invitation)
    if not pending:
        return redirect("survey_done")
    if request.method == "POST":
        # The POST answers the page it names, never another one: a page answered already (a double click, a
        # second tab, the back button) stores nothing, and the patient is shown where they are.
        current = next((a for a in pending if str(a.pk) == request.POST.get("assessment")), None)
        if current is None:
            return _already_answered(request, token)
    else:
        current = next((a for a in pending if str(a.pk) == request.GET.get("q")), pending[0])
    definition = get_definition(current.instrument)
    action = request.POST.get("action", "submit")
    saved = False
    if request.method == "POST":
        form = InstrumentForm(request.POST, definition=definition, complete=(action != "save"), scales=True)
        if action == "save":
            services.assessment_save_draft(assessment=current, answers=form.draft)
            saved = True
        elif form.is_valid():
            try:
                services.assessment_answer(assessment=current, answers=form.answers, source="patient_link",
                                           request=request)
            except ValidationError as exc:
                if getattr(exc, "code", None) == services.NOT_PENDING:  # answered by a request running alongside
                    return _already_answered(request, token)
                form.apply_errors(exc)
            else:
                finished = not services.open_assessments(invitation)
                return redirect("survey_done") if finished else redirect("survey", token=token)
    else:
        form = InstrumentForm(initial=InstrumentForm.initial_from(current.draft), definition=definition, scales=True)
    done = total - len(pending)
    context = {"invitation": invitation, "clinic": invitation.patient.clinic, "definition": definition,
               "form": form, "assessment": current, "step": done + 1, "total": total, "saved": saved,
               "percent": round(100 * done / total) if total else 0, "staff": False}
    return render(request, "followup/survey.html", context, status=400 if form.errors else 200)


def _already_answered(request, token: str):
    messages.info(request, "Your answers to that page were already saved. Here is where you are now.")
    return redirect("survey", token=token)


@csrf_exempt  # the link's secret is the key; a mail program's one-click unsubscribe (RFC 8058) posts no form token
@never_cache
def survey_unsubscribe(request, token: str):
    """GET asks (mail scanners open links: nothing changes on a GET); POST stops the emails for the episode."""
    invitation = selectors.invitation_of_token(token)
    if invitation is None:
        return _survey_error(request, services.LinkError("unknown", "This link is not valid."))
    context = {"clinic": invitation.patient.clinic, "joint": wording.episode_words(invitation.episode),
               "done": hasattr(invitation.episode, "unsubscription")}
    if request.method == "POST":
        services.episode_unsubscribe(token=token, request=request)
        context["done"] = True
    return render(request, "followup/survey_unsubscribe.html", context)


def survey_done(request):
    return render(request, "followup/survey_message.html",
                  {"title": "Thank you!", "kind": "done",
                   "message": "Your answers have been saved. You can close this page."})


# ------------------------------------------------------------------------------------------ staff


class CompletedOnForm(forms.Form):
    completed_on = forms.DateField(label="Answered on", initial=timezone.localdate,
                                   widget=forms.DateInput(attrs={"type": "date"}))

    def clean_completed_on(self):
        day = self.cleaned_data["completed_on"]
        if day > timezone.localdate():
            raise ValidationError("This date is in the future.")
        return day


@login_required
def assessment_enter(request, pk: int):
    """Staff open the patient's form for an answer given by phone or on paper."""
    assessment = access.access_object(request.user, Assessment, pk, access.CONTACT,
                                      Assessment.objects.select_related("patient__clinic", "episode"))
    if assessment.status != Assessment.Status.SCHEDULED:
        messages.info(request, f"This questionnaire is {assessment.get_status_display().lower()} already.")
        return redirect(reverse("registry:patient_detail", args=[assessment.patient_id]))
    try:
        definition = get_definition(assessment.instrument)
    except (UnknownInstrument, DefinitionError):
        raise Http404 from None
    if request.method == "POST":
        form = InstrumentForm(request.POST, definition=definition)
        when = CompletedOnForm(request.POST, prefix="meta")
        if form.is_valid() and when.is_valid():
            day = when.cleaned_data["completed_on"]
            completed = timezone.now() if day == timezone.localdate() else \
                timezone.make_aware(dt.datetime.combine(day, dt.time(12)))
            try:
                services.assessment_answer(assessment=assessment, answers=form.answers, source="staff",
                                           completed_at=completed, entered_by=request.user, request=request)
            except ValidationError as exc:
                form.apply_errors(exc)
            else:
                messages.success(request, f"Saved {definition.title} at {assessment.time_point}.")
                return redirect(reverse("registry:patient_detail", args=[assessment.patient_id])
                                + f"#episode-{assessment.episode_id}")
    else:
        form = InstrumentForm(initial=InstrumentForm.initial_from(assessment.draft), definition=definition)
        when = CompletedOnForm(prefix="meta")
    context = {"definition": definition, "form": form, "when": when, "assessment": assessment, "staff": True,
               "patient": assessment.patient, "nav": "followup"}
    return render(request, "followup/staff_entry.html", context, status=400 if form.errors or when.errors else 200)


@login_required
def worklist(request):
    if not access.has_capability(request.user, access.CONTACT):
        raise Http404
    tab = request.GET.get("tab", "due")
    if tab not in dict(selectors.TABS):
        tab = "due"
    clinic = request.GET.get("clinic", "")
    rows = selectors.worklist(user=request.user, tab=tab, clinic=clinic)
    if tab == "failed":
        page, items = Paginator(rows, 50).get_page(request.GET.get("page")), []  # a short list: numbered pages
        count = page.paginator.count
    else:
        page, items = selectors.work_items(rows, tab=tab, cursor=request.GET.get("cursor"))
        count = page.count
    clinics = access.scope(Clinic.objects.all(), request.user, access.CONTACT)
    query = urlencode({"tab": tab, "clinic": clinic})
    context = {"tab": tab, "tabs": selectors.TABS, "page": page, "items": items, "count": count, "query": query, "clinic": clinic, "clinics": clinics,
               "completeness": selectors.completeness(user=request.user, clinic=clinic),
               "runs": selectors.latest_runs(), "nav": "followup", "cancel_form": CancelForm()}
    return render(request, "followup/worklist.html", context)


def _back_to_worklist(request):
    """Back to the page the form was on (a path of this site only: never "//elsewhere"), else the worklist."""
    back = str(request.POST.get("back", ""))
    safe = back.startswith("/") and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()})
    return redirect(back if safe else reverse("followup:worklist"))


@login_required
@require_POST
def assessment_cancel(request, pk: int):
    assessment = access.access_object(request.user, Assessment, pk, access.CONTACT)
    form = CancelForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say why the questionnaire is cancelled.")
    else:
        try:
            if request.POST.get("scope") == "time_point":
                cancelled = services.time_point_cancel(episode=assessment.episode, time_point=assessment.time_point,
                                                       reason=form.cleaned_data["reason"], request=request)
                messages.success(request, f"Cancelled {cancelled} questionnaire{'s' if cancelled != 1 else ''} "
                                          f"at {assessment.time_point}.")
            else:
                services.assessment_cancel(assessment=assessment, reason=form.cleaned_data["reason"],
                                           request=request)
                messages.success(request, f"Cancelled {assessment}.")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
    return _back_to_worklist(request)


@login_required
@require_POST
def invitation_resend(request, pk: int):
    invitation = access.access_object(request.user, Invitation, pk, access.CONTACT)
    try:
        services.invitation_resend(invitation=invitation, request=request)
        messages.success(request, f"The invitation will be sent again. {selectors.worker_eta_text()}")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return _back_to_worklist(request)


@login_required
@require_POST
def invitation_revoke(request, pk: int):
    invitation = access.access_object(request.user, Invitation, pk, access.CONTACT)
    form = RevokeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say why the invitation is revoked.")
    else:
        try:
            services.invitation_revoke(invitation=invitation, reason=form.cleaned_data["reason"], request=request)
            messages.success(request, f"Revoked the {invitation.time_point} invitation: no more reminders, and its "
                                      "link no longer works.")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
    return _back_to_worklist(request)


# ------------------------------------------------------------------------------------------ protocols


def _editable(request, protocol: Protocol) -> bool:
    return protocol.clinic_id in access.clinic_ids(request.user, access.CONTACT)


@login_required
def protocol_list(request):
    clinic_ids = access.clinic_ids(request.user, access.CONTACT)
    if not clinic_ids:
        raise Http404
    protocols = (Protocol.objects.filter(Q(clinic__isnull=True) | Q(clinic_id__in=clinic_ids))
                 .select_related("clinic").prefetch_related("time_points").order_by("condition", "body_site",
                                                                                    "clinic_id", "name"))
    clinics = Clinic.objects.filter(pk__in=clinic_ids).order_by("name")
    protocols = list(protocols)
    jobs = selectors.replanning(protocols)
    for protocol in protocols:
        protocol.replan_job = jobs.get(protocol.pk)
    return render(request, "followup/protocol_list.html", {"protocols": protocols, "clinics": clinics,
                                                           "editable": clinic_ids, "nav": "followup"})


@login_required
@require_POST
def protocol_copy(request, pk: int):
    clinic_ids = access.clinic_ids(request.user, access.CONTACT)
    protocol = Protocol.objects.filter(pk=pk).filter(Q(clinic__isnull=True) | Q(clinic_id__in=clinic_ids)).first()
    mine = Clinic.objects.filter(pk__in=clinic_ids)
    chosen = request.POST.get("clinic")
    clinic = mine.filter(pk=chosen).first() if chosen else (mine.first() if mine.count() == 1 else None)
    if protocol is None or clinic is None:
        raise Http404
    copy = services.protocol_copy_for_clinic(protocol=protocol, clinic=clinic, request=request)
    messages.success(request, f"{clinic.name} now has its own copy; edit it below.")
    return redirect("followup:protocol_edit", pk=copy.pk)


@login_required
def protocol_edit(request, pk: int):
    protocol = Protocol.objects.filter(pk=pk, clinic_id__in=access.clinic_ids(request.user, access.CONTACT)).first()
    if protocol is None:
        raise Http404  # network protocols are copied, never edited in place
    form = ProtocolForm(request.POST or None, instance=protocol)
    formset = time_point_formset(request.POST or None, instance=protocol, prefix="tp")
    if request.method == "POST" and form.is_valid() and formset.is_valid():
        time_points = [{**{k: v for k, v in tf.cleaned_data.items() if k in services.TIME_POINT_FIELDS},
                        "pk": tf.instance.pk, "delete": bool(tf.cleaned_data.get("DELETE"))}
                       for tf in formset.forms if tf.cleaned_data]
        try:
            _, job = services.protocol_save(protocol=protocol, fields=form.cleaned_data, time_points=time_points,
                                            request=request)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            episodes = f"{job.total} episode{'s' if job.total != 1 else ''}"
            if job.status == job.Status.DONE:
                messages.success(request, f"Saved. {episodes} re-planned.")
            else:
                messages.success(request, f"Saved. Re-planning {episodes} in the background: the progress is shown "
                                          f"below. {selectors.worker_eta_text('start')}")
            return redirect("followup:protocol_list")
    return render(request, "followup/protocol_edit.html",
                  {"form": form, "formset": formset, "protocol": protocol, "nav": "followup"},
                  status=400 if request.method == "POST" else 200)
