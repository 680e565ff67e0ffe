"""Every operation of the API (the FHIR ones too) for every kind of caller: an administrator, a clinician of the
clinic, a coordinator, a researcher, an auditor, a clinician of another clinic, no token, an expired and a revoked token. Records of another clinic answer
404 (never 403: ids reveal nothing); a role without the capability anywhere answers 403; a researcher's token
reaches de-identified aggregates only."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone

from orthoreg.accounts.models import Role
from orthoreg.api import tokens
from orthoreg.followup.models import Assessment
from tests.analytics.builders import Builder
from tests.api.conftest import TokenClient, token_for
from tests.conftest import make_user

V1 = "/api/v1"
DAY = (timezone.localdate() - dt.timedelta(days=5)).isoformat()

# name: (method, path, body, capability); OURS_<record> stands for the id of one of the clinic's records
OPERATIONS = {
    "clinic_list": ("get", "/clinics", None, "any"),
    "clinic_read": ("get", "/clinics/OURS_clinic", None, "any"),
    "patient_list": ("get", "/patients", None, "contact"),
    "patient_read": ("get", "/patients/OURS_patient", None, "contact"),
    "patient_create": ("post", "/patients", {"mrn": "N-1", "given_name": "New", "family_name": "Patient",
                                             "birth_date": "1990-01-01", "clinic": "east"}, "clinical"),
    "patient_update": ("patch", "/patients/OURS_patient", {"phone": "555"}, "clinical"),
    "episode_list": ("get", "/episodes", None, "contact"),
    "episode_read": ("get", "/episodes/OURS_episode", None, "contact"),
    "episode_create": ("post", "/episodes", {"patient_id": "OURS_patient", "body_site": "knee", "side": "left",
                                             "condition": "oa_primary"}, "clinical"),
    "episode_update": ("patch", "/episodes/OURS_episode", {"notes": "seen"}, "clinical"),
    "grade_list": ("get", "/grades", None, "clinical"),
    "grade_read": ("get", "/grades/OURS_grade", None, "clinical"),
    "grade_create": ("post", "/grades", {"episode_id": "OURS_episode", "date": DAY, "system": "coughlin_shurnas",
                                         "grade": 3}, "clinical"),
    "grade_update": ("patch", "/grades/OURS_grade", {"grade": 1}, "clinical"),
    "procedure_list": ("get", "/procedures", None, "clinical"),
    "procedure_read": ("get", "/procedures/OURS_procedure", None, "clinical"),
    "procedure_create": ("post", "/procedures", {"episode_id": "OURS_episode", "date": DAY, "kind": "prolotherapy",
                                                 "dextrose_percent": 15}, "clinical"),
    "procedure_update": ("patch", "/procedures/OURS_procedure", {"notes": "ok"}, "clinical"),
    "exam_list": ("get", "/exams", None, "clinical"),
    "exam_read": ("get", "/exams/OURS_exam", None, "clinical"),
    "exam_create": ("post", "/exams", {"episode_id": "OURS_episode", "date": DAY}, "clinical"),
    "exam_update": ("patch", "/exams/OURS_exam", {"dorsiflexion_deg": 35}, "clinical"),
    "adverse_event_list": ("get", "/adverse-events", None, "clinical"),
    "adverse_event_read": ("get", "/adverse-events/OURS_adverse_event", None, "clinical"),
    "adverse_event_create": ("post", "/adverse-events", {"procedure_id": "OURS_procedure", "date": DAY,
                                                         "severity": "mild", "description": "Bruise"}, "clinical"),
    "adverse_event_update": ("patch", "/adverse-events/OURS_adverse_event", {"resolved_date": DAY}, "clinical"),
    "assessment_list": ("get", "/assessments", None, "contact"),
    "assessment_read": ("get", "/assessments/OURS_assessment", None, "contact"),
    "assessment_update": ("patch", "/assessments/OURS_scheduled", {"status": "cancelled", "reason": "declined"},
                          "contact"),
    "response_list": ("get", "/responses", None, "clinical"),
    "response_read": ("get", "/responses/OURS_response", None, "clinical"),
    "response_create": ("post", "/responses", {"patient_id": "OURS_patient", "episode_id": "OURS_episode",
                                               "instrument": "nprs", "answers": [3], "time_point": "3m"}, "clinical"),
    "image_list": ("get", "/images", None, "clinical"),
    "image_read": ("get", "/images/OURS_image", None, "clinical"),
    "image_update": ("patch", "/images/OURS_image", {"caption": "after"}, "clinical"),
    "measurement_list": ("get", "/measurements", None, "clinical"),
    "measurement_read": ("get", "/measurements/OURS_measurement", None, "clinical"),
    "measurement_create": ("post", "/measurements", {"image_id": "OURS_image", "line": [60, 110, 240, 110]},
                           "clinical"),
    "cohort_report": ("get", "/cohorts/report", None, "research"),
    "cohort_compare": ("get", "/cohorts/compare?sex=male&vs_sex=female", None, "research"),
    "fhir_everything": ("get", "/fhir/Patient/OURS_patient/$everything", None, "clinical"),
    "fhir_import": ("post", "/fhir", {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000001", "request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient", "identifier": [{"system": "urn:example:mrn", "value": "F-1"}],
                      "name": [{"family": "Fhir", "given": ["Fay"]}], "birthDate": "1980-01-01"}}]}, "clinical"),
}
SUCCESS = {"fhir_import": 200}  # (the import's summary; the other writes answer 201 Created)
ALLOWED = {"admin": {"any", "contact", "clinical", "research"}, "clinician": {"any", "contact", "clinical", "research"},
           "coordinator": {"any", "contact"}, "researcher": {"any", "research"}, "auditor": {"any"}}


def test_every_operation_of_the_schema_is_tested(client):
    paths = client.get(f"{V1}/openapi.json").json()["paths"]
    in_schema = {(method, path.removeprefix(V1)) for path, ops in paths.items() for method in ops}
    tested = {(method, path.split("?")[0]) for method, path, _, _ in OPERATIONS.values()}
    normalised = {(m, "/".join("{id}" if p.startswith(("{", "OURS_")) else p for p in path.split("/")))
                  for m, path in in_schema | tested}
    assert len(normalised) == len(OPERATIONS) == len(in_schema)


def _ids(ours) -> dict:
    scheduled = Assessment.objects.filter(episode=ours.episode, status="scheduled").first()
    return {"OURS_clinic": ours.patient.clinic_id, "OURS_patient": ours.patient.pk, "OURS_episode": ours.episode.pk,
            "OURS_grade": ours.grade.pk, "OURS_procedure": ours.procedure.pk, "OURS_exam": ours.exam.pk,
            "OURS_adverse_event": ours.adverse_event.pk, "OURS_assessment": ours.assessment.pk,
            "OURS_scheduled": scheduled.pk, "OURS_response": ours.response.pk, "OURS_image": ours.image.pk,
            "OURS_measurement": ours.measurement.pk}


def _call(client, method, path, body, ids):
    path = "/".join(str(ids.get(part, part)) for part in path.split("/"))
    if body is None:
        return getattr(client, method)(f"{V1}{path}")
    body = {k: ids.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
    with transaction.atomic():  # each caller writes into the same starting state
        response = getattr(client, method)(f"{V1}{path}", body, content_type="application/json")
        transaction.set_rollback(True)
    return response


@pytest.mark.parametrize("operation", OPERATIONS)
def test_every_role_on_every_operation(operation, ours, clinic, clinician, coordinator, researcher, auditor,
                                       other_clinician):
    method, path, body, capability = OPERATIONS[operation]
    ids = _ids(ours)
    success = SUCCESS.get(operation, 201 if method == "post" else 200)
    admin = make_user("admin", Role.ADMIN, clinic)
    refers_to_ours = "OURS_" in path or any(isinstance(v, str) and v.startswith("OURS_") for v in (body or {}).values())
    answers = {}
    for name, user in [("admin", admin), ("clinician", clinician), ("coordinator", coordinator),
                       ("researcher", researcher), ("auditor", auditor), ("other clinic", other_clinician)]:
        answers[name] = _call(TokenClient(token_for(user)), method, path, body, ids)
    expired = token_for(clinician, days=1)
    revoked = token_for(clinician)
    tokens.token_revoke(token=tokens.ApiToken.objects.get(token_hash=tokens.token_hash(revoked)))
    answers["no token"] = _call(TokenClient(None), method, path, body, ids)
    answers["revoked"] = _call(TokenClient(revoked), method, path, body, ids)
    with time_machine.travel(timezone.now() + dt.timedelta(days=2)):
        answers["expired"] = _call(TokenClient(expired), method, path, body, ids)

    expected = {}
    for role, allowed in ALLOWED.items():
        expected[role] = success if capability in allowed else 403
    if capability == "research":
        expected["researcher"] = 422  # one patient: no figures from fewer than 5 for a role without clinical access
    if operation == "patient_create":
        expected["other clinic"] = 404  # "east" is not a clinic they may record patients in
    elif capability == "any" and refers_to_ours:
        expected["other clinic"] = 404
    else:
        expected["other clinic"] = 404 if refers_to_ours else success
    expected.update({"no token": 401, "revoked": 401, "expired": 401})

    got = {name: response.status_code for name, response in answers.items()}
    assert got == expected, {name: answers[name].content[:300] for name in got if got[name] != expected[name]}
    for name, response in answers.items():
        if response.status_code >= 400:
            assert set(response.json()) == {"detail", "errors"}, (name, response.content)
    if not refers_to_ours and method == "get" and capability != "research":
        assert all(item.get("clinic", "east") != "east" and item["id"] not in ids.values()
                   for item in answers["other clinic"].json()["items"]) or path == "/clinics"


def test_a_researchers_token_reaches_aggregates_only(clinic, researcher):
    b = Builder(clinic)
    for n in range(6):
        e = b.episode(index_date=dt.date(2025, 1, 1), sex="female" if n % 2 else "male", grade=2)
        b.assessment(e, "baseline", score=7)
        b.assessment(e, "6m", score=3)
    client = TokenClient(token_for(researcher))
    report = client.get(f"{V1}/cohorts/report")
    assert report.status_code == 200 and report.json()["cohort"]["episodes"] == 6
    assert "T-0" not in report.content.decode()  # no MRN, no name
    for resource in ("patients", "episodes", "procedures", "responses", "assessments", "images"):
        assert client.get(f"{V1}/{resource}").status_code == 403
