"""500s from input (issue 12, finding 8): an overflowing id on the audit page, initials that would break a
download's header, a clinic name that would break every invitation email. Validated at the model; headers are
never built by hand from stored text; the export is logged only once its response exists."""

import datetime as dt
import importlib
from email.message import Message

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.http import BadHeaderError
from django.urls import reverse
from django.utils import timezone

from orthoreg.accounts.models import AuditEvent
from orthoreg.registry import services
from orthoreg.registry.models import Clinic, Patient
from tests.conftest import login

BAD_INITIALS = ['D"F', "D\nF", "D\r\nX-E:1", "D F", "D;F", "D/F"]  # at most 8 characters, as stored


@pytest.mark.parametrize("value", ["99999999999999999999", str(2**63), "-1", "abc"])
def test_an_unreadable_patient_filter_on_the_audit_page_is_a_400_with_a_message(auditor, patient, value):
    client = login(auditor)
    for params in ({"patient": value}, {"patient": value, "format": "csv"}):
        response = client.get(reverse("accounts:audit_log"), params)
        assert response.status_code == 400
        body = response.content.decode()
        assert "errorlist" in body and "Patient id" in body
    assert "No patient has an id this large" in client.get(reverse("accounts:audit_log"),
                                                          {"patient": "99999999999999999999"}).content.decode()
    # the largest id that fits still works
    assert client.get(reverse("accounts:audit_log"), {"patient": str(2**63 - 1)}).status_code == 200


@pytest.mark.parametrize("initials", BAD_INITIALS)
def test_initials_are_letters_only(patient, initials):
    with pytest.raises(ValidationError) as caught:
        services.patient_update(patient=patient, initials=initials)
    assert "Initials are letters" in str(caught.value.message_dict["initials"])
    patient.refresh_from_db()
    assert patient.initials == "DF"


@pytest.mark.parametrize("initials", ["DF", "J.P.", "A-M", "ZÖ", "ДФ"])
def test_usual_initials_are_kept(patient, initials):
    assert services.patient_update(patient=patient, initials=initials).initials == initials


def test_the_patient_form_says_what_is_wrong_with_initials(clinician_client, patient):
    response = clinician_client.post(reverse("registry:patient_edit", args=[patient.pk]), {
        "mrn": patient.mrn, "given_name": "Dana", "family_name": "Fox", "initials": 'D"F', "birth_date": "1985-05-17",
        "sex": "female", "status": "active", "consent_registry": "on", "consent_date": "2024-01-10",
        "consent_version": "v1"})
    assert response.status_code == 400 and "Initials are letters" in response.content.decode()


@pytest.mark.parametrize("given, family, expected", [
    ("Dana", "Fox", "DF"), ("(Jo)", "O'Brien", "JO"), ('"Sam"', "-Lee", "SL"), ("Ann Marie", "de la Cruz", "AMDLC"),
])
def test_derived_initials_are_always_valid(clinic, given, family, expected):
    patient = services.patient_create(clinic=clinic, mrn=f"M-{expected}", given_name=given, family_name=family,
                                      birth_date=dt.date(1980, 1, 1))
    assert patient.initials == expected


@pytest.mark.parametrize("initials", BAD_INITIALS)
def test_the_case_report_pdf_header_is_safe_whatever_was_stored(clinician_client, index_procedure, initials):
    """Initials stored before the validator existed (or by a raw write) still make a well-formed download."""
    episode = index_procedure.episode
    Patient.objects.filter(pk=episode.patient_id).update(initials=initials)
    before = AuditEvent.objects.filter(action="export").count()
    response = clinician_client.get(reverse("reports:case_pdf", args=[episode.pk]))
    assert response.status_code == 200 and response.content.startswith(b"%PDF")
    header = response["Content-Disposition"]
    assert header.startswith("attachment; filename") and "\n" not in header and "\r" not in header
    assert "X-E" not in response.headers
    parsed = Message()
    parsed["Content-Disposition"] = header
    assert parsed.get_filename() == f"case-report-{initials}-{episode.pk}.pdf"  # quoted or encoded, never cut
    assert AuditEvent.objects.filter(action="export").count() == before + 1


def test_no_export_is_logged_for_a_download_that_was_never_built(clinician_client, index_procedure, monkeypatch):
    from orthoreg.reports import views

    def broken(*args, **kwargs):
        raise BadHeaderError("the response could not be built")

    monkeypatch.setattr(views, "_download", broken)
    clinician_client.raise_request_exception = False
    response = clinician_client.get(reverse("reports:case_pdf", args=[index_procedure.episode.pk]))
    assert response.status_code == 500
    assert not AuditEvent.objects.filter(action="export").exists()


@pytest.mark.parametrize("name", ["East\nClinic", "East\r\nBcc: x@example.org", "East\tClinic", "East\x85Clinic"])
def test_a_clinic_name_is_one_line(clinic, name):
    with pytest.raises(ValidationError) as caught:
        services.clinic_update(clinic=clinic, name=name)
    assert "one line" in str(caught.value.message_dict["name"])
    with pytest.raises(ValidationError):
        services.clinic_create(code="north", name=name)


def test_invitations_go_out_even_if_a_stored_clinic_name_has_a_line_break(episode, settings):
    """A name stored before the validator existed must not make every invitation fail forever."""
    from orthoreg.followup import services as followup

    settings.BASE_URL = "http://testserver"
    services.procedure_record(episode=episode, date=timezone.localdate() - dt.timedelta(days=183), kind="bmc",
                              is_index=True)
    Clinic.objects.filter(pk=episode.patient.clinic_id).update(name="East\nClinic")
    run = followup.worker_pass(worker="t")
    assert (run.sent, run.failures) == (1, 0)
    [message] = mail.outbox
    assert "\n" not in message.subject and "East Clinic" in message.subject


def test_the_migration_repairs_rows_stored_before_the_validators(clinic, patient):
    from django.apps import apps

    migration = importlib.import_module("orthoreg.registry.migrations.0003_clinic_name_and_initials_validated")
    Clinic.objects.filter(pk=clinic.pk).update(name="East\r\n  Clinic\t")
    Patient.objects.filter(pk=patient.pk).update(initials='D"F')
    migration.repair(apps, None)
    clinic.refresh_from_db()
    patient.refresh_from_db()
    assert (clinic.name, patient.initials) == ("East Clinic", "DF")
    clinic.full_clean()
    patient.full_clean()
