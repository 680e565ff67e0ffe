"""The FHIR endpoints of the API, through HTTP: Patient/$everything and POST /api/v1/fhir."""

import json
from pathlib import Path

import pytest
from django.utils import timezone
from fhir.resources.R4B import get_fhir_model_class

from orthoreg.accounts.models import AuditEvent, Role
from orthoreg.api.models import IdempotentRequest
from orthoreg.instruments import definitions
from orthoreg.interop.fhir import codes
from orthoreg.registry.models import Episode, Patient
from orthoreg.site import demo
from tests.conftest import login, make_user

CORPUS = Path(__file__).resolve().parent.parent / "data" / "fhir"
PATIENT = {"resourceType": "Patient", "identifier": [{"system": "urn:example:mrn", "value": "B-1"}],
           "name": [{"family": "Mensah", "given": ["Kofi"]}], "gender": "male", "birthDate": "1968-07-09"}


def transaction(*resources, kind="transaction"):
    return {"resourceType": "Bundle", "type": kind, "entry": [
        {"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{n:012d}", "resource": r,
         "request": {"method": "POST", "url": r["resourceType"]}} for n, r in enumerate(resources)]}


def post(client, body, headers=None, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.post(f"/api/v1/fhir{'?' + query if query else ''}", data=data, content_type="application/fhir+json",
                       headers=headers)


def test_everything_is_a_valid_bundle_of_the_patients_records(clinic, clinician_client):
    df = demo.create_df(clinic=clinic, today=timezone.localdate())
    response = clinician_client.get(f"/api/v1/fhir/Patient/{df.pk}/$everything")
    assert response.status_code == 200
    bundle = response.json()
    get_fhir_model_class("Bundle").model_validate(bundle)
    types = {e["resource"]["resourceType"] for e in bundle["entry"]}
    assert types == {"Patient", "Condition", "Procedure", "QuestionnaireResponse", "Observation", "AdverseEvent",
                     "ImagingStudy", "Questionnaire"}
    assert bundle["entry"][0]["fullUrl"] == f"http://testserver/api/v1/fhir/Patient/{df.pk}"
    assert all(e["resource"].get("subject", {"reference": f"Patient/{df.pk}"})["reference"] == f"Patient/{df.pk}"
               for e in bundle["entry"])
    assert AuditEvent.objects.filter(patient=df, action=AuditEvent.Action.EXPORT).exists()


def test_everything_of_another_clinics_patient_is_404(clinic, clinician_client, other_patient):
    assert clinician_client.get(f"/api/v1/fhir/Patient/{other_patient.pk}/$everything").status_code == 404
    assert clinician_client.get("/api/v1/fhir/Patient/999999/$everything").status_code == 404


@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.RESEARCHER, Role.AUDITOR])
def test_roles_without_clinical_access(clinic, patient, role):
    client = login(make_user(f"u-{role}", role, clinic))
    # 403 whatever the id (the role reads no clinical records anywhere: nothing said of this patient), as every
    # clinical operation of the API answers
    assert client.get(f"/api/v1/fhir/Patient/{patient.pk}/$everything").status_code == 403
    assert client.get("/api/v1/fhir/Patient/999999/$everything").status_code == 403
    assert post(client, transaction(PATIENT)).status_code == 403
    assert not Patient.objects.filter(mrn="B-1").exists()


def test_anonymous_is_401(client, patient):
    assert client.get(f"/api/v1/fhir/Patient/{patient.pk}/$everything").status_code == 401
    assert post(client, transaction(PATIENT)).status_code == 401


def test_post_a_transaction(clinic, clinician_client):
    condition = {"resourceType": "Condition", "code": {"coding": [{"system": codes.ICD10CM, "code": "M17.11"}]},
                 "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000000"}}
    response = post(clinician_client, transaction(PATIENT, condition))
    assert response.status_code == 200, response.json()
    summary = response.json()
    assert summary["ok"] and summary["resources"]["Patient"]["created"] == 1
    episode = Episode.objects.get()
    assert (episode.patient.mrn, episode.condition, episode.body_site, episode.side) == \
        ("B-1", "oa_primary", "knee", "right")
    again = post(clinician_client, transaction(PATIENT, condition))
    assert again.json()["resources"]["Condition"]["updated"] == 1 and Episode.objects.count() == 1


def test_post_the_synthea_transaction(clinic, clinician_client):
    response = post(clinician_client, (CORPUS / "synthea-complete-patient.json").read_bytes())
    assert response.status_code == 200
    assert Patient.objects.get().family_name == "Gerlach374"


def test_post_refused_names_the_entry_and_writes_nothing(clinic, clinician_client):
    bad = {**PATIENT, "identifier": [{"system": "urn:example:mrn", "value": "B-2"}], "birthDate": "1968-02-30"}
    response = post(clinician_client, transaction(PATIENT, bad))
    assert response.status_code == 422
    body = response.json()
    assert body["detail"] == "Refused: nothing was written."
    assert any("entry[1]" in error["location"] and "birthDate" in error["message"] for error in body["errors"])
    assert not Patient.objects.exists()


