"""The API's records: lists with cursor pagination, filters and updated_since; reads; writes through the web
forms' services (an API-created index procedure schedules its follow-ups); idempotent writes; bad input answered
4xx with the one error body and nothing written."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import time_machine
from django.utils import timezone

from orthoreg.accounts.models import AuditEvent
from orthoreg.analytics.models import StaleEpisode
from orthoreg.api.models import IdempotentRequest
from orthoreg.followup.models import Assessment
from orthoreg.instruments.models import Response
from orthoreg.registry.models import Episode, Patient, Procedure
from orthoreg.registry.selectors import patient_history
from tests.api.conftest import api_client

V1 = "/api/v1"
RESOURCES = ["clinics", "patients", "episodes", "grades", "procedures", "exams", "adverse-events", "assessments",
             "responses", "images", "measurements"]


def _error_body(response) -> dict:
    body = response.json()
    assert set(body) == {"detail", "errors"} and body["detail"], body
    for error in body["errors"]:
        assert set(error) == {"location", "message"} and error["message"], body
    return body


@pytest.mark.parametrize("resource", RESOURCES)
def test_list_and_read_each_resource_of_ones_clinic_only(resource, clinician, ours, theirs):
    client = api_client(clinician)
    listed = client.get(f"{V1}/{resource}")
    assert listed.status_code == 200, listed.content
    items = listed.json()["items"]
    assert len(items) >= 1
    ids = {item["id"] for item in items}
    for item in items:
        one = client.get(f"{V1}/{resource}/{item['id']}")
        assert one.status_code == 200 and one.json() == item
    # theirs: another clinic's record answers 404, exactly like a missing one
    other_id = {"clinics": theirs.patient.clinic_id, "patients": theirs.patient.pk, "episodes": theirs.episode.pk,
                "grades": theirs.grade.pk, "procedures": theirs.procedure.pk, "exams": theirs.exam.pk,
                "adverse-events": theirs.adverse_event.pk, "assessments": theirs.assessment.pk,
                "responses": theirs.response.pk, "images": theirs.image.pk,
                "measurements": theirs.measurement.pk}[resource]
    assert other_id not in ids
    hidden, missing = client.get(f"{V1}/{resource}/{other_id}"), client.get(f"{V1}/{resource}/999999")
    assert hidden.status_code == missing.status_code == 404
    assert _error_body(hidden)["detail"].replace(str(other_id), "N") == \
        _error_body(missing)["detail"].replace("999999", "N")


def test_cursor_pagination_walks_every_patient_once(clinician, clinic):
    for n in range(7):
        Patient.objects.create(clinic=clinic, mrn=f"P{n}", given_name="A", family_name=f"B{n}",
                               birth_date=dt.date(1980, 1, 1))
    client = api_client(clinician)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = client.get(f"{V1}/patients", params).json()
        seen += [p["mrn"] for p in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and sorted(seen) == sorted(f"P{n}" for n in range(7)) and len(seen) == 7
    bad = client.get(f"{V1}/patients", {"cursor": "not-a-cursor"})
    assert bad.status_code == 422 and _error_body(bad)["errors"][0]["location"] == "cursor"
    assert client.get(f"{V1}/patients", {"limit": 0}).status_code == 422
    assert client.get(f"{V1}/patients", {"limit": 201}).status_code == 422


def test_updated_since_and_filters(clinician, ours):
    client = api_client(clinician)
    later = timezone.now() + dt.timedelta(hours=1)
    with time_machine.travel(later):
        api_client(clinician).patch_json(f"{V1}/exams/{ours.exam.pk}", {"plantarflexion_deg": 20})
    since = (later - dt.timedelta(minutes=1)).isoformat()
    exams = client.get(f"{V1}/exams", {"updated_since": since}).json()["items"]
    assert [e["id"] for e in exams] == [ours.exam.pk]
    assert client.get(f"{V1}/grades", {"updated_since": since}).json()["items"] == []
    assert client.get(f"{V1}/procedures", {"kind": "bmc", "is_index": "true"}).json()["items"][0]["id"] == \
        ours.procedure.pk
    assert client.get(f"{V1}/procedures", {"kind": "first_mtp_arthrodesis"}).json()["items"] == []
    assessments = client.get(f"{V1}/assessments", {"episode_id": ours.episode.pk, "status": "scheduled"}).json()
    assert assessments["items"] and all(a["status"] == "scheduled" for a in assessments["items"])
    assert client.get(f"{V1}/patients", {"updated_since": "yesterday"}).status_code == 422


def test_writes_go_through_the_services(clinician, clinic):
    client = api_client(clinician)
    created = client.post_json(f"{V1}/patients", {
        "mrn": "API-1", "given_name": "Ada", "family_name": "Lovelace", "birth_date": "1980-02-03", "sex": "female",
        "consent_registry": True, "consent_date": "2025-01-02", "consent_version": "v2"})
    assert created.status_code == 201, created.content
    patient = created.json()
    assert patient["initials"] == "AL" and patient["clinic"] == "east"
    episode = client.post_json(f"{V1}/episodes", {"patient_id": patient["id"], "body_site": "first_mtp",
                                                  "side": "left", "condition": "hallux_rigidus"})
    assert episode.status_code == 201 and episode.json()["icd10_code"] == "M20.22"
    episode_id = episode.json()["id"]
    day = (timezone.localdate() - dt.timedelta(days=30)).isoformat()
    procedure = client.post_json(f"{V1}/procedures", {"episode_id": episode_id, "date": day, "kind": "prp",
                                                      "is_index": True, "image_guidance": "ultrasound"})
    assert procedure.status_code == 201, procedure.content
    assert procedure.json()["category"] == "orthobiologic"
    # the index procedure scheduled the follow-ups, and the analytics facts are marked for refresh
    assert Assessment.objects.filter(episode_id=episode_id).count() > 3
    assert StaleEpisode.objects.filter(episode_id=episode_id).exists()
    audit = AuditEvent.objects.filter(action="create", object_type="procedure").first()
    assert audit.username == "doc" and audit.patient_id == patient["id"]
    grade = client.post_json(f"{V1}/grades", {"episode_id": episode_id, "date": day, "system": "coughlin_shurnas",
                                              "inputs": {"dorsiflexion_deg": 25}, "grade": 2})
    assert grade.status_code == 201, grade.content
    exam = client.post_json(f"{V1}/exams", {"episode_id": episode_id, "date": day, "dorsiflexion_deg": 25})
    assert exam.status_code == 201
    event = client.post_json(f"{V1}/adverse-events", {"procedure_id": procedure.json()["id"], "date": day,
                                                      "severity": "mild", "description": "Swelling"})
    assert event.status_code == 201, event.content
    response = client.post_json(f"{V1}/responses", {"patient_id": patient["id"], "episode_id": episode_id,
                                                    "instrument": "nprs", "answers": [7], "time_point": "baseline"})
    assert response.status_code == 201 and response.json()["score"] == 7 and response.json()["scores"] == {
        "pain": 7.0}
    baseline = Assessment.objects.get(episode_id=episode_id, time_point="baseline", instrument="nprs")
    assert baseline.status == "completed" and baseline.response_id == response.json()["id"]
    # updates
    moved = (timezone.localdate() - dt.timedelta(days=20)).isoformat()
    changed = client.patch_json(f"{V1}/procedures/{procedure.json()['id']}", {"date": moved})
    assert changed.status_code == 200 and changed.json()["date"] == moved
    six = Assessment.objects.get(episode_id=episode_id, time_point="6m", instrument="nprs")
    assert six.due_date > dt.date.fromisoformat(moved)  # re-planned from the new index date
    assert client.patch_json(f"{V1}/patients/{patient['id']}", {"phone": "555-0100"}).json()["phone"] == "555-0100"
    changed_fields = [c[0] for e in patient_history(Patient.objects.get(pk=patient["id"])) for c in e.changes]
    assert "phone" in changed_fields and "updated_at" not in changed_fields  # bookkeeping is not a change
    cancel = client.patch_json(f"{V1}/assessments/{six.pk}", {"status": "cancelled", "reason": "moved away"})
    assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"


def test_an_image_and_a_measurement(clinician, ours):
    client = api_client(clinician)
    changed = client.patch_json(f"{V1}/images/{ours.image.pk}", {"caption": "before", "view": "lateral"})
    assert changed.status_code == 200 and changed.json()["caption"] == "before"
    measured = client.post_json(f"{V1}/measurements", {"image_id": ours.image.pk, "line": [60, 110, 240, 110]})
    assert measured.status_code == 201, measured.content
    assert measured.json()["unit"] == "mm" and measured.json()["medial"] > 0


def test_idempotency_key(clinician, episode):
    client = api_client(clinician)
    body = {"episode_id": episode.pk, "date": "2025-01-02", "dorsiflexion_deg": 40}
    first = client.post_json(f"{V1}/exams", body, **{"Idempotency-Key": "k-1"})
    again = client.post_json(f"{V1}/exams", body, **{"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert episode.exams.count() == 1
    other = client.post_json(f"{V1}/exams", {**body, "dorsiflexion_deg": 41}, **{"Idempotency-Key": "k-1"})
    assert other.status_code == 422 and _error_body(other)["errors"][0]["location"] == "Idempotency-Key"
    assert episode.exams.count() == 1
    # keys are per user; a new key is a new request
    assert client.post_json(f"{V1}/exams", body, **{"Idempotency-Key": "k-2"}).status_code == 201
    assert episode.exams.count() == 2 and IdempotentRequest.objects.count() == 2
    # a refused write is not stored under its key: corrected, it may be sent again with the same key
    bad = client.post_json(f"{V1}/exams", {**body, "date": "2999-01-01"}, **{"Idempotency-Key": "k-3"})
    assert bad.status_code == 422 and not IdempotentRequest.objects.filter(key="k-3").exists()


def _counts():
    return (Patient.objects.count(), Episode.objects.count(), Procedure.objects.count(), Response.objects.count(),
            AuditEvent.objects.filter(action__in=["create", "update"]).count())


@pytest.mark.parametrize(("method", "path", "body", "status", "location"), [
    ("post", "/patients", b'{"mrn": "X", ', 400, "body"),
    ("post", "/patients", b'\xff\xfe not utf-8', 400, "body"),
    ("post", "/patients", [1, 2], 422, None),
    ("post", "/patients", {"mrn": "X", "given_name": "A", "family_name": "B", "birth_date": "yesterday"}, 422,
     "birth_date"),
    ("post", "/patients", {"mrn": "X", "given_name": "A", "family_name": "B", "birth_date": "2999-01-01"}, 422,
     "birth_date"),
    ("post", "/patients", {"mrn": "MRN-001", "given_name": "A", "family_name": "B", "birth_date": "1990-01-01"},
     422, "mrn"),
    ("post", "/patients", {"clinic": "west", "mrn": "X", "given_name": "A", "family_name": "B",
                           "birth_date": "1990-01-01"}, 404, "clinic"),
    ("post", "/episodes", {"patient_id": "one", "body_site": "knee", "side": "left", "condition": "oa_primary"}, 422,
     "patient_id"),
    ("post", "/episodes", {"patient_id": 999999, "body_site": "knee", "side": "left", "condition": "oa_primary"}, 404,
     "patient_id"),
    ("post", "/episodes", {"patient_id": "THEIRS", "body_site": "knee", "side": "left", "condition": "oa_primary"},
     404, "patient_id"),
    ("post", "/episodes", {"patient_id": "OURS", "body_site": "knee", "side": "left", "condition": "gout"}, 422,
     "condition"),
    ("post", "/procedures", {"episode_id": "EPISODE", "date": "2025-01-01", "kind": "bmc", "dextrose_percent": 15},
     422, "dextrose_percent"),
    ("post", "/responses", {"patient_id": "OURS", "instrument": "nprs", "answers": [42]}, 422, "item_1"),
    ("post", "/responses", {"patient_id": "OURS", "instrument": "no-such", "answers": [1]}, 422, "instrument"),
    ("patch", "/patients/OURS", {}, 422, "body"),
    ("patch", "/patients/OURS", {"sex": "dragon"}, 422, "sex"),
    ("patch", "/patients/THEIRS", {"phone": "1"}, 404, "id"),
    ("patch", "/assessments/ASSESSMENT", {"status": "completed", "reason": "x"}, 422, "status"),
])
def test_bad_input_is_4xx_with_the_one_error_body_and_nothing_written(
        clinician, patient, episode, index_procedure, other_patient, method, path, body, status, location):
    client = api_client(clinician)
    assessment = Assessment.objects.filter(episode=episode).first()
    names = {"OURS": patient.pk, "THEIRS": other_patient.pk, "EPISODE": episode.pk, "ASSESSMENT": assessment.pk}

    def fill(value):
        return names.get(value, value) if isinstance(value, str) else value

    path = "/".join(str(fill(part)) for part in path.split("/"))
    if isinstance(body, dict):
        body = json.dumps({k: fill(v) for k, v in body.items()})
    elif isinstance(body, list):
        body = json.dumps(body)
    before = _counts()
    response = getattr(client, method)(f"{V1}{path}", body, content_type="application/json")
    assert response.status_code == status, response.content
    errors = _error_body(response)["errors"]
    if location:
        assert location in [e["location"] for e in errors], errors
    assert _counts() == before
