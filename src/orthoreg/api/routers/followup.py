"""/api/v1/assessments (the follow-up schedule: list, read, cancel) and /api/v1/responses (questionnaire
answers with their scores: list, read, record). Responses are scored by the instrument's one scoring function
when recorded (instruments.services.response_record) and complete the assessment they answer."""

from __future__ import annotations

from typing import Literal

from ninja import Field, Query, Router

from orthoreg.accounts import access
from orthoreg.followup import services as followup_services
from orthoreg.followup.models import Assessment
from orthoreg.instruments import services as instrument_services
from orthoreg.instruments.models import Response
from orthoreg.registry.models import Episode, Patient

from ..common import IDEMPOTENT, READ_ERRORS, WRITE_ERRORS, Id, ListQuery, get_object, page_of, paginate, require, write
from ..resources import AssessmentOut, AssessmentPatch, ResponseIn, ResponseOut
from ..schemas import IsoDate

router = Router(tags=["follow-up"])


class AssessmentQuery(ListQuery):
    patient_id: Id | None = None
    episode_id: Id | None = None
    status: Literal[tuple(Assessment.Status.values)] | None = None
    time_point: str | None = Field(None, max_length=16)
    instrument: str | None = Field(None, max_length=40)
    due_from: IsoDate | None = Field(None, description="Due on or after this date")
    due_to: IsoDate | None = Field(None, description="Due on or before this date")


@router.get("/assessments", response={200: page_of(AssessmentOut), **READ_ERRORS},
            summary="Scheduled, completed and cancelled assessments")
def assessment_list(request, query: Query[AssessmentQuery]):
    ids = require(request, access.CONTACT, "follow-up")
    qs = Assessment.objects.filter(patient__clinic_id__in=ids)
    for name in ("patient_id", "episode_id", "status", "time_point", "instrument"):
        if getattr(query, name) is not None:
            qs = qs.filter(**{name: getattr(query, name)})
    if query.due_from is not None:
        qs = qs.filter(due_date__gte=query.due_from)
    if query.due_to is not None:
        qs = qs.filter(due_date__lte=query.due_to)
    page = paginate(qs, query)
    for row in page["items"]:
        access.touch(request.auth, row)
    return page


@router.get("/assessments/{assessment_id}", response={200: AssessmentOut, **READ_ERRORS},
            summary="One assessment")
def assessment_read(request, assessment_id: Id):
    require(request, access.CONTACT, "follow-up")
    return get_object(request, Assessment, assessment_id, access.CONTACT)


@router.patch("/assessments/{assessment_id}", response={200: AssessmentOut, **WRITE_ERRORS},
              openapi_extra=IDEMPOTENT, summary="Cancel a scheduled assessment")
def assessment_update(request, assessment_id: Id, payload: AssessmentPatch):
    require(request, access.CONTACT, "follow-up")
    assessment = get_object(request, Assessment, assessment_id, access.CONTACT,
                            Assessment.objects.select_related("patient", "episode"))
    return write(request, status=200, out=AssessmentOut, action=lambda: followup_services.assessment_cancel(
        assessment=assessment, reason=payload.reason, request=request))


class ResponseQuery(ListQuery):
    patient_id: Id | None = None
    episode_id: Id | None = None
    instrument: str | None = Field(None, max_length=40)
    time_point: str | None = Field(None, max_length=16)


@router.get("/responses", response={200: page_of(ResponseOut), **READ_ERRORS},
            summary="Questionnaire responses with their scores")
def response_list(request, query: Query[ResponseQuery]):
    ids = require(request, access.CLINICAL, "questionnaire responses")
    qs = Response.objects.filter(patient__clinic_id__in=ids)
    for name in ("patient_id", "episode_id", "instrument", "time_point"):
        if getattr(query, name) is not None:
            qs = qs.filter(**{name: getattr(query, name)})
    page = paginate(qs, query)
    for row in page["items"]:
        access.touch(request.auth, row)
    return page


@router.get("/responses/{response_id}", response={200: ResponseOut, **READ_ERRORS}, summary="One response")
def response_read(request, response_id: Id):
    require(request, access.CLINICAL, "questionnaire responses")
    return get_object(request, Response, response_id)


@router.post("/responses", response={201: ResponseOut, **WRITE_ERRORS},
             openapi_extra=IDEMPOTENT, summary="Record a response (scored; completes the assessment it answers)")
def response_create(request, payload: ResponseIn):
    require(request, access.CLINICAL, "questionnaire responses")
    patient = get_object(request, Patient, payload.patient_id, location="patient_id")
    episode = None
    if payload.episode_id is not None:
        episode = get_object(request, Episode, payload.episode_id, location="episode_id")
    return write(request, status=201, out=ResponseOut, action=lambda: instrument_services.response_record(
        patient=patient, episode=episode, instrument=payload.instrument, answers=payload.answers,
        time_point=payload.time_point, completed_at=payload.completed_at, source=payload.source,
        entered_by=request.auth, request=request))
