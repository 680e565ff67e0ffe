"""Thin views: parse, authorize (orthoreg.accounts.access), call a service, render."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.forms import BaseForm
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from orthoreg import keyset
from orthoreg.accounts import access
from orthoreg.accounts.models import AuditEvent
from orthoreg.accounts.services import audit_record, patient_of

from . import selectors, services
from .coding import Condition, ProcedureKind
from .forms import (
    AdverseEventForm,
    EpisodeForm,
    ExamForm,
    GradeForm,
    NoteForm,
    PatientForm,
    ProcedureForm,
    apply_errors,
)
from .models import AdverseEvent, Clinic, Episode, Exam, Grade, Note, Patient, Procedure

# ---------------------------------------------------------------- helpers

def record_form(request, *, form: BaseForm, save: Callable[[dict], object], title: str, patient: Patient,
                template: str = "registry/record_form.html", extra: dict | None = None):
    """The one create/edit flow: validate the form, call the service, redirect to the patient's page."""
    if request.method == "POST" and form.is_valid():
        try:
            obj = save(form.cleaned_data)
        except ValidationError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, f"Saved: {obj}.")
            return redirect(reverse("registry:patient_detail", args=[patient_of(obj).pk]) + anchor_for(obj))
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "title": title, "patient": patient, "nav": "patients", **(extra or {})}
    return render(request, template, context, status=status)


def anchor_for(obj) -> str:
    episode_id = getattr(obj, "episode_id", None)
    if episode_id is None and isinstance(obj, AdverseEvent):
        episode_id = obj.procedure.episode_id
    if episode_id is None and hasattr(obj, "patient_id") and obj.__class__.__name__ == "Episode":
        episode_id = obj.pk
    return f"#episode-{episode_id}" if episode_id else ""


def fields_of(cleaned: dict, exclude: tuple[str, ...] = ()) -> dict:
    return {k: v for k, v in cleaned.items() if k not in exclude}


# ---------------------------------------------------------------- patients

@login_required
def patient_list(request):
    if not access.has_capability(request.user, access.CONTACT):
        raise Http404
    params = {name: request.GET.get(name, "") for name in ("q", "condition", "procedure", "status", "clinic")}
    patients = selectors.patient_search(user=request.user, **params)
    page = keyset.paginate(patients, order=selectors.PATIENT_LIST_ORDER, cursor=request.GET.get("cursor"), per_page=25,
                           name="patients")
    # A search shows names of many patients: one entry per request (no single patient), saying what was asked
    # and which records were shown.
    asked = ", ".join(f"{name}={value!r}" for name, value in params.items() if value) or "all patients"
    shown = " ".join(f"#{p.pk}" for p in page.object_list) or "none"
    audit_record(request=request, action=AuditEvent.Action.VIEW,
                 detail=f"patient search: {page.count} found, {'first' if page.first else 'a later'} page shows {shown}; "
                        f"asked {asked}")
    clinics = access.scope(Clinic.objects.all(), request.user, access.CONTACT)
    query = request.GET.copy()
    for name in ("cursor", "page"):
        query.pop(name, None)
    context = {"page": page, "params": params, "nav": "patients", "query": query.urlencode(),
               "conditions": Condition.choices, "kinds": ProcedureKind.choices, "statuses": Patient.Status.choices,
               "clinics": clinics}
    template = "registry/_patient_rows.html" if request.htmx else "registry/patient_list.html"
    return render(request, template, context)


@login_required
def patient_detail(request, pk: int):
    patient = access.access_patient(request.user, pk, access.CONTACT)
    show_clinical = patient.clinic_id in access.clinic_ids(request.user, access.CLINICAL)
    audit_record(request=request, action=AuditEvent.Action.VIEW, obj=patient)
    context = {"patient": patient, "nav": "patients", "show_clinical": show_clinical,
               "timeline": selectors.patient_timeline(patient) if show_clinical else []}
    return render(request, "registry/patient_detail.html", context)


@login_required
def patient_history(request, pk: int):
    patient = access.access_patient(request.user, pk, access.CLINICAL)
    audit_record(request=request, action=AuditEvent.Action.VIEW, obj=patient, detail="change history")
    return render(request, "registry/patient_history.html",
                  {"patient": patient, "entries": selectors.patient_history(patient), "nav": "patients"})


def _clinic_for_new_patient(request):
    clinics = list(access.scope(Clinic.objects.all(), request.user, access.CLINICAL))
    if not clinics:
        raise Http404
    chosen = request.POST.get("clinic") or request.GET.get("clinic")
    if chosen:
        for clinic in clinics:
            if str(clinic.pk) == chosen:
                return clinic, clinics
        raise Http404
    return clinics[0], clinics


@login_required
def patient_create(request):
    clinic, clinics = _clinic_for_new_patient(request)
    form = PatientForm(request.POST or None, instance=Patient(clinic=clinic))

    def save(data):
        return services.patient_create(clinic=clinic, request=request, **data)

    placeholder = Patient(given_name="New", family_name="patient", mrn="—")
    return record_form(request, form=form, save=save, title="New patient", patient=placeholder,
                       extra={"clinics": clinics, "clinic": clinic, "cancel_url": reverse("registry:patient_list")})


@login_required
def patient_edit(request, pk: int):
    patient = access.access_patient(request.user, pk, access.CLINICAL)
    form = PatientForm(request.POST or None, instance=Patient.objects.get(pk=patient.pk))

    def save(data):
        return services.patient_update(patient=patient, request=request, **data)

    return record_form(request, form=form, save=save, title=f"Edit {patient.full_name}", patient=patient)


