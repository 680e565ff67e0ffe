"""The demo: DF's whole story, a realistic cohort, loaded once; the synthetic generator."""

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models import Count, F
from django.urls import reverse
from django.utils import timezone

from orthoreg.accounts.models import Membership
from orthoreg.followup.models import Assessment
from orthoreg.instruments.models import Response
from orthoreg.registry import selectors
from orthoreg.registry.models import AdverseEvent, Clinic, Episode, Patient, Procedure
from orthoreg.site import demo
from orthoreg.site.synth import Generator
from tests.conftest import login


@pytest.fixture
def small_demo(db, monkeypatch, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    monkeypatch.setattr(demo, "COHORT_PATIENTS", 30)
    monkeypatch.setenv("ORTHOREG_DEMO_PASSWORD", "demo-pass-123")
    call_command("demo", "--no-serve")


def test_demo_is_loaded_once(small_demo, capsys):
    counts = (Patient.objects.count(), Procedure.objects.count(), Response.objects.count(),
              get_user_model().objects.count())
    call_command("demo", "--no-serve")
    assert "nothing changed" in capsys.readouterr().out
    assert counts == (Patient.objects.count(), Procedure.objects.count(), Response.objects.count(),
                      get_user_model().objects.count())


def test_demo_users_and_roles(small_demo):
    roles = {(m.user.username, m.role, m.clinic.code) for m in Membership.objects.select_related("user", "clinic")}
    assert ("clinician", "clinician", "demo-east") in roles
    assert not any(u == "clinician" and c == "demo-west" for u, _, c in roles)
    for name in ("admin", "coordinator", "researcher", "auditor"):
        assert any(u == name for u, _, _ in roles)
    assert get_user_model().objects.get(username="clinician").check_password("demo-pass-123")


def test_df_story(small_demo):
    df = Patient.objects.get(mrn=demo.DF_MRN)
    today = timezone.localdate()
    assert df.initials == "DF" and df.age == 40 and df.sex == "female"
    toe = df.episodes.get(condition="hallux_rigidus")
    assert (toe.body_site, toe.side, toe.icd10_code) == ("first_mtp", "right", "M20.21")
    assert df.episodes.filter(condition="low_back_pain").exists()
    kinds = list(toe.procedures.order_by("date", "id").values_list("kind", flat=True))
    assert kinds == ["cheilectomy", "bmc", "prolotherapy", "prolotherapy", "prolotherapy"]
    index = toe.procedures.get(is_index=True)
    assert index.kind == "bmc" and 150 < (today - index.date).days < 240
    assert toe.procedures.filter(kind="prolotherapy", target_structure="mcl").count() == 3
    assert selectors.conversion_for(toe) is None  # the cheilectomy came before: no conversion
    assert toe.grades.get().grade == 3
    assert toe.timeline_notes.filter(text__icontains="obstacle race").exists()
    nprs = dict(Response.objects.filter(episode=toe, instrument="nprs").values_list("time_point", "score"))
    assert nprs == {"baseline": 7, "1m": 5, "3m": 4, "6m": 3}


def test_clinician_finds_df_and_her_whole_story(small_demo):
    client = login(get_user_model().objects.get(username="clinician"))
    results = client.get(reverse("registry:patient_list"), {"q": "DF"}).content.decode()
    assert "Fairley, Dana" in results
    df = Patient.objects.get(mrn=demo.DF_MRN)
    page = client.get(reverse("registry:patient_detail", args=[df.pk])).content.decode()
    for text in ("Hallux rigidus, right first MTP joint", "Cheilectomy", "Bone marrow concentrate injection",
                 "Medial collateral ligament", "obstacle race", "Low back pain", "grade 3", "fusion"):
        assert text in page, text


def test_cohort_is_realistic(small_demo):
    assert Clinic.objects.filter(code__startswith="demo-").count() == 2
    assert set(Episode.objects.values_list("condition", flat=True)) >= {"hallux_rigidus", "oa_primary",
                                                                        "low_back_pain"}
    assert Patient.objects.values("clinic").annotate(n=Count("id")).count() == 2


def test_synth_mix_and_rates_on_a_larger_cohort(db):
    clinic = Clinic.objects.create(code="s", name="S")
    stats = Generator(clinics=[clinic], seed=7).run(400, batch_size=150)
    assert stats.patients == Patient.objects.count() == 400
    lost = stats.lost_to_follow_up / stats.patients
    assert 0.15 <= lost <= 0.25
    assert stats.conversions > 0 and AdverseEvent.objects.filter(serious=True).count() >= 0
    treated = Episode.objects.filter(procedures__is_index=True).count()
    assert treated == 400
    converted = selectors.episodes_with_outcome_dates().filter(conversion_date__isnull=False).count()
    assert 0 < converted <= stats.conversions
    completed = Assessment.objects.filter(status="completed").count()
    assert completed and Response.objects.filter(valid=True).count() >= completed
    # every completed assessment points at a response of its own instrument and time point
    mismatched = Assessment.objects.filter(status="completed").exclude(response__instrument=F("instrument"))
    assert not mismatched.exists()


def test_synth_is_deterministic(db):
    clinic = Clinic.objects.create(code="s", name="S")
    Generator(clinics=[clinic], seed=3, today=dt.date(2026, 1, 1), mrn_prefix="A").run(30)
    first = list(Patient.objects.order_by("mrn").values_list("family_name", "birth_date"))
    Patient.objects.all().delete()
    Generator(clinics=[clinic], seed=3, today=dt.date(2026, 1, 1), mrn_prefix="A").run(30, batch_size=7)
    assert first == list(Patient.objects.order_by("mrn").values_list("family_name", "birth_date"))


def test_synth_command_continues_numbering(db, capsys):
    call_command("synth", "--patients", "5", "--no-progress")
    call_command("synth", "--patients", "5", "--no-progress")
    assert Patient.objects.values("mrn").distinct().count() == 10
    assert "Created 5 patients" in capsys.readouterr().out


def _table_counts() -> dict[str, int]:
    from django.apps import apps

    return {m._meta.db_table: m._default_manager.count() for m in apps.get_models(include_auto_created=True)}


def test_a_second_demo_run_issues_and_audits_a_new_admin_code_and_changes_nothing_else(small_demo, capsys):
    from orthoreg.accounts.models import AuditEvent, EnrolmentCode

    capsys.readouterr()
    before = _table_counts()
    code_before = EnrolmentCode.objects.get(user__username="admin").code_hash
    call_command("demo", "--no-serve")
    out = capsys.readouterr().out
    after = _table_counts()
    audit = AuditEvent._meta.db_table
    assert after[audit] == before[audit] + 1
    assert AuditEvent.objects.order_by("-id").first().detail == "two-factor enrolment code issued"
    assert {t: n for t, n in after.items() if t != audit} == {t: n for t, n in before.items() if t != audit}
    assert "one-time enrolment code is" in out
    assert EnrolmentCode.objects.get(user__username="admin").code_hash != code_before


def test_no_serve_does_not_say_ready_at_an_address(small_demo, capsys):
    call_command("demo", "--no-serve")
    out = capsys.readouterr().out
    assert "http://" not in out and "ready at" not in out
