"""Helper run as a separate process by the crash tests: `python -m tests.followup.crash_world seed N` creates N
patients whose 6-month questionnaires are due; `... state` prints the follow-up tables as JSON; `... links T...`
says for each link token whether it opens the questionnaire. The database is the one ORTHOREG_* names."""

import datetime as dt
import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orthoreg.settings")

import django

django.setup()

from django.utils import timezone  # noqa: E402

from orthoreg.followup import services  # noqa: E402
from orthoreg.followup.models import AccessToken, Invitation, SendAttempt  # noqa: E402
from orthoreg.followup.scheduling import install_default_protocols  # noqa: E402
from orthoreg.registry import services as registry  # noqa: E402
from orthoreg.registry.models import Clinic, Episode, Patient  # noqa: E402


def seed(n: int) -> None:
    install_default_protocols()
    clinic = Clinic.objects.create(code="crash", name="Crash Clinic")
    index_day = timezone.localdate() - dt.timedelta(days=183)
    for i in range(n):
        patient = Patient.objects.create(clinic=clinic, mrn=f"K{i}", given_name="P", family_name=f"N{i}",
                                         birth_date=dt.date(1970, 1, 1), email=f"p{i}@example.org",
                                         consent_registry=True, consent_date=dt.date(2024, 1, 1), consent_version="1")
        episode = Episode.objects.create(patient=patient, body_site="knee", side="left", condition="oa_primary")
        registry.procedure_record(episode=episode, date=index_day, kind="prp", is_index=True)


def state() -> dict:
    return {
        "invitations": list(Invitation.objects.order_by("id").values("id", "status", "sends", "claim_id")),
        "attempts": list(SendAttempt.objects.order_by("id").values("invitation_id", "status", "message_id")),
        "tokens": list(AccessToken.objects.order_by("id").values("invitation_id", "revoked")),
    }


def links(tokens: list[str]) -> dict:
    result = {}
    for token in tokens:
        try:
            result[token] = services.invitation_for_token(token).pk
        except services.LinkError as error:
            result[token] = error.kind
    return result


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    if command == "seed":
        seed(int(rest[0]))
    elif command == "state":
        print(json.dumps(state(), default=str))
    elif command == "links":
        print(json.dumps(links(rest)))