# ---------------------------------------------------------------- episodes

@login_required
def episode_create(request, patient_pk: int):
    patient = access.access_patient(request.user, patient_pk, access.CLINICAL)
    form = EpisodeForm(request.POST or None, instance=Episode(patient=patient))

    def save(data):
        return services.episode_create(patient=patient, request=request, **data)

    return record_form(request, form=form, save=save, title="New episode", patient=patient)


@login_required
def episode_edit(request, pk: int):
    episode = access.access_episode(request.user, pk)
    form = EpisodeForm(request.POST or None, instance=Episode.objects.get(pk=episode.pk))

    def save(data):
        return services.episode_update(episode=episode, request=request, **data)

    return record_form(request, form=form, save=save, title=f"Edit episode: {episode}", patient=episode.patient)


@login_required
def episode_detail(request, pk: int):
    episode = access.access_episode(request.user, pk, access.CONTACT)
    return redirect(reverse("registry:patient_detail", args=[episode.patient_id]) + f"#episode-{episode.pk}")


# ---------------------------------------------------------------- grades

def _grade_context(form: GradeForm) -> dict:
    refused = [form[name].label for name, errors in form.input_errors() if errors] if form.is_bound else []
    return {"suggestion": form.partial_suggestion(), "refused": refused}


@login_required
def grade_form(request, episode_pk: int, pk: int | None = None):
    episode = access.access_episode(request.user, episode_pk)
    instance = None
    if pk is not None:
        instance = access.access_object(request.user, Grade, pk)
        if instance.episode_id != episode.pk:
            raise Http404
    default_system = Grade.System.COUGHLIN_SHURNAS if episode.body_site == "first_mtp" \
        else Grade.System.KELLGREN_LAWRENCE
    initial = GradeForm.initial_from(instance) if instance else {"system": default_system,
                                                                  **GradeForm.initial_for(episode)}
    form = GradeForm(request.POST or None, episode=episode, initial=initial)

    def save(data):
        return services.grade_record(episode=episode, system=data["system"], date=data["date"],
                                     inputs=form.inputs(), grade=data.get("grade"), notes=data.get("notes", ""),
                                     request=request, actor=request.user, instance=instance)

    return record_form(request, form=form, save=save, title=f"Grade: {episode}", patient=episode.patient,
                       template="registry/grade_form.html", extra={"episode": episode, **_grade_context(form)})


@login_required
@require_POST
def grade_suggest(request, episode_pk: int):
    """HTMX: the live suggestion for the inputs typed so far."""
    episode = access.access_episode(request.user, episode_pk)
    form = GradeForm(request.POST, episode=episode)
    input_errors = form.input_errors()
    return render(request, "registry/_grade_suggestion.html",
                  {"suggestion": form.partial_suggestion(), "form": form, "input_errors": input_errors,
                   "refused": [form[name].label for name, errors in input_errors if errors]})


# ---------------------------------------------------------------- procedures, exams, adverse events, notes

def _child_form(request, *, episode_pk: int, model, form_class, service, label: str, pk: int | None = None,
                template: str = "registry/record_form.html"):
    episode = access.access_episode(request.user, episode_pk)
    instance = None
    if pk is not None:
        instance = access.access_object(request.user, model, pk)
        if instance.episode_id != episode.pk:
            raise Http404
    form = form_class(request.POST or None, instance=model.objects.get(pk=pk) if pk else model(episode=episode))

    def save(data):
        return service(episode=episode, request=request, actor=request.user, instance=instance, **data)

    title = f"{'Edit' if instance else 'New'} {label}: {episode}"
    return record_form(request, form=form, save=save, title=title, patient=episode.patient, template=template,
                       extra={"episode": episode})


@login_required
def procedure_form(request, episode_pk: int, pk: int | None = None):
    return _child_form(request, episode_pk=episode_pk, model=Procedure, form_class=ProcedureForm,
                       service=services.procedure_record, label="procedure", pk=pk,
                       template="registry/procedure_form.html")


@login_required
def procedure_edit(request, pk: int):
    procedure = access.access_object(request.user, Procedure, pk)
    return procedure_form(request, procedure.episode_id, pk)


@login_required
def exam_form(request, episode_pk: int, pk: int | None = None):
    return _child_form(request, episode_pk=episode_pk, model=Exam, form_class=ExamForm,
                       service=services.exam_record, label="exam", pk=pk)


@login_required
def note_form(request, episode_pk: int, pk: int | None = None):
    return _child_form(request, episode_pk=episode_pk, model=Note, form_class=NoteForm,
                       service=services.note_record, label="note", pk=pk)


@login_required
def adverse_event_form(request, procedure_pk: int, pk: int | None = None):
    procedure = access.access_object(request.user, Procedure, procedure_pk,
                                     queryset=Procedure.objects.select_related("episode__patient"))
    instance = None
    if pk is not None:
        instance = access.access_object(request.user, AdverseEvent, pk)
        if instance.procedure_id != procedure.pk:
            raise Http404
    form = AdverseEventForm(request.POST or None,
                            instance=AdverseEvent.objects.get(pk=pk) if pk else AdverseEvent(procedure=procedure))

    def save(data):
        return services.adverse_event_record(procedure=procedure, request=request, actor=request.user,
                                             instance=instance, **data)

    title = f"{'Edit' if instance else 'New'} adverse event: {procedure}"
    return record_form(request, form=form, save=save, title=title, patient=procedure.episode.patient,
                       extra={"episode": procedure.episode})
