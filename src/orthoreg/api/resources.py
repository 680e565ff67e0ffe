"""Schemas of the registry's records as the API reads and writes them.

References to other records are ids named `<record>_id` (e.g. episode_id). What a client may write is what the
web forms let a person write (registry.forms), and every write goes through the same service.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from django.db import models
from ninja import Field, ModelSchema, Schema

from orthoreg.api.common import Id
from orthoreg.followup.models import Assessment
from orthoreg.imaging.models import Image, ImagingStudy, Measurement
from orthoreg.instruments.models import Response
from orthoreg.registry.forms import AdverseEventForm, EpisodeForm, ExamForm, PatientForm, ProcedureForm
from orthoreg.registry.models import AdverseEvent, Clinic, Episode, Exam, Grade, Patient, Procedure

# --- out ----------------------------------------------------------------------------------------------------


class ClinicOut(ModelSchema):
    class Meta:
        model = Clinic
        fields = ["id", "code", "name", "timezone", "invitations_require_consent", "public_outcomes",
                  "created_at", "updated_at"]


class PatientOut(ModelSchema):
    clinic: str = Field(description="The clinic's code")
    notes: str | None = Field(None, description="Clinical notes: null for a role without clinical access")

    class Meta:
        model = Patient
        fields = ["id", *[f for f in PatientForm.Meta.fields if f != "notes"], "created_at", "updated_at"]

    # A stored answer (an idempotent write replayed) comes back as the dict it was.
    @staticmethod
    def resolve_clinic(obj) -> str:
        return obj["clinic"] if isinstance(obj, dict) else obj.clinic.code

    @staticmethod
    def resolve_notes(obj) -> str | None:
        if isinstance(obj, dict):
            return obj.get("notes")
        return None if getattr(obj, "hide_clinical", False) else obj.notes


class EpisodeOut(ModelSchema):
    patient_id: Id

    class Meta:
        model = Episode
        fields = ["id", *EpisodeForm.Meta.fields, "created_at", "updated_at"]


class GradeOut(ModelSchema):
    episode_id: Id
    inputs: dict[str, Any]
    flags: list[Any]

    class Meta:
        model = Grade
        fields = ["id", "date", "system", "suggested_grade", "discordant", "grade", "notes", "updated_at"]


class ProcedureOut(ModelSchema):
    episode_id: Id

    class Meta:
        model = Procedure
        fields = ["id", *ProcedureForm.Meta.fields, "created_at", "updated_at"]


class ExamOut(ModelSchema):
    episode_id: Id

    class Meta:
        model = Exam
        fields = ["id", *ExamForm.Meta.fields, "updated_at"]


class AdverseEventOut(ModelSchema):
    procedure_id: Id

    class Meta:
        model = AdverseEvent
        fields = ["id", *AdverseEventForm.Meta.fields, "updated_at"]


class AssessmentOut(ModelSchema):
    patient_id: Id
    episode_id: Id
    response_id: int | None

    class Meta:
        model = Assessment
        fields = ["id", "time_point", "instrument", "due_date", "window_start", "window_end", "status",
                  "cancelled_reason", "completed_at", "updated_at"]


class ResponseOut(ModelSchema):
    patient_id: Id
    episode_id: int | None
    answers: list[Any]
    scores: dict[str, Any] = Field(description="Subscale code -> score")

    class Meta:
        model = Response
        fields = ["id", "time_point", "instrument", "instrument_version", "score", "valid", "invalid_reason",
                  "completed_at", "source", "created_at", "updated_at"]


class StudyOut(ModelSchema):
    episode_id: Id

    class Meta:
        model = ImagingStudy
        fields = ["id", "date", "description", "created_at", "updated_at"]


class ImageOut(ModelSchema):
    study: StudyOut
    header: dict[str, Any]

    class Meta:
        model = Image
        fields = ["id", "original_name", "original_size", "format", "modality", "view", "side", "width", "height",
                  "bits", "photometric", "spacing_row_mm", "spacing_col_mm", "calibration_source", "caption",
                  "created_at", "updated_at"]


class MeasurementOut(ModelSchema):
    image_id: Id
    line: list[float]
    results: dict[str, Any]

    class Meta:
        model = Measurement
        fields = ["id", "method", "medial", "central", "lateral", "minimum", "unit", "mm_per_px",
                  "calibration_source", "accepted", "accepted_at", "created_at", "updated_at"]


# --- in -----------------------------------------------------------------------------------------------------


def writes_of(model: type[models.Model], fields: list[str], *, name: str, **extra: tuple[Any, Any]
              ) -> tuple[type[ModelSchema], type[ModelSchema]]:
    """The (In, Patch) schemas of a record written with a web form's fields: In needs what the form needs (and the
    `extra` fields, name -> (type, default or ...), such as the id of the record it belongs to); Patch takes any of
    the form's fields. Named <name>In and <name>Patch in the OpenAPI schema."""
    def schema(suffix: str, meta: dict, namespace: dict) -> type[ModelSchema]:
        qualname = f"{name}{suffix}"  # Meta is nested in it, as in a class statement (pydantic leaves it alone)
        nested = type("Meta", (), {**meta, "__module__": __name__, "__qualname__": f"{qualname}.Meta"})
        return type(qualname, (ModelSchema,), {"__module__": __name__, "__qualname__": qualname, "Meta": nested,
                                               **namespace})

    meta = {"model": model, "fields": fields}
    defaults = {key: default for key, (_, default) in extra.items() if default is not ...}
    return (schema("In", meta, {"__annotations__": {key: kind for key, (kind, _) in extra.items()}, **defaults}),
            schema("Patch", {**meta, "fields_optional": "__all__"}, {}))


