"""The hot queries' plans on PostgreSQL (issue 17 item 7): with enough rows and fresh statistics (ANALYZE), each
reads an index, never the whole of a large table. The queries are the ones the code runs (the selectors' own
querysets), explained as they are."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from orthoreg.accounts import access
from orthoreg.analytics import cohorts, facts
from orthoreg.analytics.filters import CohortFilter
from orthoreg.analytics.models import EpisodeFact, StaleEpisode
from orthoreg.followup import selectors as followup_selectors
from orthoreg.followup.models import WorkerRun
from orthoreg.registry import selectors
from orthoreg.registry.models import Episode, Patient

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="EXPLAIN plans are PostgreSQL's")

PATIENTS = 20_000


@pytest.fixture
def large(clinic, other_clinic):
    """20,000 patients in two clinics with an episode each, 20,000 queued episodes, 5,000 worker passes."""
    Patient.objects.bulk_create([
        Patient(clinic=clinic if i % 2 else other_clinic, mrn=f"M{i:06d}", given_name=f"Given{i % 997}",
                family_name=f"Family{i:06d}", birth_date=dt.date(1970, 1, 1) + dt.timedelta(days=i % 9000))
        for i in range(PATIENTS)], batch_size=5000)
    Episode.objects.bulk_create([Episode(patient_id=pk, condition="oa_primary", body_site="knee", side="left")
                                 for pk in Patient.objects.values_list("pk", flat=True)], batch_size=5000)
    now = timezone.now()
    StaleEpisode.objects.bulk_create([StaleEpisode(episode_id=pk, queued_at=now - dt.timedelta(seconds=i))
                                      for i, pk in enumerate(Episode.objects.values_list("pk", flat=True))],
                                     batch_size=5000)
    WorkerRun.objects.bulk_create([WorkerRun(worker="w", started_at=now - dt.timedelta(minutes=i), interval=60)
                                   for i in range(5000)], batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return clinic


@pytest.fixture
def many_patients(clinic, other_clinic):
    """80,000 patients in two clinics: below some tens of thousands a whole-table scan is the cheaper plan for
    a search (PostgreSQL rightly prefers it at 20,000); above, the trigram indexes."""
    Patient.objects.bulk_create([
        Patient(clinic=clinic if i % 2 else other_clinic, mrn=f"M{i:06d}", given_name=f"Given{i % 997}",
                family_name=f"Family{i:06d}", birth_date=dt.date(1970, 1, 1))
        for i in range(80_000)], batch_size=10_000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE registry_patient")
    return clinic


def plan(queryset) -> str:
    return queryset.explain()


def uses_index(text: str, table: str) -> bool:
    return "Seq Scan on " + table not in text and ("Index" in text)


def test_patient_list_reads_the_order_index(large, clinician):
    qs = selectors.patient_search(user=clinician)[:25]
    text = plan(qs)
    assert uses_index(text, "registry_patient"), text
    assert "patient_list_order" in text or "registry_pat_clinic_" in text, text


def test_name_search_reads_the_trigram_index(many_patients, clinician):
    text = plan(selectors.patient_search(user=clinician, q="ily01234")[:25])
    # An index, never a scan of every patient: the trigram index, or the clinic's index when the planner's
    # statistics say one clinic's rows are few enough (both seen on PostgreSQL 15 with the same data).
    assert uses_index(text, "registry_patient") and "Seq Scan on registry_patient" not in text, text


def test_mrn_search_reads_the_trigram_index(many_patients, clinician):
    text = plan(selectors.patient_search(user=clinician, q="M01234")[:25])
    assert uses_index(text, "registry_patient") and "Seq Scan on registry_patient" not in text, text


def test_patient_page_episodes_by_patient(large):
    patient = Patient.objects.order_by("pk")[PATIENTS // 2]
    text = plan(patient.episodes.all())
    assert uses_index(text, "registry_episode"), text


def test_freshness_reads_the_oldest_queued_change_off_an_index(large):
    text = plan(StaleEpisode.objects.order_by("queued_at").values_list("queued_at", flat=True)[:1])
    assert "analytics_stale_queued" in text, text
    assert facts.freshness().pending == PATIENTS


def test_worker_running_reads_recent_passes_off_an_index(large):
    since = timezone.now() - dt.timedelta(days=1)
    text = plan(WorkerRun.objects.filter(interval__isnull=False, started_at__gte=since).order_by("-started_at")[:20])
    assert "followup_workerrun_started" in text, text
    assert followup_selectors.worker_running()


def test_scope_of_a_clinic(large, clinician):
    text = plan(access.scope(Patient.objects.all(), clinician, access.CONTACT).order_by("family_name")[:25])
    assert "Seq Scan on registry_patient" not in text, text


def test_a_cohort_of_one_treatment_reads_its_episode_facts_off_the_treatment_index(large, other_clinic):
    """A comparison of two treatments: each cohort's episode facts are found by (clinic, index procedure), not by
    reading every episode of the clinics (20,000 facts, a tenth of them one treatment)."""
    kinds = ["bmc"] + ["hyaluronic_acid"] * 3 + ["prp"] * 3 + ["prolotherapy"] * 3
    EpisodeFact.objects.bulk_create([
        EpisodeFact(episode_id=pk, patient_id=patient, clinic_id=clinic, condition="oa_primary", body_site="knee",
                    side="left", consent=True, index_date=dt.date(2025, 1, 1), index_kind=kinds[i % len(kinds)],
                    contact=dt.date(2025, 6, 1), sex="female", age=60, grade=2)
        for i, (pk, patient, clinic) in enumerate(Episode.objects.values_list("pk", "patient_id",
                                                                              "patient__clinic_id"))],
        batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE analytics_episode")
    members = cohorts.cohort_episodes(CohortFilter(procedures=("bmc",)), clinic_ids={large.pk, other_clinic.pk})
    text = plan(members)
    assert "analytics_episode_kind" in text and "Seq Scan on analytics_episode" not in text, text


def test_fhir_import_finds_a_chunks_patients_by_clinic_and_mrn(many_patients, other_clinic):
    """An import's chunk of Patient lines asks for their medical record numbers in one query, by clinic and MRN:
    the unique index (clinic, MRN) answers it. By MRN alone (as it was) no index could: every patient was read
    per chunk of 500 lines. With 80,000 patients PostgreSQL reads the index for a small chunk; for a chunk of 500
    it finds reading the table about as cheap (cost 2,632 against 2,624), and with more patients the index."""
    from orthoreg.interop.fhir.imports import patients_with_mrns

    clinics = [many_patients.pk, other_clinic.pk]
    small = [f"M{i:06d}" for i in range(0, 80_000, 1600)]
    text = plan(patients_with_mrns(clinics, small))
    assert "Index Scan using patient_mrn_unique_per_clinic" in text and "Seq Scan" not in text, text
    chunk = [f"M{i:06d}" for i in range(0, 80_000, 160)]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # may the index answer a whole chunk, both columns?
    text = plan(patients_with_mrns(clinics, chunk))
    assert "patient_mrn_unique_per_clinic" in text and "Seq Scan" not in text, text
    assert "Cond: ((clinic_id = ANY" in text and "AND ((mrn)::text = ANY" in text, text
    assert patients_with_mrns(clinics, chunk).count() == 500
