"""The synthetic registry: the same content for a seed on every database and batch size, written in bulk (COPY on
PostgreSQL) with the analytics facts built batch by batch equal to a rebuild."""

import datetime as dt
import hashlib
import json

import pytest
from django.core.management import call_command

from orthoreg.analytics import facts
from orthoreg.analytics.models import EpisodeFact, StaleEpisode
from orthoreg.followup.models import Assessment
from orthoreg.instruments.models import Response
from orthoreg.registry.models import AdverseEvent, Clinic, Episode, Exam, Grade, Patient, Procedure
from orthoreg.site.synth import Generator
from tests.analytics.test_facts import assert_facts_match_a_rebuild

TODAY = dt.date(2026, 6, 1)
# The digest of what seed 5 writes for 40 patients as of TODAY (content_digest): the same on SQLite and
# PostgreSQL. It changes only when the generator's distributions or the instruments' scoring change.
SEED_5_DIGEST = "233e40bb28011f03ab9e01586c424eff73243525cf556a59f403976e1c753008"


def content_digest() -> str:
    """Everything the generator wrote but ids and the moment it ran, in a stable order."""

    def rows(model, key: str, exclude=("id", "created_at", "updated_at")):
        names = [f.attname for f in model._meta.concrete_fields if f.attname not in exclude
                 and not f.attname.endswith("_id")]
        return [[plain(v) for v in row] for row in model.objects.order_by(key, "pk").values_list(key, *names)]

    def plain(value) -> str:  # (PostgreSQL's jsonb keeps an object's keys in an order of its own)
        return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else str(value)

    content = {
        "patients": rows(Patient, "mrn"),
        "episodes": rows(Episode, "patient__mrn"),
        "grades": rows(Grade, "episode__patient__mrn"),
        "exams": rows(Exam, "episode__patient__mrn"),
        "procedures": rows(Procedure, "episode__patient__mrn"),
        "adverse": rows(AdverseEvent, "procedure__episode__patient__mrn"),
        "responses": rows(Response, "patient__mrn"),
        "assessments": rows(Assessment, "patient__mrn"),
        "answered": sorted(Assessment.objects.filter(response__isnull=False)
                           .values_list("patient__mrn", "time_point", "instrument", "response__instrument")),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def test_synth_writes_the_same_content_for_a_seed_on_every_database_and_batch_size(db):
    clinic = Clinic.objects.create(code="s", name="S")
    stats = Generator(clinics=[clinic], seed=5, today=TODAY).run(40, batch_size=40)
    digest = content_digest()
    assert (stats.patients, Patient.objects.count(), Response.objects.count()) == (40, 40, stats.responses)
    for model in (Response, Assessment, AdverseEvent, Procedure, Grade, Exam, Episode, Patient):
        model.objects.all().delete()
    Generator(clinics=[clinic], seed=5, today=TODAY).run(40, batch_size=7)
    assert content_digest() == digest
    assert digest == SEED_5_DIGEST, digest


def test_facts_built_batch_by_batch_equal_a_rebuild(db):
    clinic, other = Clinic.objects.create(code="s", name="S"), Clinic.objects.create(code="t", name="T")
    Generator(clinics=[clinic, other], seed=8, today=TODAY, build_facts=True).run(50, batch_size=20)
    assert not StaleEpisode.objects.exists() and EpisodeFact.objects.count() == 50
    assert_facts_match_a_rebuild()  # the clinic counts: recounted in one pass (a load larger than the registry)
    Generator(clinics=[clinic], seed=9, today=TODAY, mrn_prefix="MORE", build_facts=True).run(20, batch_size=8)
    assert EpisodeFact.objects.count() == 70
    assert_facts_match_a_rebuild()  # counted batch by batch (a load smaller than the registry)


def test_the_command_leaves_the_facts_current(db, capsys):
    call_command("synth", "--patients", "12", "--batch", "5", "--no-progress")
    assert "Created 12 patients" in capsys.readouterr().out
    assert facts.pending() == 0 and EpisodeFact.objects.count() == 12


@pytest.mark.parametrize("value", ["0", "-1"])
def test_the_command_refuses_no_writers(db, value):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--writers"):
        call_command("synth", "--patients", "3", "--writers", value, "--no-progress")


def test_nothing_is_answered_later_than_now(db):
    """Responses of today's follow-ups were once dated later today (a random hour): records the registry itself
    refuses as in the future (an export of them could not be imported again)."""
    from django.utils import timezone

    clinic = Clinic.objects.create(code="s", name="S")
    generator = Generator(clinics=[clinic], seed=11)
    started = generator.now  # (the moment the generator started)
    generator.run(60)
    today = timezone.localdate()
    assert Response.objects.filter(completed_at__date__gte=today - dt.timedelta(days=1)).exists()  # (some, lately)
    assert not Response.objects.filter(completed_at__gt=started).exists()
    assert not Assessment.objects.filter(completed_at__gt=started).exists()
