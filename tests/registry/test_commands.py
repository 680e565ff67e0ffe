"""orthoreg clinic: a fresh registry gets its clinics and their options from the command line, audited."""

import io

import pytest
from django.core.management import CommandError, call_command

from orthoreg.accounts.models import AuditEvent
from orthoreg.registry.models import Clinic


def run(*args) -> str:
    out = io.StringIO()
    call_command("clinic", *args, stdout=out)
    return out.getvalue()


def test_create_set_and_list(db):
    assert "No clinics yet" in run("list")
    assert "Created clinic riverside" in run("create", "riverside", "--name", "Riverside", "--timezone",
                                             "Europe/Berlin")
    clinic = Clinic.objects.get(code="riverside")
    assert (clinic.timezone, clinic.invitations_require_consent, clinic.public_outcomes) == \
        ("Europe/Berlin", True, False)
    run("set", "riverside", "--public-outcomes", "--no-invitations-require-consent", "--name", "Riverside Ortho")
    clinic.refresh_from_db()
    assert (clinic.name, clinic.invitations_require_consent, clinic.public_outcomes) == \
        ("Riverside Ortho", False, True)
    assert "Riverside Ortho · Europe/Berlin · invitations without consent · public outcomes on" in run("list")
    actions = list(AuditEvent.objects.filter(object_type__icontains="clinic").values_list("action", flat=True))
    assert actions.count(AuditEvent.Action.CREATE) == 1 and actions.count(AuditEvent.Action.UPDATE) == 1


@pytest.mark.parametrize("args, message", [
    (("set", "nope", "--name", "x"), "No clinic with code 'nope'"),
    (("set", "a"), "Nothing to change"),
    (("create", "a", "--name", "again"), "exists already"),
    (("set", "a", "--timezone", "Mars/Base"), "not a time zone"),
    (("create", "b c", "--name", "B"), "code"),
])
def test_bad_input_says_what_and_changes_nothing(db, args, message):
    run("create", "a", "--name", "A")
    before = list(Clinic.objects.values())
    with pytest.raises(CommandError, match=message) as error:
        run(*args)
    assert error.value.returncode == 2
    assert list(Clinic.objects.values()) == before
