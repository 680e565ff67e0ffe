"""FHIR R4 export: registry records as FHIR resources (plain dicts), each validated against the fhir.resources
R4B model of its type before it leaves.

`patient_everything` builds the Bundle of `GET /api/v1/fhir/Patient/{id}/$everything`; `bulk_export` writes Bulk
Data ndjson (one file per resource type), streaming each table in chunks so memory stays bounded whatever the
registry's size. The mapping is documented in docs/fhir.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import itertools
import json
import os
import re
import shutil
import tempfile
import typing
import uuid
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.db.models import QuerySet
from fhir.resources.R4B import get_fhir_model_class
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from fhir_core.types import FhirBase, FhirElementOrResourceBase
from pydantic import ValidationError as PydanticValidationError

from orthoreg.imaging.models import ImagingStudy, Measurement
from orthoreg.instruments.definitions import UnknownInstrument, get_definition
from orthoreg.instruments.definitions import all_definitions as instrument_definitions
from orthoreg.instruments.models import Response
from orthoreg.instruments.types import Definition, DefinitionError
from orthoreg.registry import coding
from orthoreg.registry.models import AdverseEvent, Episode, Patient, Procedure

from . import codes

CHUNK = 2000
# The order of the ndjson files (an import reads a directory in this order, so references resolve).
RESOURCE_ORDER = ("Patient", "Questionnaire", "Condition", "Procedure", "QuestionnaireResponse", "Observation",
                  "AdverseEvent", "ImagingStudy")


class ExportError(RuntimeError):
    """A resource built by the export does not validate: a defect of the mapping, never of the data."""


def validate(resource: dict) -> dict:
    """Check one resource against its R4B model; return it unchanged."""
    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except PydanticValidationError as exc:
        raise ExportError(f"{resource['resourceType']}/{resource.get('id')} does not validate: {exc}") from exc
    return resource


def _element_model(annotation) -> tuple[type[FHIRAbstractModel], bool] | None:
    """The R4B element model a field of a model holds, and whether the field is a list, read from the field's
    annotation; None for primitives, for fields that hold any resource (Bundle.entry.resource, contained: those
    are validated with their parent) and for anything not recognised (validated with the parent too)."""
    if isinstance(annotation, type):
        if issubclass(annotation, FhirBase) and not issubclass(annotation, FhirElementOrResourceBase):
            model = annotation.get_model_klass()
            if isinstance(model, type) and issubclass(model, FHIRAbstractModel):
                return model, False
        return None
    found = [m for m in (_element_model(a) for a in typing.get_args(annotation) if a is not type(None)) if m]
    if len(found) != 1:
        return None
    model, many = found[0]
    return model, many or typing.get_origin(annotation) is list


@functools.cache
def _element_fields(model: type[FHIRAbstractModel]) -> dict[str, tuple[type[FHIRAbstractModel], bool]]:
    """JSON name -> (element model, is a list) of the fields of a model that hold complex elements."""
    fields = {}
    for name, field in model.model_fields.items():
        element = _element_model(field.annotation)
        if element is not None:
            fields[field.alias or name] = element
    return fields


class Validator:
    """`validate`, each distinct complex element validated once: the same as validating every resource whole,
    in a fraction of the time (an export repeats the same codings, categories, answers and extensions
    thousands of times).

    fhir.resources validates a complex element of a resource on its own, with its own model (a dict goes
    through `Model.model_validate`, whatever the resource around it), and accepts an instance of that model in
    its place as already validated. So each complex element is validated here with its model, bottom-up, and
    remembered by its exact JSON text (which tells 1 from 1.0 and True, and keeps key order); the resource is
    then validated with those instances in place of the elements. Only elements that validated are
    remembered; an invalid resource is validated whole again, so its error names the path as `validate`'s
    does. The memory is bounded: forgotten whenever it holds `max_elements` elements."""

    def __init__(self, max_elements: int = 20_000) -> None:
        self.max_elements = max_elements
        self._valid: dict[tuple[type, str], FHIRAbstractModel] = {}

    def __call__(self, resource: dict) -> dict:
        model = get_fhir_model_class(resource["resourceType"])
        try:
            model.model_validate(self._with_elements(resource, model))
        except PydanticValidationError as exc:
            validate(resource)  # raises ExportError with the path of the fault in the resource
            raise ExportError(f"{resource['resourceType']}/{resource.get('id')} does not validate: {exc}") from exc
        return resource

    def passes(self, resource: dict, model: type[FHIRAbstractModel]) -> bool:
        """Does resource validate with model, checked element by element (False whatever the fault: the caller
        then validates it whole, for the verdict and the message `model.model_validate` gives)? The import's
        check of arbitrary input: a True here is the whole validation's True."""
        try:
            model.model_validate(self._with_elements(resource, model))
        except Exception:  # any fault: validated whole again by the caller
            return False
        return True

    def _with_elements(self, value: dict, model: type[FHIRAbstractModel]) -> dict:
        """A copy of value with each of its complex elements replaced by its validated model instance."""
        fields = _element_fields(model)
        out = value
        for name, item in value.items():
            element = fields.get(name)
            if element is None or item is None:
                continue
            if out is value:
                out = dict(value)
            element_model, many = element
            if many and isinstance(item, list):
                out[name] = [self._element(x, element_model) if isinstance(x, dict) else x for x in item]
            elif isinstance(item, dict):
                out[name] = self._element(item, element_model)
        return out

    def _element(self, value: dict, model: type[FHIRAbstractModel]) -> Any:
        try:
            key = (model, json.dumps(value))
        except (TypeError, ValueError):
            return value  # not JSON: left to the parent's validation
        instance = self._valid.get(key)
        if instance is None:
            instance = model.model_validate(self._with_elements(value, model))
            if len(self._valid) >= self.max_elements:
                self._valid.clear()
            self._valid[key] = instance
        return instance


