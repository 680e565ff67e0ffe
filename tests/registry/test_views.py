"""The clinician UI through HTTP: login, search, the patient page, forms with field messages."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from orthoreg.accounts.models import AuditEvent
from orthoreg.registry import services
from orthoreg.registry.models import Episode, Patient, Procedure


@pytest.mark.parametrize("name", ["registry:patient_list", "registry:patient_create", "home"])
def test_login_required(client, db, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


def test_login_page_and_sign_in(client, clinician):
    assert client.get(reverse("accounts:login")).status_code == 200
    response = client.post(reverse("accounts:login"), {"username": "doc", "password": "correct-horse-battery-9"})
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="login", username="doc").exists()
    client.logout()
    bad = client.post(reverse("accounts:login"), {"username": "doc", "password": "nope"})
    assert bad.status_code == 200
    assert "did not match" in bad.content.decode()


def test_search_by_initials_name_and_mrn(clinician_client, patient, other_patient):
    for q in ("DF", "fox", "MRN-001", "dana fox"):
        body = clinician_client.get(reverse("registry:patient_list"), {"q": q}).content.decode()
        assert "Fox, Dana" in body, q
        assert "Stone" not in body  # another clinic's patient never shows


def test_filters_and_pagination(clinician_client, clinic):
    for n in range(30):
        p = Patient.objects.create(clinic=clinic, mrn=f"P{n:03d}", given_name="Pat", family_name=f"Name{n:02d}",
                                   birth_date=dt.date(1970, 1, 1))
        if n % 2:
            Episode.objects.create(patient=p, body_site="knee", side="left", condition="oa_primary")
    page1 = clinician_client.get(reverse("registry:patient_list")).content.decode()
    assert "30 patients" in page1 and 'rel="next"' in page1 and 'rel="prev"' not in page1
    knee = clinician_client.get(reverse("registry:patient_list"), {"condition": "oa_primary"}).content.decode()
    assert "15 patients" in knee


def test_patient_list_is_an_htmx_fragment_when_asked(clinician_client, patient):
    response = clinician_client.get(reverse("registry:patient_list"), {"q": "DF"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert "Fox, Dana" in body and "<html" not in body


def test_patient_page_shows_the_timeline_and_is_audited(clinician_client, index_procedure):
    patient = index_procedure.episode.patient
    services.procedure_record(episode=index_procedure.episode, date=index_procedure.date + dt.timedelta(days=90),
                              kind="first_mtp_arthrodesis")
    body = clinician_client.get(reverse("registry:patient_detail", args=[patient.pk])).content.decode()
    assert "Hallux rigidus, right first MTP joint" in body
    assert "Bone marrow concentrate injection" in body
    assert "Converted to surgery" in body
    assert "M20.21" in body
    assert AuditEvent.objects.filter(action="view", patient=patient).count() == 1


def test_other_clinic_gets_404_everywhere(other_client, index_procedure):
    episode = index_procedure.episode
    urls = [
        reverse("registry:patient_detail", args=[episode.patient_id]),
        reverse("registry:patient_edit", args=[episode.patient_id]),
        reverse("registry:episode_create", args=[episode.patient_id]),
        reverse("registry:episode_edit", args=[episode.pk]),
        reverse("registry:grade_create", args=[episode.pk]),
        reverse("registry:procedure_create", args=[episode.pk]),
        reverse("registry:procedure_edit", args=[index_procedure.pk]),
        reverse("registry:exam_create", args=[episode.pk]),
        reverse("registry:adverse_event_create", args=[index_procedure.pk]),
    ]
    for url in urls:
        assert other_client.get(url).status_code == 404, url
        assert other_client.post(url, {}).status_code == 404, url


def test_create_patient_through_the_form(clinician_client, clinic):
    data = {"mrn": "N-1", "given_name": "Ann", "family_name": "Lee", "birth_date": "1979-03-04", "sex": "female",
            "status": "active"}
    response = clinician_client.post(reverse("registry:patient_create"), data)
    assert response.status_code == 302
    patient = Patient.objects.get(mrn="N-1")
    assert patient.clinic == clinic and patient.initials == "AL"


def test_duplicate_mrn_form_shows_field_message_and_saves_nothing(clinician_client, patient):
    data = {"mrn": patient.mrn, "given_name": "Ann", "family_name": "Lee", "birth_date": "1979-03-04",
            "sex": "female", "status": "active"}
    response = clinician_client.post(reverse("registry:patient_create"), data)
    assert response.status_code == 400
    body = response.content.decode()
    assert "already used by another patient" in body and "Nothing was saved" in body
    assert Patient.objects.filter(mrn=patient.mrn).count() == 1


def test_procedure_form_bad_input_messages(clinician_client, episode):
    url = reverse("registry:procedure_create", args=[episode.pk])
    before_birth = (episode.patient.birth_date - dt.timedelta(days=3)).isoformat()
    response = clinician_client.post(url, {"date": before_birth, "kind": "bmc", "target_structure": "joint",
                                           "image_guidance": "none", "harvest_volume_ml": "9999",
                                           "nsaid_use": "unknown", "anticoagulant_use": "unknown",
                                           "steroid_use": "unknown"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "before the patient&#x27;s birth date" in body
    assert "less than or equal to 500" in body
    assert not Procedure.objects.exists()


def test_procedure_form_saves(clinician_client, episode):
    url = reverse("registry:procedure_create", args=[episode.pk])
    day = (timezone.localdate() - dt.timedelta(days=10)).isoformat()
    response = clinician_client.post(url, {"date": day, "kind": "bmc", "target_structure": "joint",
                                           "image_guidance": "ultrasound", "is_index": "on",
                                           "total_nucleated_cells": "4.6e8", "nsaid_use": "false",
                                           "anticoagulant_use": "unknown", "steroid_use": "unknown"})
    assert response.status_code == 302, response.content.decode()[:2000]
    p = Procedure.objects.get()
    assert p.is_index and p.total_nucleated_cells == 4.6e8 and p.nsaid_use is False and p.category == "orthobiologic"


def test_exam_with_400_degrees_is_refused(clinician_client, episode):
    response = clinician_client.post(reverse("registry:exam_create", args=[episode.pk]),
                                     {"date": timezone.localdate().isoformat(), "dorsiflexion_deg": "400"})
    assert response.status_code == 400
    assert "less than or equal to 120" in response.content.decode()


def test_episode_form_wrong_side_code(clinician_client, patient):
    response = clinician_client.post(reverse("registry:episode_create", args=[patient.pk]),
                                     {"body_site": "first_mtp", "side": "left", "condition": "hallux_rigidus",
                                      "icd10_code": "M20.21", "status": "active"})
    assert response.status_code == 400
    assert "M20.21 is a right code" in response.content.decode()
    assert not Episode.objects.exists()


def test_grade_form_live_suggestion_and_save(clinician_client, episode):
    suggest = clinician_client.post(reverse("registry:grade_suggest", args=[episode.pk]),
                                    {"system": "coughlin_shurnas", "date": timezone.localdate().isoformat(),
                                     "dorsiflexion": "8", "radiograph": "3", "clinical": "3", "midrange_pain": "on"},
                                    HTTP_HX_REQUEST="true")
    assert "Grade 4" in suggest.content.decode()
    response = clinician_client.post(reverse("registry:grade_create", args=[episode.pk]),
                                     {"system": "coughlin_shurnas", "date": timezone.localdate().isoformat(),
                                      "dorsiflexion": "25", "radiograph": "2", "clinical": "2"})
    assert response.status_code == 302
    assert episode.grades.get().grade == 2


def test_grade_form_400_degrees(clinician_client, episode):
    response = clinician_client.post(reverse("registry:grade_create", args=[episode.pk]),
                                     {"system": "coughlin_shurnas", "date": timezone.localdate().isoformat(),
                                      "dorsiflexion": "400"})
    assert response.status_code == 400
    assert "Enter a number from -30 to 120 degrees." in response.content.decode()


def test_grade_calculator_flags_an_impossible_value_live_on_its_field(clinician_client, episode):
    suggest = clinician_client.post(reverse("registry:grade_suggest", args=[episode.pk]),
                                    {"system": "coughlin_shurnas", "date": timezone.localdate().isoformat(),
                                     "dorsiflexion": "400", "radiograph": "2", "clinical": "2"},
                                    HTTP_HX_REQUEST="true")
    html = suggest.content.decode()
    assert ('<ul id="live-error-dorsiflexion" class="errorlist" role="alert" hx-swap-oob="true">'
            "<li>400: Enter a number from -30 to 120 degrees.</li></ul>") in html
    assert "Not used until corrected: Dorsiflexion (°)." in html
    assert '<ul id="live-error-radiograph" class="errorlist" role="alert" hx-swap-oob="true"></ul>' in html
    assert "Grade 2" in html  # the other domains still give a suggestion


def test_the_suggestion_does_not_blank_after_a_failed_save(clinician_client, episode):
    response = clinician_client.post(reverse("registry:grade_create", args=[episode.pk]),
                                     {"system": "coughlin_shurnas", "date": timezone.localdate().isoformat(),
                                      "dorsiflexion": "400", "radiograph": "2", "clinical": "2"})
    assert response.status_code == 400
    html = response.content.decode()
    assert '<div class="suggested" data-testid="suggested-grade">Grade 2</div>' in html
    assert "Enter a number from -30 to 120 degrees." in html
    assert not episode.grades.exists()


def test_security_headers(clinician_client, patient):
    response = clinician_client.get(reverse("registry:patient_detail", args=[patient.pk]))
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert response["Cache-Control"] == "no-store"
    assert response["X-Frame-Options"] == "DENY"


def test_unknown_url_is_a_friendly_404(clinician_client):
    response = clinician_client.get("/patients/999999/")
    assert response.status_code == 404


def test_healthz(client, db):
    assert client.get("/healthz").content == b"ok"


def test_change_history_shows_who_changed_what(clinician_client, clinician, patient):
    clinician_client.post(reverse("registry:patient_edit", args=[patient.pk]),
                          {"mrn": patient.mrn, "given_name": "Dana", "family_name": "Foxe", "birth_date": "1985-05-17",
                           "sex": "female", "status": "active", "email": patient.email, "consent_registry": "on",
                           "consent_date": "2024-01-10", "consent_version": "v1"})
    body = clinician_client.get(reverse("registry:patient_history", args=[patient.pk])).content.decode()
    assert "family_name" in body and "Fox → Foxe" in body
    assert "doc" in body


def test_grade_form_keeps_zero_findings(clinician_client, episode):
    """0 degrees of dorsiflexion is a finding (grade 3 motion), not an empty field."""
    response = clinician_client.post(reverse("registry:grade_create", args=[episode.pk]),
                                     {"system": "coughlin_shurnas", "date": timezone.localdate().isoformat(),
                                      "dorsiflexion": "0", "radiograph": "1", "clinical": "0"})
    assert response.status_code == 302
    grade = episode.grades.get()
    assert grade.inputs == {"dorsiflexion": 0, "radiograph": 1, "clinical": 0}
    assert grade.suggested_grade == 3 and grade.discordant


def test_a_recorded_cheilectomy_flags_the_grade(clinician_client, episode):
    day = timezone.localdate()
    services.procedure_record(episode=episode, date=day - dt.timedelta(days=700), kind="cheilectomy")
    response = clinician_client.post(reverse("registry:grade_create", args=[episode.pk]),
                                     {"system": "coughlin_shurnas", "date": day.isoformat(), "radiograph": "2"})
    assert response.status_code == 302
    grade = episode.grades.get()
    assert grade.inputs["prior_cheilectomy"] is True
    assert any("cheilectomy" in flag for flag in grade.flags)


def test_a_calculator_error_lands_on_its_field(clinician_client, episode):
    response = clinician_client.post(reverse("registry:grade_create", args=[episode.pk]),
                                     {"system": "coughlin_shurnas", "date": timezone.localdate().isoformat(),
                                      "dorsiflexion": "20", "other_side_dorsiflexion": "0"})
    assert response.status_code == 400
    form = response.context["form"]
    assert "other_side_dorsiflexion" in form.errors, form.errors


def test_a_new_grade_starts_from_the_latest_exams_motion(clinician_client, episode):
    from orthoreg.registry.models import Exam
    Exam.objects.create(episode=episode, date=timezone.localdate() - dt.timedelta(days=30), dorsiflexion_deg=30)
    Exam.objects.create(episode=episode, date=timezone.localdate(), dorsiflexion_deg=8, plantarflexion_deg=6)
    form = clinician_client.get(reverse("registry:grade_create", args=[episode.pk])).context["form"]
    assert form["dorsiflexion"].value() == 8 and form["plantar_flexion"].value() == 6
    response = clinician_client.post(reverse("registry:grade_create", args=[episode.pk]),
                                     {"system": "coughlin_shurnas", "date": timezone.localdate().isoformat(),
                                      "dorsiflexion": "8", "plantar_flexion": "6", "radiograph": "3"})
    assert response.status_code == 302
    grade = episode.grades.get()
    assert grade.inputs["plantar_flexion"] == 6 and grade.suggested_grade == 3
    assert any("Plantar flexion 6° (≤ 10°) also fits grade 3" in flag for flag in grade.flags)
