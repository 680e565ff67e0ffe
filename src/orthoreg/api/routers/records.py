"""/api/v1/clinics, patients, episodes, grades, procedures, exams, adverse-events: list (cursor pagination,
filters, updated_since), read, create, update. Reads and writes are scoped with the access functions the pages
use (accounts.access); writes go through the registry's services, as the web forms do (validation, audit,
follow-up scheduling, analytics marks)."""

from __future__ import annotations

from typing import Any, Literal

from django.db.models import Model
from ninja import Field, Query, Router

from orthoreg.accounts import access
from orthoreg.registry import services
from orthoreg.registry.coding import BodySite, Condition, ProcedureKind, Side
from orthoreg.registry.models import AdverseEvent, Clinic, Episode, Exam, Grade, Patient, Procedure

from ..common import (
    IDEMPOTENT,
    READ_ERRORS,
    WRITE_ERRORS,
    ApiError,
    Id,
    ListQuery,
    changes,
    get_object,
    no_changes_refused,
    page_of,
    paginate,
    require,
    write,
)
from ..resources import (
    AdverseEventIn,
    AdverseEventOut,
    AdverseEventPatch,
    ClinicOut,
    EpisodeIn,
    EpisodeOut,
    EpisodePatch,
    ExamIn,
    ExamOut,
    ExamPatch,
    GradeIn,
    GradeOut,
    GradePatch,
    PatientIn,
    PatientOut,
    PatientPatch,
    ProcedureIn,
    ProcedureOut,
    ProcedurePatch,
)
from ..schemas import IsoDate

router = Router(tags=["records"])

CLINICAL = "clinical records"
CONTACT = "patients"


def _fields(model: type[Model], fields: dict) -> dict:
    """None for a text field that cannot be null means empty (as an empty form field does)."""
    out = {}
    for name, value in fields.items():
        field: Any = model._meta.get_field(name)
        if value is None and not field.null and field.get_internal_type() in ("CharField", "TextField",
                                                                                "SlugField", "EmailField"):
            value = ""
        out[name] = value
    return out


def _scoped(request, model, capability, what):
    ids = require(request, capability, what)
    return model._default_manager.filter(**{f"{access.clinic_path_for(model)}__in": ids})


def _touch_all(request, rows) -> None:
    for row in rows:
        access.touch(request.auth, row)


# --- clinics ------------------------------------------------------------------------------------------------

@router.get("/clinics", response={200: page_of(ClinicOut), **READ_ERRORS}, summary="Your clinics")
def clinic_list(request, query: Query[ListQuery]):
    return paginate(_scoped(request, Clinic, access.ANY, "clinics"), query)


@router.get("/clinics/{clinic_id}", response={200: ClinicOut, **READ_ERRORS}, summary="One clinic")
def clinic_read(request, clinic_id: Id):
    require(request, access.ANY, "clinics")
    return get_object(request, Clinic, clinic_id, access.ANY)


# --- patients -----------------------------------------------------------------------------------------------

class PatientQuery(ListQuery):
    clinic: str | None = Field(None, description="Clinic code")
    mrn: str | None = Field(None, max_length=64)
    status: Literal[tuple(Patient.Status.values)] | None = None


def _patient_out(request, patient: Patient) -> Patient:
    """The patient as the role may see it: clinical notes only for their clinician (PatientOut.resolve_notes)."""
    hidden = patient.clinic_id not in access.clinic_ids(request.auth, access.CLINICAL)
    patient.hide_clinical = hidden  # type: ignore[attr-defined]  # read by PatientOut.resolve_notes
    return patient


@router.get("/patients", response={200: page_of(PatientOut), **READ_ERRORS}, summary="Patients")
def patient_list(request, query: Query[PatientQuery]):
    qs = _scoped(request, Patient, access.CONTACT, CONTACT).select_related("clinic")
    if query.clinic:
        qs = qs.filter(clinic__code=query.clinic)
    if query.mrn:
        qs = qs.filter(mrn=query.mrn)
    if query.status:
        qs = qs.filter(status=query.status)
    page = paginate(qs, query)
    _touch_all(request, page["items"])
    page["items"] = [_patient_out(request, p) for p in page["items"]]
    return page


@router.get("/patients/{patient_id}", response={200: PatientOut, **READ_ERRORS}, summary="One patient")
def patient_read(request, patient_id: Id):
    require(request, access.CONTACT, CONTACT)
    return _patient_out(request, get_object(request, Patient, patient_id, access.CONTACT,
                                            Patient.objects.select_related("clinic")))