def _num(value) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and abs(value) < 1e15 else float(value)
    return value


def _ident(kind: str, value) -> dict:
    return {"system": codes.id_system(kind), "value": str(value)}


def _ref(resource_type: str, pk) -> dict:
    return {"reference": f"{resource_type}/{pk}"}


def _fhir_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9\-.]", "-", text)[:64]


def body_site(site: str, side: str, extra_text: str = "") -> dict:
    """bodySite: orthoreg's body-site code, the laterality (SNOMED CT qualifier) as an extension, a text."""
    label = coding.BodySite(site).label if site in coding.BodySite.values else site
    concept: dict[str, Any] = {"coding": [{"system": codes.CS_BODY_SITE, "code": site, "display": label}]}
    words = label
    if side in codes.LATERALITY:
        code, display = codes.LATERALITY[side]  # type: ignore[index]
        concept["extension"] = [{"url": codes.EXT_LATERALITY, "valueCodeableConcept": {
            "coding": [{"system": codes.SNOMED, "code": code, "display": display}]}}]
        words = f"{display} {label[:1].lower()}{label[1:]}"
    concept["text"] = f"{words}{extra_text}"
    return concept


# --- one record -> one resource ---------------------------------------------------------------------------

def patient_resource(p: Patient) -> dict:
    r: dict[str, Any] = {
        "resourceType": "Patient", "id": str(p.pk),
        "identifier": [
            {"use": "usual", "type": {"coding": [{"system": codes.V2_0203, "code": "MR"}]},
             "system": codes.mrn_system(p.clinic.code), "value": p.mrn},
            _ident("patient", p.pk)],
        "active": p.status == Patient.Status.ACTIVE,
        "name": [{"use": "official", "family": p.family_name, "given": [p.given_name]}],
        "gender": p.sex,
        "birthDate": p.birth_date.isoformat(),
        "managingOrganization": {"identifier": {"system": codes.CLINIC_SYSTEM, "value": p.clinic.code},
                                 "display": p.clinic.name},
    }
    telecom = []
    if p.phone:
        telecom.append({"system": "phone", "value": p.phone})
    if p.email:
        telecom.append({"system": "email", "value": p.email})
    if telecom:
        r["telecom"] = telecom
    if p.status == Patient.Status.DECEASED:
        r["deceasedDateTime"] = p.status_date.isoformat()
    extensions: list[dict[str, Any]] = []
    if p.status == Patient.Status.WITHDRAWN:
        extensions.append({"url": codes.EXT_WITHDRAWN, "valueDate": p.status_date.isoformat()})
    if p.consent_registry:
        extensions.append({"url": codes.EXT_CONSENT, "extension": [
            {"url": "date", "valueDate": p.consent_date.isoformat()},
            {"url": "version", "valueString": p.consent_version}]})
    if extensions:
        r["extension"] = extensions
    return r


