"""The two-factor gate's cost on every signed-in request: one device query where the gate applies, none where
it does not (/healthz, a verified session), and the roles it reads are the request's own (read once)."""

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from orthoreg.accounts.models import Role
from tests.conftest import login, make_user


def _queries(client, url):
    client.get(url)  # a first request settles the session (time zone, ...)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    sqls = [q["sql"] for q in ctx.captured_queries]
    return response, sqls


def _count(sqls, table):
    return sum(f'"{table}"' in sql for sql in sqls)


def test_signed_in_page_reads_devices_once_and_memberships_once(clinician):
    response, sqls = _queries(login(clinician), reverse("registry:patient_list"))
    assert response.status_code == 200
    assert _count(sqls, "otp_totp_totpdevice") == 1
    assert _count(sqls, "accounts_membership") == 1  # the admin check uses the request's roles


def test_healthz_reads_no_device_nor_membership(clinician):
    response, sqls = _queries(login(clinician), "/healthz")
    assert response.status_code == 200
    assert _count(sqls, "otp_totp_totpdevice") == 0
    assert _count(sqls, "accounts_membership") == 0


def test_admin_without_device_is_sent_to_setup_with_one_device_query(clinic):
    admin = make_user("boss", Role.ADMIN, clinic)
    response, sqls = _queries(login(admin), reverse("registry:patient_list"))
    assert response.status_code == 302 and reverse("accounts:2fa_setup") in response["Location"]
    assert _count(sqls, "otp_totp_totpdevice") == 1


def test_user_with_device_is_sent_to_verify_with_one_device_query(clinician):
    TOTPDevice.objects.create(user=clinician, name="phone", confirmed=True)
    response, sqls = _queries(login(clinician), reverse("registry:patient_list"))
    assert response.status_code == 302 and reverse("accounts:2fa_verify") in response["Location"]
    assert _count(sqls, "otp_totp_totpdevice") == 1


def test_setup_page_reads_the_devices_twice(clinic):
    """The set-up page: one look for a confirmed device and one for the pending one (it asked six times)."""
    admin = make_user("boss", Role.ADMIN, clinic)
    response, sqls = _queries(login(admin), reverse("accounts:2fa_setup"))
    assert response.status_code == 200 and b"enrolment" in response.content.lower()
    assert _count(sqls, "otp_totp_totpdevice") == 2


def test_verify_page_reads_the_devices_once(clinician):
    TOTPDevice.objects.create(user=clinician, name="phone", confirmed=True)
    response, sqls = _queries(login(clinician), reverse("accounts:2fa_verify"))
    assert response.status_code == 200
    assert _count(sqls, "otp_totp_totpdevice") == 1