def test_post_a_batch_writes_each_entry_on_its_own(clinic, clinician_client):
    bad = {**PATIENT, "identifier": [{"system": "urn:example:mrn", "value": "B-2"}], "birthDate": "1968-02-30"}
    response = post(clinician_client, transaction(PATIENT, bad, kind="batch"))
    assert response.status_code == 200
    summary = response.json()
    assert not summary["ok"] and summary["units"][0]["status"] == "partly imported"
    assert [(e["status"], "entry[1]" in e["location"]) for e in summary["units"][0]["entries"]] == \
        [("created", False), ("refused", True)]
    assert "birthDate" in summary["units"][0]["entries"][1]["message"]
    assert list(Patient.objects.values_list("mrn", flat=True)) == ["B-1"]
    # a batch none of whose entries can be written is refused
    response = post(clinician_client, transaction(bad, kind="batch"))
    assert response.status_code == 422 and response.json()["detail"] == "Refused: nothing was written."


@pytest.mark.parametrize("body, status", [
    (b"{not json", 400), ("caf\u00e9".encode("latin-1"), 400), ({"resourceType": "Patient"}, 422),
    ({"resourceType": "Bundle", "type": "collection", "entry": []}, 422),
    ({"resourceType": "Bundle", "type": "transaction", "entry": []}, 422), ([1, 2], 422)])
def test_post_bad_bodies(clinic, clinician_client, body, status):
    response = post(clinician_client, body)
    assert response.status_code == status
    assert response.json()["detail"]


@pytest.mark.parametrize("kind", ["transaction", "batch"])
def test_post_is_idempotent_under_an_idempotency_key(clinic, clinician_client, kind):
    key = {"Idempotency-Key": f"bundle-{kind}"}
    first = post(clinician_client, transaction(PATIENT, kind=kind), key)
    assert first.status_code == 200 and first.json()["resources"]["Patient"]["created"] == 1
    written = (Patient.objects.count(), AuditEvent.objects.count(), IdempotentRequest.objects.count())
    again = post(clinician_client, transaction(PATIENT, kind=kind), key)
    assert again.status_code == 200 and again.json() == first.json()  # "created" as the first time: not imported again
    assert (Patient.objects.count(), AuditEvent.objects.count(), IdempotentRequest.objects.count()) == written
    other = post(clinician_client, transaction({**PATIENT, "gender": "female"}, kind=kind), key)
    assert other.status_code == 422 and other.json()["errors"] == [
        {"location": "Idempotency-Key", "message": "Already used for a different request."}]
    dry_run = post(clinician_client, transaction(PATIENT, kind=kind), key, dry_run="true")  # another request
    assert dry_run.status_code == 422 and dry_run.json()["errors"][0]["location"] == "Idempotency-Key"
    assert Patient.objects.get().sex == "male"
    assert AuditEvent.objects.count() == written[1]


def test_a_refused_bundle_is_not_kept_under_its_idempotency_key(clinic, clinician_client):
    key = {"Idempotency-Key": "k-1"}
    refused = post(clinician_client, transaction({**PATIENT, "birthDate": "not a date"}), key)
    assert refused.status_code == 422 and not IdempotentRequest.objects.exists()
    assert post(clinician_client, transaction(PATIENT), key).status_code == 200  # corrected, the same key
    assert IdempotentRequest.objects.get().key == "k-1"


def test_the_schema_declares_every_answer_and_the_idempotency_key(client):
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    post_operation = paths["/api/v1/fhir"]["post"]
    assert "Idempotency-Key" in {p["name"] for p in post_operation["parameters"] if p["in"] == "header"}
    assert {"400", "401", "403", "404", "409", "422"} <= set(post_operation["responses"])
    assert {"400", "401", "403", "404", "422"} <= set(paths["/api/v1/fhir/Patient/{patient_id}/$everything"]["get"]
                                                      ["responses"])


def test_everything_with_a_nul_in_the_query_is_the_declared_400(clinic, clinician_client, patient):
    response = clinician_client.get(f"/api/v1/fhir/Patient/{patient.pk}/$everything?x=%00")
    assert response.status_code == 400 and response.json()["errors"][0]["location"] == "request"


def test_post_into_a_clinic_not_yours_is_403(clinic, other_clinic, clinician_client):
    assert post(clinician_client, transaction(PATIENT), clinic="west").status_code == 403
    assert post(clinician_client, transaction(PATIENT), clinic="east").status_code == 200


def test_a_clinician_cannot_install_instruments_by_api(clinic, clinician_client):
    questionnaire = json.loads((CORPUS / "r4-questionnaire-gcs-example.json").read_text(encoding="utf-8"))
    response = post(clinician_client, transaction(questionnaire))
    assert response.status_code == 200
    assert response.json()["resources"]["Questionnaire"]["skipped"] == 1
    assert "gcs" not in definitions.available_codes()