EPISODE_CLINICAL = {Episode.Status.ACTIVE: "active", Episode.Status.RESOLVED: "resolved",
                    Episode.Status.CLOSED: "inactive"}


def condition_resource(e: Episode) -> dict:
    codings = [{"system": codes.ICD10CM, "code": code, "display": coding.ICD10_LABELS.get(code, code)}
               for code in e.icd10_codes]
    codings.append({"system": codes.CS_CONDITION, "code": e.condition,
                    "display": coding.Condition(e.condition).label})
    r: dict[str, Any] = {
        "resourceType": "Condition", "id": str(e.pk),
        "identifier": [_ident("episode", e.pk)],
        "clinicalStatus": {"coding": [{"system": codes.CONDITION_CLINICAL, "code": EPISODE_CLINICAL[e.status]}]},  # type: ignore[index]
        "verificationStatus": {"coding": [{"system": codes.CONDITION_VER, "code": "confirmed"}]},
        "category": [{"coding": [{"system": codes.CONDITION_CATEGORY, "code": "problem-list-item"}]}],
        "code": {"coding": codings, "text": str(e)},
        "bodySite": [body_site(e.body_site, e.side)],
        "subject": _ref("Patient", e.patient_id),
    }
    if e.onset_date:
        r["onsetDateTime"] = e.onset_date.isoformat()
    if e.notes:
        r["note"] = [{"text": e.notes}]
    return r


# MIBO fields carried in the orthobiologic extension, with the FHIR value type of each.
ORTHOBIOLOGIC_FIELDS: dict[str, str] = {
    "bmi": "valueDecimal", "nsaid_use": "valueBoolean", "anticoagulant_use": "valueBoolean",
    "steroid_use": "valueBoolean", "smoking": "valueCode", "harvest_site": "valueCode",
    "harvest_volume_ml": "valueDecimal", "harvest_anticoagulant": "valueCode", "processing_system": "valueString",
    "spins": "valueInteger", "g_force": "valueInteger", "spin_minutes": "valueDecimal",
    "final_volume_ml": "valueDecimal", "total_nucleated_cells": "valueDecimal", "cfu_f_per_ml": "valueDecimal",
    "platelets_per_ul": "valueDecimal", "leukocytes_per_ul": "valueDecimal", "platelet_fold": "valueDecimal",
    "activation": "valueCode", "delivered_volume_ml": "valueDecimal", "anaesthetic": "valueString",
    "dextrose_percent": "valueDecimal", "injection_sites": "valueInteger", "post_protocol": "valueString",
}