def _clinic_for_new_patient(request, code: str | None) -> Clinic:
    clinics = list(Clinic.objects.filter(id__in=require(request, access.CLINICAL, CLINICAL)).order_by("code"))
    if code is None:
        if len(clinics) == 1:
            return clinics[0]
        raise ApiError(422, "Say which clinic: you work in several.", [("clinic", "Give the clinic's code.")])
    for clinic in clinics:
        if clinic.code == code:
            return clinic
    raise ApiError(404, f"No clinic {code!r} where you may record patients.",
                   [("clinic", f"No clinic {code!r} where you may record patients.")])


@router.post("/patients", response={201: PatientOut, **WRITE_ERRORS}, openapi_extra=IDEMPOTENT, summary="Record a patient")
def patient_create(request, payload: PatientIn):
    fields = changes(payload)
    clinic = _clinic_for_new_patient(request, fields.pop("clinic", None))
    return write(request, status=201, out=PatientOut, action=lambda: services.patient_create(
        clinic=clinic, request=request, actor=request.auth, **_fields(Patient, fields)))


@router.patch("/patients/{patient_id}", response={200: PatientOut, **WRITE_ERRORS},
              openapi_extra=IDEMPOTENT, summary="Change a patient")
def patient_update(request, patient_id: Id, payload: PatientPatch):
    require(request, access.CLINICAL, CLINICAL)
    patient = get_object(request, Patient, patient_id, access.CLINICAL, Patient.objects.select_related("clinic"))
    fields = changes(payload)
    no_changes_refused(fields)
    return write(request, status=200, out=PatientOut, action=lambda: services.patient_update(
        patient=patient, request=request, actor=request.auth, **_fields(Patient, fields)))


# --- episodes -----------------------------------------------------------------------------------------------

class EpisodeQuery(ListQuery):
    patient_id: Id | None = None
    condition: Literal[tuple(Condition.values)] | None = None
    body_site: Literal[tuple(BodySite.values)] | None = None
    side: Literal[tuple(Side.values)] | None = None
    status: Literal[tuple(Episode.Status.values)] | None = None


@router.get("/episodes", response={200: page_of(EpisodeOut), **READ_ERRORS}, summary="Episodes")
def episode_list(request, query: Query[EpisodeQuery]):
    qs = _scoped(request, Episode, access.CONTACT, CONTACT)
    for name in ("patient_id", "condition", "body_site", "side", "status"):
        if getattr(query, name) is not None:
            qs = qs.filter(**{name: getattr(query, name)})
    page = paginate(qs, query)
    _touch_all(request, page["items"])
    return page


@router.get("/episodes/{episode_id}", response={200: EpisodeOut, **READ_ERRORS}, summary="One episode")
def episode_read(request, episode_id: Id):
    require(request, access.CONTACT, CONTACT)
    return get_object(request, Episode, episode_id, access.CONTACT)


@router.post("/episodes", response={201: EpisodeOut, **WRITE_ERRORS}, openapi_extra=IDEMPOTENT, summary="Record an episode")
def episode_create(request, payload: EpisodeIn):
    require(request, access.CLINICAL, CLINICAL)
    fields = changes(payload)
    patient = get_object(request, Patient, fields.pop("patient_id"), location="patient_id")
    return write(request, status=201, out=EpisodeOut, action=lambda: services.episode_create(
        patient=patient, request=request, actor=request.auth, **_fields(Episode, fields)))


@router.patch("/episodes/{episode_id}", response={200: EpisodeOut, **WRITE_ERRORS},
              openapi_extra=IDEMPOTENT, summary="Change an episode")
def episode_update(request, episode_id: Id, payload: EpisodePatch):
    require(request, access.CLINICAL, CLINICAL)
    episode = get_object(request, Episode, episode_id)
    fields = changes(payload)
    no_changes_refused(fields)
    return write(request, status=200, out=EpisodeOut, action=lambda: services.episode_update(
        episode=episode, request=request, actor=request.auth, **_fields(Episode, fields)))


# --- records of an episode: grades, procedures, exams -------------------------------------------------------

class EpisodeRecordQuery(ListQuery):
    episode_id: Id | None = None
    patient_id: Id | None = None
    date_from: IsoDate | None = Field(None, description="On or after this date")
    date_to: IsoDate | None = Field(None, description="On or before this date")


