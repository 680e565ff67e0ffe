"""Password spraying (issue 12, finding 10): a few passwords tried against many user names from one address are
stopped by a per-address limit (ORTHOREG_LOGIN_ADDRESS_LIMIT), separate from the per-name limit."""

from django.test import Client
from django.urls import reverse

from orthoreg.accounts.models import Role
from tests.conftest import PASSWORD, make_user


def _try(client, username, password="wrong", address="198.51.100.7"):
    return client.post(reverse("accounts:login"), {"username": username, "password": password},
                       REMOTE_ADDR=address)


def test_spraying_many_user_names_from_one_address_is_locked(settings, clinic, clinician):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    settings.LOGIN_ADDRESS_LIMIT = 6
    client = Client()
    # two wrong passwords per name stays under the per-name limit for every name ...
    answers = [_try(client, f"user{n}").status_code for n in range(3) for _ in range(2)]
    # ... but the sixth failure from this address locks it out
    assert answers == [200] * 5 + [429]
    # even for a user name never tried, with the right password
    locked = _try(client, "doc", PASSWORD)
    assert locked.status_code == 429 and "Too many attempts" in locked.content.decode()
    # another address is not affected
    assert _try(Client(), "doc", PASSWORD, address="203.0.113.5").status_code == 302


def test_under_the_address_limit_a_right_password_signs_in(settings, clinic, clinician):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    settings.LOGIN_ADDRESS_LIMIT = 6
    client = Client()
    for n in range(5):
        _try(client, f"user{n}")
    assert _try(client, "doc", PASSWORD).status_code == 302


def test_the_per_name_limit_still_applies_below_the_address_limit(settings, clinic):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    settings.LOGIN_ADDRESS_LIMIT = 100
    make_user("nurse", Role.COORDINATOR, clinic)
    client = Client()
    for _ in range(3):
        _try(client, "nurse")
    assert _try(client, "nurse", PASSWORD).status_code == 429