def procedure_resource(pr: Procedure) -> dict:
    episode = pr.episode
    codings = []
    if pr.cpt_code:
        codings.append({"system": codes.cpt_system(pr.cpt_code), "code": pr.cpt_code, "display": pr.cpt_label})
    codings.append({"system": codes.CS_PROCEDURE_KIND, "code": pr.kind,
                    "display": coding.ProcedureKind(pr.kind).label})
    target = coding.TargetStructure(pr.target_structure)
    r: dict[str, Any] = {
        "resourceType": "Procedure", "id": str(pr.pk),
        "identifier": [_ident("procedure", pr.pk)],
        "status": "completed",
        "category": {"text": coding.ProcedureCategory(pr.category).label} if pr.category else None,
        "code": {"coding": codings, "text": pr.get_kind_display()},
        "subject": _ref("Patient", episode.patient_id),
        "performedDateTime": pr.date.isoformat(),
        "reasonReference": [_ref("Condition", pr.episode_id)],
        "bodySite": [body_site(episode.body_site, episode.side)],
    }
    if r["category"] is None:
        del r["category"]
    performer = pr.performer_name or (pr.performed_by.get_full_name() or pr.performed_by.get_username()
                                      if pr.performed_by_id else "")
    if performer:
        r["performer"] = [{"actor": {"display": performer}}]
    if pr.notes:
        r["note"] = [{"text": pr.notes}]
    extensions: list[dict] = [
        {"url": codes.EXT_INDEX, "valueBoolean": pr.is_index},
        {"url": codes.EXT_TARGET, "valueCoding": {"system": codes.CS_TARGET, "code": target.value,
                                                  "display": target.label},
         **({"extension": [{"url": "detail", "valueString": pr.target_detail}]} if pr.target_detail else {})},
        {"url": codes.EXT_GUIDANCE, "valueCode": pr.image_guidance},
    ]
    detail = []
    for name, value_type in ORTHOBIOLOGIC_FIELDS.items():
        value = getattr(pr, name)
        if value in (None, ""):
            continue
        detail.append({"url": name, value_type: _num(value)})
    if detail:
        extensions.append({"url": codes.EXT_ORTHOBIOLOGIC, "extension": detail})
    r["extension"] = extensions
    return r


def adverse_event_resource(ae: AdverseEvent) -> dict:
    episode = ae.procedure.episode
    r: dict[str, Any] = {
        "resourceType": "AdverseEvent", "id": str(ae.pk),
        "identifier": _ident("adverse-event", ae.pk),
        "actuality": "actual",
        "event": {"text": ae.description},
        "subject": _ref("Patient", episode.patient_id),
        "date": ae.date.isoformat(),
        "seriousness": {"coding": [{"system": codes.AE_SERIOUSNESS,
                                    "code": "serious" if ae.serious else "non-serious"}]},
        "severity": {"coding": [{"system": codes.AE_SEVERITY, "code": ae.severity}]},
        "suspectEntity": [{"instance": _ref("Procedure", ae.procedure_id)}],
    }
    if ae.resolved_date:
        r["outcome"] = {"coding": [{"system": codes.AE_OUTCOME, "code": "resolved"}]}
        r["extension"] = [{"url": codes.EXT_RESOLVED, "valueDate": ae.resolved_date.isoformat()}]
    return r


def _answer(item, value) -> dict | None:
    if value is None:
        return None
    if item.type == "choice":
        option = next((o for o in item.options if o.value is not None and o.value == value), None)
        if option is None:
            return None
        return {"valueCoding": {"code": option.code, "display": option.display,
                                "extension": [{"url": codes.EXT_ORDINAL, "valueDecimal": _num(Decimal(str(value)))}]}}
    if item.type == "integer" and float(value).is_integer():
        return {"valueInteger": int(value)}
    return {"valueDecimal": value}


def _definition(code: str, cache: dict) -> Definition | None:
    if code not in cache:
        try:
            cache[code] = get_definition(code)
        except (UnknownInstrument, DefinitionError):
            cache[code] = None
    return cache[code]


def questionnaire_url(definition: Definition) -> str:
    return str(definition.resource.get("url") or f"urn:orthoreg:instrument:{definition.code}")


