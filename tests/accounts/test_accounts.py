"""Roles, two-factor, login throttling, the append-only audit log, production settings."""

import datetime as dt
import io
import os
import re
import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from orthoreg.accounts import access, twofactor
from orthoreg.accounts.models import AuditEvent, EnrolmentCode, Membership, Role
from tests.conftest import PASSWORD, login, make_user


def totp_now(device: TOTPDevice) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():06d}"


def test_createuser_command_with_several_clinics(clinic, other_clinic, capsys):
    call_command("createuser", "multi", "--password", "a-long-enough-pass-42", "--clinic", clinic.code,
                 "--clinic", other_clinic.code, "--role", "coordinator")
    roles = set(Membership.objects.filter(user__username="multi").values_list("clinic__code", "role"))
    assert roles == {(clinic.code, "coordinator"), (other_clinic.code, "coordinator")}


def test_createuser_refuses_unknown_clinic_and_weak_password(clinic):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No clinic with code"):
        call_command("createuser", "x", "--password", "a-long-enough-pass-42", "--clinic", "nope")
    with pytest.raises(CommandError, match="too short|too common"):
        call_command("createuser", "y", "--password", "short", "--clinic", clinic.code)


def test_capabilities_by_role(clinic, coordinator, researcher, auditor, clinician):
    assert access.clinic_ids(clinician, access.CLINICAL) == {clinic.pk}
    assert access.clinic_ids(coordinator, access.CLINICAL) == set()
    assert access.clinic_ids(coordinator, access.CONTACT) == {clinic.pk}
    assert access.clinic_ids(researcher, access.CONTACT) == set()
    assert access.clinic_ids(researcher, access.RESEARCH) == {clinic.pk}
    assert access.clinic_ids(auditor, access.AUDIT) == {clinic.pk}


def test_researcher_never_reaches_a_name(researcher, patient):
    client = login(researcher)
    assert client.get(reverse("registry:patient_list")).status_code == 404
    assert client.get(reverse("registry:patient_detail", args=[patient.pk])).status_code == 404
    assert patient.family_name not in client.get("/").content.decode()


def test_coordinator_sees_contact_but_not_clinical(coordinator, index_procedure):
    client = login(coordinator)
    patient = index_procedure.episode.patient
    body = client.get(reverse("registry:patient_detail", args=[patient.pk])).content.decode()
    assert patient.email in body
    assert "Bone marrow concentrate" not in body
    assert client.get(reverse("registry:procedure_edit", args=[index_procedure.pk])).status_code == 404


def test_admin_must_set_up_two_factor_then_verify(clinic, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # a wrong code normally delays the next try
    admin = make_user("boss", Role.ADMIN, clinic)
    client = Client()
    assert client.post(reverse("accounts:login"), {"username": "boss", "password": PASSWORD}).status_code == 302
    response = client.get(reverse("registry:patient_list"))
    assert response.status_code == 302 and reverse("accounts:2fa_setup") in response["Location"]
    page = client.get(reverse("accounts:2fa_setup"))
    assert "<svg" in page.content.decode()
    device = TOTPDevice.objects.get(user=admin, confirmed=False)
    # A stolen password cannot enrol the thief's phone: the first set-up needs the administrator's code.
    no_code = client.post(reverse("accounts:2fa_setup"), {"token": totp_now(device)})
    assert no_code.status_code == 400 and "enrolment_code" in no_code.context["form"].errors
    code = twofactor.enrolment_code_issue(user=admin)
    wrong = client.post(reverse("accounts:2fa_setup"), {"token": totp_now(device), "enrolment_code": "AAAA-BBBB-CCCC"})
    assert wrong.status_code == 400 and "not the one issued" in wrong.content.decode()
    assert not TOTPDevice.objects.filter(user=admin, confirmed=True).exists()
    bad = client.post(reverse("accounts:2fa_setup"), {"enrolment_code": code,
                                                      "token": "000000" if totp_now(device) != "000000" else "111111"})
    assert bad.status_code == 400
    ok = client.post(reverse("accounts:2fa_setup"), {"enrolment_code": code.lower(), "token": totp_now(device),
                                                     "next": "/patients/"})
    assert ok.status_code == 302 and ok["Location"] == "/patients/"
    assert not EnrolmentCode.objects.filter(user=admin).exists()  # used once
    assert client.get(reverse("registry:patient_list")).status_code == 200
    # a new session needs the code again: the password alone opens nothing
    other = Client()
    other.post(reverse("accounts:login"), {"username": "boss", "password": PASSWORD})
    response = other.get(reverse("registry:patient_list"))
    assert reverse("accounts:2fa_verify") in response["Location"]
    device.refresh_from_db()
    device.last_t = -1  # allow the same time step again in this test
    device.save()
    assert other.post(reverse("accounts:2fa_verify"), {"token": totp_now(device)}).status_code == 302
    assert other.get(reverse("registry:patient_list")).status_code == 200


def test_two_factor_for_everyone_when_configured(settings, clinician):
    settings.REQUIRE_2FA_FOR_ALL = True
    client = login(clinician)
    assert reverse("accounts:2fa_setup") in client.get("/patients/")["Location"]


def test_open_redirect_is_refused(clinic):
    make_user("boss2", Role.ADMIN, clinic)
    client = Client()
    client.post(reverse("accounts:login"), {"username": "boss2", "password": PASSWORD})
    page = client.get(reverse("accounts:2fa_setup"), {"next": "https://evil.example/"})
    assert 'value="https://evil.example/"' not in page.content.decode()


def test_login_throttling(settings, clinician):
    settings.AXES_ENABLED = True
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("accounts:login"), {"username": "doc", "password": "wrong"})
    locked = client.post(reverse("accounts:login"), {"username": "doc", "password": PASSWORD})
    assert locked.status_code == 429
    assert "Too many attempts" in locked.content.decode()
    assert AuditEvent.objects.filter(action="login_failed").count() >= settings.AXES_FAILURE_LIMIT


