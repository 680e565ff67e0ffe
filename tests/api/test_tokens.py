"""API tokens: `orthoreg token create|list|revoke`, stored hashed, expiring, revocable, audited, acting with
exactly their user's roles and clinics."""

from __future__ import annotations

import datetime as dt
import io

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection

from orthoreg.accounts.models import AuditEvent, Membership, Role
from orthoreg.api.models import ApiToken
from tests.api.conftest import TokenClient, api_client, token_for

PATIENTS = "/api/v1/patients"


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("token", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_create_prints_the_token_once_and_stores_only_its_hash(clinician, patient):
    out, err = run("create", "--user", "doc", "--expires", "30", "--name", "EHR bridge")
    clear = out.strip()
    assert clear.startswith("orr_") and len(clear) > 40 and "shown once" in err
    token = ApiToken.objects.get()
    assert token.name == "EHR bridge" and token.user == clinician and clear not in token.token_hash
    assert token.prefix == clear[:12] and dt.timedelta(days=29) < token.expires_at - token.created_at
    # the clear token is nowhere in the database
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM api_apitoken")
        assert not any(clear in str(value) for row in cursor.fetchall() for value in row)
    listing, _ = run("list")
    assert token.prefix in listing and clear not in listing and "active" in listing and "EHR bridge" in listing
    assert AuditEvent.objects.filter(action="create", object_type="apitoken", detail__contains=token.prefix).exists()
    response = TokenClient(clear).get(PATIENTS)
    assert response.status_code == 200 and [p["mrn"] for p in response.json()["items"]] == ["MRN-001"]


def test_revoked_token_is_refused_and_the_refusal_audited(clinician, patient):
    clear = token_for(clinician)
    client = TokenClient(clear)
    assert client.get(PATIENTS).status_code == 200
    out, _ = run("revoke", clear[:12])
    assert "Revoked" in out and ApiToken.objects.get().revoked_at is not None
    assert AuditEvent.objects.filter(action="update", detail__contains="revoked").exists()
    response = client.get(PATIENTS)
    assert response.status_code == 401
    body = response.json()
    assert "revoked" in body["detail"] and body["errors"][0]["location"] == "Authorization"
    assert AuditEvent.objects.filter(action="login_failed", detail__contains="revoked token").exists()
    assert "revoked" in run("list", "--user", "doc")[0]


def test_expired_token_is_refused(clinician, patient):
    clear = token_for(clinician, days=1)
    assert TokenClient(clear).get(PATIENTS).status_code == 200
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(days=1, minutes=1)):
        response = TokenClient(clear).get(PATIENTS)
    assert response.status_code == 401 and "expired" in response.json()["detail"]
    assert AuditEvent.objects.filter(action="login_failed", detail__contains="expired token").exists()


def test_unknown_token_is_refused(db):
    response = TokenClient("orr_not-a-token").get(PATIENTS)
    assert response.status_code == 401 and "unknown" in response.json()["detail"]


def test_refusals_from_one_address_are_audited_up_to_the_limit_then_said_once(db, settings):
    """A client hammering the API with wrong tokens cannot flood the audit log: each refusal still answers 401,
    but only ORTHOREG_LOGIN_ADDRESS_LIMIT are recorded per address and cool-off time, the last saying so; another
    address is recorded on its own, and after the cool-off time recording starts again."""
    settings.LOGIN_ADDRESS_LIMIT = 3
    refused = AuditEvent.objects.filter(action="login_failed", detail__startswith="API refused")
    for n in range(7):
        response = TokenClient(f"orr_wrong-{n}").get(PATIENTS)
        assert response.status_code == 401 and "unknown" in response.json()["detail"]
    assert refused.count() == 3
    assert "further refusals from it are not recorded" in refused.order_by("-id").first().detail
    assert TokenClient("orr_wrong-x").get(PATIENTS, REMOTE_ADDR="10.0.0.9").status_code == 401
    assert refused.filter(ip_address="10.0.0.9").count() == 1
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=16)):
        assert TokenClient("orr_wrong-later").get(PATIENTS).status_code == 401
    assert refused.count() == 5


def test_no_token_is_401_with_the_one_error_body(db):
    response = TokenClient(None).get(PATIENTS)
    assert response.status_code == 401
    assert set(response.json()) == {"detail", "errors"}


def test_a_token_acts_with_its_users_roles_as_they_are_now(clinician, patient, other_patient, other_clinic):
    client = api_client(clinician)
    assert [p["mrn"] for p in client.get(PATIENTS).json()["items"]] == ["MRN-001"]
    Membership.objects.create(user=clinician, clinic=other_clinic, role=Role.COORDINATOR)
    body = client.get(PATIENTS).json()["items"]
    assert sorted(p["mrn"] for p in body) == ["MRN-001", "W-1"]
    assert [p["notes"] for p in body if p["mrn"] == "W-1"] == [None]  # a coordinator there: no clinical notes
    Membership.objects.filter(user=clinician).delete()
    assert client.get(PATIENTS).status_code == 403


def test_token_reads_are_audited_as_its_user(clinician, patient):
    api_client(clinician).get(f"{PATIENTS}/{patient.pk}")
    entry = AuditEvent.objects.filter(action="view", patient=patient).first()
    assert entry is not None and entry.username == "doc"


@pytest.mark.parametrize(("args", "message"), [
    (["create", "--user", "nobody"], "No user named"),
    (["create", "--user", "doc", "--expires", "0"], "between 1 and"),
    (["revoke", "orr_missing1"], "No API token"),
])
def test_refused_input_exits_2(clinician, args, message):
    with pytest.raises(CommandError) as excinfo:
        run(*args)
    assert excinfo.value.returncode == 2 and message in str(excinfo.value)
    assert not ApiToken.objects.exists()
