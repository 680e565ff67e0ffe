"""/api/v1/clinics, patients, episodes, grades, procedures, exams, adverse-events: list (cursor pagination,
filters, updated_since), read, create, update. Reads and writes are scoped with the access functions the pages
use (accounts.access); writes go through the registry's services, as the web forms do (validation, audit,
follow-up scheduling, analytics marks)."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, Literal, cast

from django.db.models import Model, QuerySet
from ninja import Field, Query, Router, Schema

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


# --- records declared once: list, read, create, update -----------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Resource:
    """One kind of record of the API, declared once: `record_routes` adds its four operations (list, read,
    create, update) with the same paths, operation ids, parameters and answers as written by hand.

    `parent` is the (field, model) a new record hangs on (its id in the body, 404 when unreachable); `create` and
    `update` call the record's service with (parent or record, request, fields); `filters` narrows the list by the
    query; `related` is what reading one for a change selects with it."""

    noun: str  # operation ids: <noun>_list, <noun>_read, <noun>_create, <noun>_update
    path: str
    id_name: str
    model: type[Model]
    out: type[Schema]
    schemas: tuple[type[Schema], type[Schema]]  # (In, Patch)
    query: type[ListQuery]
    summaries: tuple[str, str, str, str]  # list, read, create, update
    parent: tuple[str, type[Model]]
    create: Callable[[Any, Any, dict], Model]
    update: Callable[[Any, Any, dict], Model]
    filters: Callable[[QuerySet, Any], QuerySet] = lambda qs, query: qs
    related: tuple[str, ...] = ()
    list_capability: frozenset = access.CLINICAL
    list_related: tuple[str, ...] = ()
    parent_related: tuple[str, ...] = ()


def _operation(func, noun: str, verb: str, **params: Any):
    """`func` as the view of <noun>_<verb>: its operation id, and the signature ninja reads its parameters from."""
    func.__name__ = func.__qualname__ = f"{noun}_{verb}"
    func.__module__ = __name__
    func.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        *(inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation)
          for name, annotation in params.items())])
    return func


def record_routes(router: Router, r: Resource) -> None:
    item = f"{r.path}/{{{r.id_name}}}"
    what = CONTACT if r.list_capability == access.CONTACT else CLINICAL
    schema_in, schema_patch = r.schemas
    queryset = r.model._default_manager.select_related(*r.related) if r.related else None
    parent_queryset = r.parent[1]._default_manager.select_related(*r.parent_related) if r.parent_related else None

    def list_(request, query):
        qs = r.filters(_scoped(request, r.model, r.list_capability, what), query)
        page = paginate(qs.select_related(*r.list_related) if r.list_related else qs, query)
        _touch_all(request, page["items"])
        return page

    def read(request, **ids):
        require(request, r.list_capability, what)
        return get_object(request, r.model, ids[r.id_name], r.list_capability)

    def create(request, payload):
        require(request, access.CLINICAL, CLINICAL)
        fields = changes(payload)
        field, model = r.parent
        parent = get_object(request, model, fields.pop(field), location=field, queryset=parent_queryset)
        return write(request, status=201, out=r.out, action=lambda: r.create(parent, request, fields))

    def update(request, payload, **ids):
        require(request, access.CLINICAL, CLINICAL)
        record = get_object(request, r.model, ids[r.id_name], queryset=queryset)
        fields = changes(payload)
        no_changes_refused(fields)
        return write(request, status=200, out=r.out, action=lambda: r.update(record, request, fields))

    summary_list, summary_read, summary_create, summary_update = r.summaries
    router.get(r.path, response={200: page_of(r.out), **READ_ERRORS}, summary=summary_list)(
        _operation(list_, r.noun, "list", query=cast(Any, Query)[r.query]))
    router.get(item, response={200: r.out, **READ_ERRORS}, summary=summary_read)(
        _operation(read, r.noun, "read", **{r.id_name: Id}))
    router.post(r.path, response={201: r.out, **WRITE_ERRORS}, openapi_extra=IDEMPOTENT, summary=summary_create)(
        _operation(create, r.noun, "create", payload=schema_in))
    router.patch(item, response={200: r.out, **WRITE_ERRORS}, openapi_extra=IDEMPOTENT, summary=summary_update)(
        _operation(update, r.noun, "update", **{r.id_name: Id}, payload=schema_patch))


def _by(model: type[Model], service: Callable[..., Model], parent: str) -> Callable[[Any, Any, dict], Model]:
    """A service called with the parent record (`parent=`) and the fields, None in text fields as empty."""
    return lambda obj, request, fields: service(**{parent: obj}, request=request, actor=request.auth,
                                                **_fields(model, fields))


def _changing(model: type[Model], service: Callable[..., Model], parent: str) -> Callable[[Any, Any, dict], Model]:
    """A service called to change `instance` (its parent record given as `parent=`)."""
    return lambda obj, request, fields: service(**{parent: getattr(obj, parent)}, instance=obj, request=request,
                                                actor=request.auth, **_fields(model, fields))


# --- episodes -----------------------------------------------------------------------------------------------

class EpisodeQuery(ListQuery):
    patient_id: Id | None = None
    condition: Literal[tuple(Condition.values)] | None = None
    body_site: Literal[tuple(BodySite.values)] | None = None
    side: Literal[tuple(Side.values)] | None = None
    status: Literal[tuple(Episode.Status.values)] | None = None


def _episode_filters(qs: QuerySet, query: EpisodeQuery) -> QuerySet:
    for name in ("patient_id", "condition", "body_site", "side", "status"):
        if getattr(query, name) is not None:
            qs = qs.filter(**{name: getattr(query, name)})
    return qs


record_routes(router, Resource(
    noun="episode", path="/episodes", id_name="episode_id", model=Episode, out=EpisodeOut,
    schemas=(EpisodeIn, EpisodePatch), query=EpisodeQuery, filters=_episode_filters, list_capability=access.CONTACT,
    summaries=("Episodes", "One episode", "Record an episode", "Change an episode"),
    parent=("patient_id", Patient), create=_by(Episode, services.episode_create, "patient"),
    update=lambda episode, request, fields: services.episode_update(
        episode=episode, request=request, actor=request.auth, **_fields(Episode, fields))))


# --- records of an episode: grades, procedures, exams -------------------------------------------------------

class EpisodeRecordQuery(ListQuery):
    episode_id: Id | None = None
    patient_id: Id | None = None
    date_from: IsoDate | None = Field(None, description="On or after this date")
    date_to: IsoDate | None = Field(None, description="On or before this date")


def _episode_record_filters(qs: QuerySet, query: EpisodeRecordQuery) -> QuerySet:
    if query.episode_id is not None:
        qs = qs.filter(episode_id=query.episode_id)
    if query.patient_id is not None:
        qs = qs.filter(episode__patient_id=query.patient_id)
    if query.date_from is not None:
        qs = qs.filter(date__gte=query.date_from)
    if query.date_to is not None:
        qs = qs.filter(date__lte=query.date_to)
    return qs


def _grade_update(grade: Grade, request, fields: dict) -> Grade:
    """A grade is recomputed from all its inputs: the fields given over those it had (a grade of null: the
    calculator's suggestion)."""
    merged = {"system": grade.system, "date": grade.date, "inputs": grade.inputs, "grade": grade.grade,
              "notes": grade.notes, **{k: v for k, v in fields.items() if v is not None or k == "grade"}}
    return services.grade_record(episode=grade.episode, request=request, actor=request.auth, instance=grade,
                                 **merged)


record_routes(router, Resource(
    noun="grade", path="/grades", id_name="grade_id", model=Grade, out=GradeOut, schemas=(GradeIn, GradePatch),
    query=EpisodeRecordQuery, filters=_episode_record_filters, related=("episode__patient",),
    summaries=("Grades", "One grade", "Record a grade", "Change a grade"),
    parent=("episode_id", Episode),
    create=lambda episode, request, fields: services.grade_record(
        episode=episode, system=fields["system"], date=fields["date"], inputs=fields.get("inputs", {}),
        grade=fields.get("grade"), notes=fields.get("notes", ""), request=request, actor=request.auth),
    update=_grade_update))


class ProcedureQuery(EpisodeRecordQuery):
    kind: Literal[tuple(ProcedureKind.values)] | None = None
    is_index: bool | None = None


def _procedure_filters(qs: QuerySet, query: ProcedureQuery) -> QuerySet:
    qs = _episode_record_filters(qs, query)
    return qs.filter(**{k: v for k, v in (("kind", query.kind), ("is_index", query.is_index)) if v is not None})


record_routes(router, Resource(
    noun="procedure", path="/procedures", id_name="procedure_id", model=Procedure, out=ProcedureOut,
    schemas=(ProcedureIn, ProcedurePatch), query=ProcedureQuery, filters=_procedure_filters,
    related=("episode__patient",),
    summaries=("Procedures", "One procedure", "Record a procedure (an index procedure schedules its follow-ups)",
               "Change a procedure (a changed index date re-plans its follow-ups)"),
    parent=("episode_id", Episode), create=_by(Procedure, services.procedure_record, "episode"),
    update=_changing(Procedure, services.procedure_record, "episode")))

record_routes(router, Resource(
    noun="exam", path="/exams", id_name="exam_id", model=Exam, out=ExamOut, schemas=(ExamIn, ExamPatch),
    query=EpisodeRecordQuery, filters=_episode_record_filters, related=("episode__patient",),
    summaries=("Exams", "One exam", "Record an exam", "Change an exam"),
    parent=("episode_id", Episode), create=_by(Exam, services.exam_record, "episode"),
    update=_changing(Exam, services.exam_record, "episode")))


# --- adverse events -----------------------------------------------------------------------------------------

class AdverseEventQuery(ListQuery):
    procedure_id: Id | None = None
    episode_id: Id | None = None
    serious: bool | None = None


def _adverse_event_filters(qs: QuerySet, query: AdverseEventQuery) -> QuerySet:
    if query.procedure_id is not None:
        qs = qs.filter(procedure_id=query.procedure_id)
    if query.episode_id is not None:
        qs = qs.filter(procedure__episode_id=query.episode_id)
    if query.serious is not None:
        qs = qs.filter(serious=query.serious)
    return qs


record_routes(router, Resource(
    noun="adverse_event", path="/adverse-events", id_name="event_id", model=AdverseEvent, out=AdverseEventOut,
    schemas=(AdverseEventIn, AdverseEventPatch), query=AdverseEventQuery, filters=_adverse_event_filters,
    related=("procedure__episode__patient",), list_related=("procedure__episode__patient",),
    parent_related=("episode__patient",),
    summaries=("Adverse events", "One adverse event", "Record an adverse event", "Change an adverse event"),
    parent=("procedure_id", Procedure), create=_by(AdverseEvent, services.adverse_event_record, "procedure"),
    update=_changing(AdverseEvent, services.adverse_event_record, "procedure")))