def response_resources(resp: Response, cache: dict) -> tuple[dict, list[dict]]:
    """The QuestionnaireResponse of one response and an Observation per score (derivedFrom it)."""
    definition = _definition(resp.instrument, cache)
    url = questionnaire_url(definition) if definition else f"urn:orthoreg:instrument:{resp.instrument}"
    authored = resp.completed_at.isoformat()
    qr: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse", "id": str(resp.pk),
        "identifier": _ident("response", resp.pk),
        "questionnaire": f"{url}|{resp.instrument_version}",
        "status": "completed",
        "subject": _ref("Patient", resp.patient_id),
        "authored": authored,
    }
    extensions = []
    if resp.episode_id:
        extensions.append({"url": codes.EXT_EPISODE, "valueReference": _ref("Condition", resp.episode_id)})
    if resp.time_point:
        extensions.append({"url": codes.EXT_TIME_POINT, "valueCode": resp.time_point})
    if extensions:
        qr["extension"] = extensions
    items = []
    if definition is not None:
        for item, value in zip(definition.items, resp.answers or []):
            answer = _answer(item, value)
            if answer is not None:
                items.append({"linkId": item.link_id, "text": item.text, "answer": [answer]})
    if items:
        qr["item"] = items
    observations = []
    for subscale, value in sorted((resp.scores or {}).items()):
        if value is None:
            continue
        codings = []
        loinc = codes.LOINC_SCORES.get((resp.instrument, subscale))
        if loinc:
            codings.append({"system": codes.LOINC, "code": loinc[0], "display": loinc[1]})
        title = subscale
        if definition is not None:
            try:
                title = f"{definition.short_title}: {definition.subscale(subscale).title}"
            except KeyError:
                pass
        codings.append({"system": codes.CS_SCORE, "code": f"{resp.instrument}/{subscale}", "display": title})
        obs: dict[str, Any] = {
            "resourceType": "Observation", "id": _fhir_id(f"score-{resp.pk}-{subscale}"),
            "identifier": [_ident("score", f"{resp.pk}/{subscale}")],
            "status": "final",
            "category": [{"coding": [{"system": codes.OBSERVATION_CATEGORY, "code": "survey"}]}],
            "code": {"coding": codings, "text": title},
            "subject": _ref("Patient", resp.patient_id),
            "effectiveDateTime": authored,
            "valueQuantity": {"value": value, "system": codes.UCUM, "code": "{score}", "unit": "score"},
            "derivedFrom": [_ref("QuestionnaireResponse", resp.pk)],
        }
        if resp.episode_id:
            obs["focus"] = [_ref("Condition", resp.episode_id)]
        observations.append(obs)
    return qr, observations


def _uid(kind: str, pk: int) -> str:
    """A DICOM UID under the 2.25 (UUID) root, stable for this installation's record."""
    return "2.25." + str(uuid.uuid5(uuid.NAMESPACE_URL, f"{codes.id_system(kind)}/{pk}").int)


def imaging_study_resource(study: ImagingStudy, images: Iterable) -> dict:
    episode = study.episode
    series = []
    for number, image in enumerate(images, start=1):
        header = image.header or {}
        one: dict[str, Any] = {
            "uid": str(header.get("series_uid") or header.get("SeriesInstanceUID") or _uid("image", image.pk)),
            "number": number,
            "modality": {"system": codes.DCM, "code": (image.modality or "DX").upper()[:16]},
            "description": f"{image.get_view_display()} {image.get_side_display().lower()}"
                           + (f": {image.caption}" if image.caption else ""),
            "numberOfInstances": 1,
            "bodySite": {"system": codes.CS_BODY_SITE, "code": episode.body_site,
                         "display": coding.BodySite(episode.body_site).label},
        }
        if image.side in codes.LATERALITY:
            code, display = codes.LATERALITY[image.side]
            one["laterality"] = {"system": codes.SNOMED, "code": code, "display": display}
        series.append(one)
    r: dict[str, Any] = {
        "resourceType": "ImagingStudy", "id": str(study.pk),
        "identifier": [_ident("imaging-study", study.pk)],
        "status": "available",
        "subject": _ref("Patient", episode.patient_id),
        "started": study.date.isoformat(),
        "reasonReference": [_ref("Condition", study.episode_id)],
        "numberOfSeries": len(series),
        "numberOfInstances": len(series),
    }
    if study.description:
        r["description"] = study.description
    if series:
        r["series"] = series
    return r


JSW_PARTS = {"medial": "Medial joint space width", "central": "Central joint space width",
             "lateral": "Lateral joint space width", "minimum": "Minimum joint space width"}