PatientIn, PatientPatch = writes_of(Patient, PatientForm.Meta.fields, name="Patient", clinic=(
    str | None, Field(None, description="The clinic's code (may be left out when you work in one clinic)")))
EpisodeIn, EpisodePatch = writes_of(Episode, EpisodeForm.Meta.fields, name="Episode", patient_id=(Id, ...))
ProcedureIn, ProcedurePatch = writes_of(Procedure, ProcedureForm.Meta.fields, name="Procedure", episode_id=(Id, ...))
ExamIn, ExamPatch = writes_of(Exam, ExamForm.Meta.fields, name="Exam", episode_id=(Id, ...))
AdverseEventIn, AdverseEventPatch = writes_of(AdverseEvent, AdverseEventForm.Meta.fields, name="AdverseEvent",
                                              procedure_id=(Id, ...))


class GradeIn(Schema):
    episode_id: Id
    date: dt.date
    system: Literal[tuple(Grade.System.values)]
    inputs: dict[str, Any] = Field({}, description="The calculator's inputs (as on the grade form)")
    grade: int | None = Field(None, ge=0, le=4, description="Grade of record; left out: the suggestion")
    notes: str = ""


class GradePatch(Schema):
    date: dt.date | None = None
    system: Literal[tuple(Grade.System.values)] | None = None
    inputs: dict[str, Any] | None = None
    grade: int | None = Field(None, ge=0, le=4)
    notes: str | None = None


class ResponseIn(Schema):
    patient_id: Id
    episode_id: int | None = None
    instrument: str = Field(max_length=40, description="Instrument code, e.g. nprs")
    answers: list[Any] = Field(description="In item order; null = not applicable or unanswered")
    time_point: str = Field("", max_length=16, description="baseline, 6w, 3m, 6m, 12m, 24m, ...")
    completed_at: dt.datetime | None = Field(None, description="Default: now")
    source: Literal[tuple(Response.Source.values)] = Response.Source.IMPORT


class AssessmentPatch(Schema):
    status: Literal["cancelled"] = Field(description="The one change a client may make: cancel it")
    reason: str = Field(min_length=1, max_length=200, description="Why (kept with the assessment)")


class ImagePatch(Schema):
    view: Literal[tuple(Image.View.values)] | None = None
    side: str | None = Field(None, max_length=10)
    caption: str | None = Field(None, max_length=300)


class MeasurementIn(Schema):
    image_id: Id
    line: list[float] = Field(min_length=4, max_length=4, description="X1, Y1, X2, Y2 in pixels; the first point "
                                                                        "is the medial end")