def test_audit_log_is_append_only(clinician, patient):
    event = AuditEvent.objects.create(action="view", patient=patient, user=clinician)
    with pytest.raises(PermissionDenied):
        event.save()
    with pytest.raises(PermissionDenied):
        event.delete()
    with pytest.raises(PermissionDenied):
        AuditEvent.objects.all().delete()
    with pytest.raises(PermissionDenied):
        AuditEvent.objects.update(detail="x")


def test_audit_page_for_auditors_only_and_scoped(auditor, clinician_client, patient, other_patient, other_client):
    clinician_client.get(reverse("registry:patient_detail", args=[patient.pk]))
    other_client.get(reverse("registry:patient_detail", args=[other_patient.pk]))
    assert clinician_client.get(reverse("accounts:audit_log")).status_code == 404
    client = login(auditor)
    body = client.get(reverse("accounts:audit_log"), {"action": "view"}).content.decode()
    assert f"#{patient.pk}" in body and f"#{other_patient.pk}" not in body
    csv_response = client.get(reverse("accounts:audit_log"), {"format": "csv", "action": "view"})
    text = b"".join(csv_response.streaming_content).decode()
    assert text.splitlines()[0].startswith("at,username")
    assert AuditEvent.objects.filter(action="export", username="audit").exists()


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {**os.environ, "ORTHOREG_DATA_DIR": str(tmp_path), "ORTHOREG_SECURE": "1", "ORTHOREG_DEBUG": "0",
           "ORTHOREG_SECRET_KEY": "x" * 20 + "-production-secret-key-with-enough-entropy-0123456789",
           "ORTHOREG_ALLOWED_HOSTS": "registry.example.org"}
    env.pop("ORTHOREG_DATABASE_URL", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set by the browser tests in this process, never in production
    result = subprocess.run([sys.executable, "-m", "orthoreg", "manage", "check", "--deploy", "--fail-level",
                             "WARNING"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_every_read_of_a_patient_record_is_audited_once(clinician_client, index_procedure):
    from orthoreg.instruments.services import response_record

    patient = index_procedure.episode.patient
    response = response_record(patient=patient, episode=index_procedure.episode, instrument="nprs", answers=[5])
    before = AuditEvent.objects.filter(action="view", patient=patient).count()
    assert clinician_client.get(reverse("instruments:response_detail", args=[response.pk])).status_code == 200
    assert AuditEvent.objects.filter(action="view", patient=patient).count() == before + 1
    clinician_client.get(reverse("registry:patient_detail", args=[patient.pk]))
    assert AuditEvent.objects.filter(action="view", patient=patient).count() == before + 2
    clinician_client.get(reverse("registry:patient_list"))  # a list is not a look at one record
    assert AuditEvent.objects.filter(action="view", patient=patient).count() == before + 2


@pytest.mark.parametrize("behind_proxy, forwarded, expected", [
    (False, "203.0.113.9", "127.0.0.1"),                # no proxy: a forwarded header is the client's claim
    (True, "203.0.113.9", "203.0.113.9"),               # the proxy's own entry
    (True, "10.9.9.9, 198.51.100.4", "198.51.100.4"),   # a forged first entry is ignored
    (True, "", "127.0.0.1"),
    (True, "not-an-address", None),
])
def test_the_audit_records_the_real_client_address(settings, behind_proxy, forwarded, expected):
    from django.test import RequestFactory

    from orthoreg.accounts.services import client_ip

    settings.BEHIND_PROXY = behind_proxy
    request = RequestFactory().get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


def test_an_expired_enrolment_code_is_refused(clinic):
    admin = make_user("boss3", Role.ADMIN, clinic)
    code = twofactor.enrolment_code_issue(user=admin)
    EnrolmentCode.objects.filter(user=admin).update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    client = Client()
    client.post(reverse("accounts:login"), {"username": "boss3", "password": PASSWORD})
    client.get(reverse("accounts:2fa_setup"))
    device = TOTPDevice.objects.get(user=admin, confirmed=False)
    response = client.post(reverse("accounts:2fa_setup"), {"enrolment_code": code, "token": totp_now(device)})
    assert response.status_code == 400 and "expired" in response.content.decode()


def test_voluntary_two_factor_needs_no_enrolment_code(clinician):
    client = login(clinician)
    client.get(reverse("accounts:2fa_setup"))
    device = TOTPDevice.objects.get(user=clinician, confirmed=False)
    assert "enrolment_code" not in client.get(reverse("accounts:2fa_setup")).context["form"].fields
    assert client.post(reverse("accounts:2fa_setup"), {"token": totp_now(device)}).status_code == 302


def test_createuser_and_twofactor_commands_print_enrolment_codes(clinic):
    out = io.StringIO()
    call_command("createuser", "chief", "--password", "a-long-enough-pass-42", "--clinic", clinic.code,
                 "--role", "admin", stdout=out)
    assert re.search(r"enrolment code [A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}", out.getvalue())
    chief = get_user_model().objects.get(username="chief")
    TOTPDevice.objects.create(user=chief, name="phone", confirmed=True)
    out = io.StringIO()
    call_command("twofactor", "reset", "chief", stdout=out)
    assert "enrolment code for chief" in out.getvalue()
    assert not TOTPDevice.objects.filter(user=chief).exists()
    out = io.StringIO()
    call_command("twofactor", "status", "chief", stdout=out)
    assert "required, no device yet, an enrolment code valid until" in out.getvalue()
    out = io.StringIO()
    call_command("createuser", "nurse", "--password", "a-long-enough-pass-42", "--clinic", clinic.code, stdout=out)
    assert "enrolment code" not in out.getvalue()  # two-factor is optional for a clinician by default


def test_today_is_the_clinics_today(clinic, clinician, patient):
    """At 23:30 UTC it is already tomorrow in Auckland: a clinic there records today's visit without being told
    the date is in the future."""
    import time_machine

    clinic.timezone = "Pacific/Auckland"
    clinic.save()
    episode = patient.episodes.create(body_site="first_mtp", side="right", condition="hallux_rigidus")
    with time_machine.travel(dt.datetime(2026, 6, 10, 23, 30, tzinfo=dt.UTC), tick=False):
        client = login(clinician)
        response = client.post(reverse("registry:exam_create", args=[episode.pk]),
                               {"date": "2026-06-11", "dorsiflexion_deg": "30"})
        assert response.status_code == 302, response.content.decode()[:2000]
        clinic.timezone = "America/Denver"  # a fresh session in Denver: still 10 June, so the 11th is refused
        clinic.save()
        late = login(clinician).post(reverse("registry:exam_create", args=[episode.pk]),
                                     {"date": "2026-06-11", "dorsiflexion_deg": "30"})
        assert late.status_code == 400 and "in the future" in late.content.decode()