def _quantity(value: float, unit: str) -> dict:
    if unit == Measurement.Unit.MM:
        return {"value": round(value, 3), "unit": "mm", "system": codes.UCUM, "code": "mm"}
    return {"value": round(value, 3), "unit": "pixels", "system": codes.UCUM, "code": "{pixel}"}


def measurement_resource(m: Measurement) -> dict:
    image = m.image
    study = image.study
    episode = study.episode
    components = []
    for name, label in JSW_PARTS.items():
        value = getattr(m, name)
        component: dict[str, Any] = {"code": {"coding": [{"system": codes.CS_MEASUREMENT, "code": f"jsw-{name}",
                                                          "display": label}]}}
        if value is None:
            component["dataAbsentReason"] = {"coding": [{"system": codes.DATA_ABSENT, "code": "error"}],
                                             "text": "not measurable"}
        else:
            component["valueQuantity"] = _quantity(value, m.unit)
        components.append(component)
    r: dict[str, Any] = {
        "resourceType": "Observation", "id": f"jsw-{m.pk}",
        "identifier": [_ident("measurement", m.pk)],
        "status": "final" if m.accepted else "preliminary",
        "category": [{"coding": [{"system": codes.OBSERVATION_CATEGORY, "code": "imaging"}]}],
        "code": {"coding": [{"system": codes.CS_MEASUREMENT, "code": "jsw", "display": "Joint space width"}],
                 "text": "Joint space width"},
        "subject": _ref("Patient", episode.patient_id),
        "focus": [_ref("Condition", episode.pk)],
        "effectiveDateTime": study.date.isoformat(),
        "method": {"coding": [{"system": codes.CS_JSW_METHOD, "code": m.method, "display": m.get_method_display()}]},
        "bodySite": body_site(episode.body_site, image.side),
        "derivedFrom": [_ref("ImagingStudy", study.pk)],
        "component": components,
        "extension": [{"url": codes.EXT_CALIBRATION, "valueCode": m.calibration_source}],
    }
    if m.minimum is not None:
        r["valueQuantity"] = _quantity(m.minimum, m.unit)
    else:
        r["dataAbsentReason"] = {"coding": [{"system": codes.DATA_ABSENT, "code": "error"}],
                                 "text": "not measurable"}
    return r


def questionnaire_resources(codes_wanted: Iterable[str] | None = None) -> Iterator[dict]:
    wanted = set(codes_wanted) if codes_wanted is not None else None
    for definition in instrument_definitions():
        if wanted is None or definition.code in wanted:
            yield dict(definition.resource)


# --- record streams, shared by the bundle and the bulk export ------------------------------------------------

def _chunked(qs: QuerySet) -> Iterator:
    return qs.iterator(chunk_size=CHUNK)


def streams(patients: QuerySet[Patient], *, since: dt.datetime | None = None) -> Iterator[tuple[str, dict]]:
    """(resource type, resource) for every record of these patients, type by type, streamed in chunks.
    With `since`, only records created or changed since then (by their change history)."""

    def changed(qs: QuerySet) -> QuerySet:
        if since is None:
            return qs
        return qs.filter(pk__in=qs.model.history.filter(history_date__gte=since).values("id"))

    patient_ids = patients.values("pk")
    for p in _chunked(changed(patients.select_related("clinic").order_by("pk"))):
        yield "Patient", patient_resource(p)
    for e in _chunked(changed(Episode.objects.filter(patient__in=patient_ids).order_by("pk"))):
        yield "Condition", condition_resource(e)
    for pr in _chunked(changed(Procedure.objects.filter(episode__patient__in=patient_ids)
                               .select_related("episode", "performed_by").order_by("pk"))):
        yield "Procedure", procedure_resource(pr)
    cache: dict = {}
    for resp in _chunked(changed(Response.objects.filter(patient__in=patient_ids).order_by("pk"))):
        qr, observations = response_resources(resp, cache)
        yield "QuestionnaireResponse", qr
        for obs in observations:
            yield "Observation", obs
    for ae in _chunked(changed(AdverseEvent.objects.filter(procedure__episode__patient__in=patient_ids)
                               .select_related("procedure__episode").order_by("pk"))):
        yield "AdverseEvent", adverse_event_resource(ae)
    studies = changed(ImagingStudy.objects.filter(episode__patient__in=patient_ids)
                      .select_related("episode").prefetch_related("images").order_by("pk"))
    for study in _chunked(studies):
        yield "ImagingStudy", imaging_study_resource(study, study.images.all())
    for m in _chunked(changed(Measurement.objects.filter(image__study__episode__patient__in=patient_ids)
                              .select_related("image__study__episode").order_by("pk"))):
        yield "Observation", measurement_resource(m)


