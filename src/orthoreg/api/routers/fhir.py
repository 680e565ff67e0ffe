"""/api/v1/fhir: FHIR R4 in and out.

`GET /fhir/Patient/{id}/$everything`: the patient's records as a searchset Bundle (a role without clinical access
anywhere answers 403, as every clinical operation; a patient of a clinic where the user has none answers 404). `POST /fhir`: a transaction Bundle, imported all or nothing, or a
batch Bundle, each entry on its own (docs/fhir.md); the answer is the import summary, or 422 naming every refused entry.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from ninja import Query, Router, Schema, Status

from orthoreg.accounts import access
from orthoreg.accounts.models import AuditEvent, Role
from orthoreg.accounts.services import audit_record
from orthoreg.interop.fhir import export, imports
from orthoreg.registry.models import Clinic

from ..common import IDEMPOTENT, READ_ERRORS, WRITE_ERRORS, error_body, idempotent, require

router = Router(tags=["fhir"])


class ImportQuery(Schema):
    clinic: str | None = None
    dry_run: bool = False


class ImportSummary(Schema):
    ok: bool
    dry_run: bool
    units: list[dict[str, Any]]
    resources: dict[str, dict[str, Any]]


@router.get("/Patient/{patient_id}/$everything", response={200: dict, **READ_ERRORS},
            summary="A patient's records as a FHIR R4 Bundle")
def patient_everything(request, patient_id: int):
    """Patient, Condition, Procedure, QuestionnaireResponse, Observation (scores and joint space widths),
    AdverseEvent, ImagingStudy and the Questionnaires answered, each validated against FHIR R4."""
    user = request.auth
    require(request, access.CLINICAL, "clinical records")
    try:
        patient = access.access_patient(user, patient_id)
    except Http404:  # the one answer for "not yours" and "not there"
        return Status(404, error_body("No such patient."))
    bundle = export.patient_everything(patient, request.build_absolute_uri("/api/v1/fhir/"))
    audit_record(request=request, user=user, action=AuditEvent.Action.EXPORT, obj=patient,
                 detail=f"API FHIR Patient/$everything: {bundle['total']} resources")
    return Status(200, bundle)


@router.post("", response={200: ImportSummary, **WRITE_ERRORS},
             summary="Import a FHIR R4 transaction or batch Bundle",
             openapi_extra={**IDEMPOTENT, "requestBody": {"required": True, "content": {
                 "application/json": {"schema": {"type": "object"}},
                 "application/fhir+json": {"schema": {"type": "object"}}}}})
def fhir_import(request, params: Query[ImportQuery]):
    """A transaction Bundle is all or nothing: any refused entry leaves the registry unchanged and is named in
    `errors` (each with its location and message), 422. A batch Bundle's entries succeed or fail each on its own:
    200 with `ok` false when some were refused, each entry's outcome in `units[0].entries` (its location, `status`
    created, updated, skipped or refused, and the message); 422 when none could be written. Patients go to
    `clinic` (a code), else to the clinic the Patient names, else to your only clinic. Idempotent under an
    Idempotency-Key header, as every write: the same key and Bundle answer the same summary again without
    importing twice."""
    user = request.auth
    allowed = access.clinic_ids(user, access.CLINICAL)
    if not allowed:
        return Status(403, error_body("Your role gives no clinic where you may record clinical data."))
    clinic = None
    if params.clinic:
        clinic = Clinic.objects.filter(code=params.clinic, pk__in=allowed).first()
        if clinic is None:
            return Status(403, error_body(f"You may not record data in clinic {params.clinic!r}.",
                                          [("clinic", "not one of your clinics")]))
    try:
        document = imports._loads(imports._decode(request.body, "body"), "body")
    except imports.UnitError as exc:
        return Status(400, error_body(exc.message, [(exc.location, exc.message)]))
    if not isinstance(document, dict) or document.get("resourceType") != "Bundle" \
            or document.get("type") not in ("transaction", "batch"):
        message = "POST /api/v1/fhir takes a Bundle of type transaction or batch"
        return Status(422, error_body(message, [("body", message)]))

    def run() -> tuple[int, dict]:
        summary = imports.Summary(dry_run=params.dry_run)
        ctx = imports.Context(clinic=clinic, actor=user, request=request, dry_run=params.dry_run,
                              allowed_clinic_ids=allowed,
                              may_install_instruments=Role.ADMIN in access.roles(user))
        with imports.run_scope(ctx):
            imports.import_document("body", document, ctx=ctx, summary=summary)
        if any(unit["status"] == "refused" for unit in summary.units):
            errors = [(error["location"], error["message"])
                      for resource_summary in summary.types.values() for error in resource_summary.errors]
            return 422, error_body("Refused: nothing was written.", errors)
        audit_record(request=request, user=user, action=AuditEvent.Action.CREATE,
                     detail=f"API FHIR import: {sum(s.created for s in summary.types.values())} created, "
                            f"{sum(s.updated for s in summary.types.values())} updated")
        return 200, summary.as_dict()

    return idempotent(request, run)