def _episode_records(request, model, query: EpisodeRecordQuery, **extra):
    qs = _scoped(request, model, access.CLINICAL, CLINICAL)
    if query.episode_id is not None:
        qs = qs.filter(episode_id=query.episode_id)
    if query.patient_id is not None:
        qs = qs.filter(episode__patient_id=query.patient_id)
    if query.date_from is not None:
        qs = qs.filter(date__gte=query.date_from)
    if query.date_to is not None:
        qs = qs.filter(date__lte=query.date_to)
    qs = qs.filter(**{k: v for k, v in extra.items() if v is not None})
    page = paginate(qs, query)
    _touch_all(request, page["items"])
    return page


@router.get("/grades", response={200: page_of(GradeOut), **READ_ERRORS}, summary="Grades")
def grade_list(request, query: Query[EpisodeRecordQuery]):
    return _episode_records(request, Grade, query)


@router.get("/grades/{grade_id}", response={200: GradeOut, **READ_ERRORS}, summary="One grade")
def grade_read(request, grade_id: Id):
    require(request, access.CLINICAL, CLINICAL)
    return get_object(request, Grade, grade_id)


@router.post("/grades", response={201: GradeOut, **WRITE_ERRORS}, openapi_extra=IDEMPOTENT, summary="Record a grade")
def grade_create(request, payload: GradeIn):
    require(request, access.CLINICAL, CLINICAL)
    episode = get_object(request, Episode, payload.episode_id, location="episode_id")
    return write(request, status=201, out=GradeOut, action=lambda: services.grade_record(
        episode=episode, system=payload.system, date=payload.date, inputs=payload.inputs, grade=payload.grade,
        notes=payload.notes, request=request, actor=request.auth))


@router.patch("/grades/{grade_id}", response={200: GradeOut, **WRITE_ERRORS}, openapi_extra=IDEMPOTENT, summary="Change a grade")
def grade_update(request, grade_id: Id, payload: GradePatch):
    require(request, access.CLINICAL, CLINICAL)
    grade = get_object(request, Grade, grade_id, queryset=Grade.objects.select_related("episode__patient"))
    fields = changes(payload)
    no_changes_refused(fields)
    merged = {"system": grade.system, "date": grade.date, "inputs": grade.inputs, "grade": grade.grade,
              "notes": grade.notes, **{k: v for k, v in fields.items() if v is not None or k == "grade"}}
    return write(request, status=200, out=GradeOut, action=lambda: services.grade_record(
        episode=grade.episode, request=request, actor=request.auth, instance=grade, **merged))


class ProcedureQuery(EpisodeRecordQuery):
    kind: Literal[tuple(ProcedureKind.values)] | None = None
    is_index: bool | None = None


@router.get("/procedures", response={200: page_of(ProcedureOut), **READ_ERRORS}, summary="Procedures")
def procedure_list(request, query: Query[ProcedureQuery]):
    return _episode_records(request, Procedure, query, kind=query.kind, is_index=query.is_index)


@router.get("/procedures/{procedure_id}", response={200: ProcedureOut, **READ_ERRORS},
            summary="One procedure")
def procedure_read(request, procedure_id: Id):
    require(request, access.CLINICAL, CLINICAL)
    return get_object(request, Procedure, procedure_id)


@router.post("/procedures", response={201: ProcedureOut, **WRITE_ERRORS},
             openapi_extra=IDEMPOTENT, summary="Record a procedure (an index procedure schedules its follow-ups)")
def procedure_create(request, payload: ProcedureIn):
    require(request, access.CLINICAL, CLINICAL)
    fields = changes(payload)
    episode = get_object(request, Episode, fields.pop("episode_id"), location="episode_id")
    return write(request, status=201, out=ProcedureOut, action=lambda: services.procedure_record(
        episode=episode, request=request, actor=request.auth, **_fields(Procedure, fields)))


@router.patch("/procedures/{procedure_id}", response={200: ProcedureOut, **WRITE_ERRORS},
              openapi_extra=IDEMPOTENT, summary="Change a procedure (a changed index date re-plans its follow-ups)")
def procedure_update(request, procedure_id: Id, payload: ProcedurePatch):
    require(request, access.CLINICAL, CLINICAL)
    procedure = get_object(request, Procedure, procedure_id,
                           queryset=Procedure.objects.select_related("episode__patient"))
    fields = changes(payload)
    no_changes_refused(fields)
    return write(request, status=200, out=ProcedureOut, action=lambda: services.procedure_record(
        episode=procedure.episode, instance=procedure, request=request, actor=request.auth,
        **_fields(Procedure, fields)))