def patient_everything(patient: Patient, base_url: str) -> dict:
    """The searchset Bundle of Patient/$everything: the patient, every record of theirs and the Questionnaires
    their responses answer. Every resource is validated."""
    entries = []
    instruments: set[str] = set()
    check = Validator()
    for resource_type, resource in streams(Patient.objects.filter(pk=patient.pk)):
        check(resource)
        entries.append({"fullUrl": f"{base_url.rstrip('/')}/{resource_type}/{resource['id']}", "resource": resource,
                        "search": {"mode": "match" if resource_type == "Patient" else "include"}})
    instruments.update(Response.objects.filter(patient=patient).values_list("instrument", flat=True).distinct())
    for q in questionnaire_resources(instruments):
        check(q)
        entries.append({"fullUrl": f"{base_url.rstrip('/')}/Questionnaire/{q['id']}", "resource": q,
                        "search": {"mode": "include"}})
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(entries),
              "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "entry": entries}
    return check(bundle)


def count_resources(patients: QuerySet[Patient]) -> int:
    """About how many resources an export of these patients writes (for the progress bar: `bulk_export` reports
    what it really wrote)."""
    ids = patients.values("pk")
    return (len(instrument_definitions()) + patients.count() + Episode.objects.filter(patient__in=ids).count()
            + Procedure.objects.filter(episode__patient__in=ids).count()
            + 2 * Response.objects.filter(patient__in=ids).count())


PROGRESS_STEP = 500  # resources written between two progress reports


def bulk_export(out_dir: str | Path, patients: QuerySet[Patient], *, since: dt.datetime | None = None,
                progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Write Bulk Data ndjson files (`<Type>.ndjson`) into out_dir, line by line; returns resources per type.
    The Questionnaires of every installed instrument are written whatever the selection.

    The folder then holds exactly this export: every type's file is written, empty when the export has none of
    that type, so no file of an earlier export into the same folder is left to be imported as if current (files
    of other names are left alone). The files are written under temporary names in a hidden folder inside
    out_dir and moved to their names at the end: a failed export leaves the earlier files as they were.
    `progress(n)` is called with the resources written since its last call; the calls add up to the total."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".fhir-export-", dir=out))
    counts = dict.fromkeys(RESOURCE_ORDER, 0)
    check = Validator()
    unreported = 0
    try:
        with contextlib.ExitStack() as stack:
            files = {t: stack.enter_context(open(tmp / f"{t}.ndjson", "w", encoding="utf-8"))
                     for t in RESOURCE_ORDER}
            questionnaires = (("Questionnaire", q) for q in questionnaire_resources())
            for resource_type, resource in itertools.chain(questionnaires, streams(patients, since=since)):
                check(resource)
                files[resource_type].write(json.dumps(resource, ensure_ascii=False, separators=(",", ":")))
                files[resource_type].write("\n")
                counts[resource_type] += 1
                unreported += 1
                if progress is not None and unreported == PROGRESS_STEP:
                    progress(unreported)
                    unreported = 0
        for resource_type in RESOURCE_ORDER:
            os.replace(tmp / f"{resource_type}.ndjson", out / f"{resource_type}.ndjson")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if progress is not None and unreported:
        progress(unreported)
    return counts
