"""Helper run as a separate process by the load tests: `python -m tests.ops.load_world seed N` creates N patients
whose 6-month questionnaires are due and prints one survey link token per patient (JSON); `... count` prints the
stored responses. The database is the one ORTHOREG_* names."""

import datetime as dt
import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orthoreg.settings")

import django

django.setup()

from django.db.models import Count  # noqa: E402
from django.utils import timezone  # noqa: E402

from orthoreg.followup import services  # noqa: E402
from orthoreg.followup.models import Assessment, Invitation  # noqa: E402
from orthoreg.followup.scheduling import install_default_protocols  # noqa: E402
from orthoreg.instruments.models import Response  # noqa: E402
from orthoreg.registry import services as registry  # noqa: E402
from orthoreg.registry.models import Clinic, Episode, Patient  # noqa: E402


def seed(n: int) -> list[str]:
    install_default_protocols()
    clinic = Clinic.objects.create(code="load", name="Load Clinic")
    index_day = timezone.localdate() - dt.timedelta(days=183)
    for i in range(n):
        patient = Patient.objects.create(clinic=clinic, mrn=f"L{i}", given_name="P", family_name=f"N{i}",
                                         birth_date=dt.date(1970, 1, 1), email=f"p{i}@example.org",
                                         consent_registry=True, consent_date=dt.date(2024, 1, 1), consent_version="1")
        episode = Episode.objects.create(patient=patient, body_site="knee", side="left", condition="oa_primary")
        registry.procedure_record(episode=episode, date=index_day, kind="prp", is_index=True)
    services.invitations_plan()
    return [services.token_issue(invitation=i) for i in Invitation.objects.order_by("pk")]


def count() -> dict:
    per_answer = (Response.objects.values("episode_id", "time_point", "instrument").annotate(n=Count("pk"))
                  .order_by("-n"))
    return {"responses": Response.objects.count(), "most_per_questionnaire": per_answer[0]["n"] if per_answer else 0,
            "answered_assessments": Assessment.objects.filter(response__isnull=False).count()}


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    if command == "seed":
        print(json.dumps(seed(int(rest[0]))))
    elif command == "count":
        print(json.dumps(count()))