@router.get("/exams", response={200: page_of(ExamOut), **READ_ERRORS}, summary="Exams")
def exam_list(request, query: Query[EpisodeRecordQuery]):
    return _episode_records(request, Exam, query)


@router.get("/exams/{exam_id}", response={200: ExamOut, **READ_ERRORS}, summary="One exam")
def exam_read(request, exam_id: Id):
    require(request, access.CLINICAL, CLINICAL)
    return get_object(request, Exam, exam_id)


@router.post("/exams", response={201: ExamOut, **WRITE_ERRORS}, openapi_extra=IDEMPOTENT, summary="Record an exam")
def exam_create(request, payload: ExamIn):
    require(request, access.CLINICAL, CLINICAL)
    fields = changes(payload)
    episode = get_object(request, Episode, fields.pop("episode_id"), location="episode_id")
    return write(request, status=201, out=ExamOut, action=lambda: services.exam_record(
        episode=episode, request=request, actor=request.auth, **_fields(Exam, fields)))


@router.patch("/exams/{exam_id}", response={200: ExamOut, **WRITE_ERRORS}, openapi_extra=IDEMPOTENT, summary="Change an exam")
def exam_update(request, exam_id: Id, payload: ExamPatch):
    require(request, access.CLINICAL, CLINICAL)
    exam = get_object(request, Exam, exam_id, queryset=Exam.objects.select_related("episode__patient"))
    fields = changes(payload)
    no_changes_refused(fields)
    return write(request, status=200, out=ExamOut, action=lambda: services.exam_record(
        episode=exam.episode, instance=exam, request=request, actor=request.auth, **_fields(Exam, fields)))


# --- adverse events -----------------------------------------------------------------------------------------

class AdverseEventQuery(ListQuery):
    procedure_id: Id | None = None
    episode_id: Id | None = None
    serious: bool | None = None


@router.get("/adverse-events", response={200: page_of(AdverseEventOut), **READ_ERRORS}, summary="Adverse events")
def adverse_event_list(request, query: Query[AdverseEventQuery]):
    qs = _scoped(request, AdverseEvent, access.CLINICAL, CLINICAL)
    if query.procedure_id is not None:
        qs = qs.filter(procedure_id=query.procedure_id)
    if query.episode_id is not None:
        qs = qs.filter(procedure__episode_id=query.episode_id)
    if query.serious is not None:
        qs = qs.filter(serious=query.serious)
    page = paginate(qs.select_related("procedure__episode__patient"), query)
    _touch_all(request, page["items"])
    return page


@router.get("/adverse-events/{event_id}", response={200: AdverseEventOut, **READ_ERRORS},
            summary="One adverse event")
def adverse_event_read(request, event_id: Id):
    require(request, access.CLINICAL, CLINICAL)
    return get_object(request, AdverseEvent, event_id)


@router.post("/adverse-events", response={201: AdverseEventOut, **WRITE_ERRORS}, openapi_extra=IDEMPOTENT, summary="Record an adverse event")
def adverse_event_create(request, payload: AdverseEventIn):
    require(request, access.CLINICAL, CLINICAL)
    fields = changes(payload)
    procedure = get_object(request, Procedure, fields.pop("procedure_id"), location="procedure_id",
                           queryset=Procedure.objects.select_related("episode__patient"))
    return write(request, status=201, out=AdverseEventOut, action=lambda: services.adverse_event_record(
        procedure=procedure, request=request, actor=request.auth, **_fields(AdverseEvent, fields)))


@router.patch("/adverse-events/{event_id}", response={200: AdverseEventOut, **WRITE_ERRORS},
              openapi_extra=IDEMPOTENT, summary="Change an adverse event")
def adverse_event_update(request, event_id: Id, payload: AdverseEventPatch):
    require(request, access.CLINICAL, CLINICAL)
    event = get_object(request, AdverseEvent, event_id,
                       queryset=AdverseEvent.objects.select_related("procedure__episode__patient"))
    fields = changes(payload)
    no_changes_refused(fields)
    return write(request, status=200, out=AdverseEventOut, action=lambda: services.adverse_event_record(
        procedure=event.procedure, instance=event, request=request, actor=request.auth,
        **_fields(AdverseEvent, fields)))


