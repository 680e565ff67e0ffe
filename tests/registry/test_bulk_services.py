"""The bulk twins of the registry's writes (records_store, procedures_store) and of follow-up scheduling
(episodes_schedule): the same records, audit entries and schedules as the single services, in a number of
queries that does not grow with the number of records."""

import datetime as dt

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orthoreg.accounts.models import AuditEvent
from orthoreg.followup import services as followup
from orthoreg.followup.models import Assessment
from orthoreg.registry import coding
from orthoreg.registry import services as registry
from orthoreg.registry.models import Episode, Patient, Procedure

SURGERY = coding.SURGICAL_KINDS[0]


def _patients(clinic, n, start=0):
    return [registry.record_build(Patient, clinic=clinic, mrn=f"B-{start + i}", given_name="Ann", family_name="Lee",
                                  birth_date=dt.date(1970, 1, 1)) for i in range(n)]


def _episodes(clinic, n):
    patients = registry.records_store(_patients(clinic, n, start=100))
    return registry.records_store([registry.record_build(Episode, patient=p, body_site="first_mtp", side="right",
                                                         condition="hallux_rigidus") for p in patients])


def _plan(episode):
    return sorted(Assessment.objects.filter(episode=episode).values_list(
        "time_point", "instrument", "status", "due_date", "window_end", "cancelled_reason"))


@pytest.mark.django_db
def test_records_store_writes_each_record_as_record_create_does(clinic):
    stored = registry.records_store(_patients(clinic, 3))
    single = registry.patient_create(clinic=clinic, mrn="S-1", given_name="Ann", family_name="Lee",
                                     birth_date=dt.date(1970, 1, 1))
    for patient in [*stored, single]:
        assert patient.pk is not None and patient.initials == "AL"  # derived as save() derives it
        assert patient.history.count() == 1
        assert AuditEvent.objects.filter(action="create", object_type="patient", object_id=str(patient.pk),
                                         patient=patient).count() == 1


@pytest.mark.django_db
def test_records_store_queries_do_not_grow_with_the_records(clinic):
    def queries(n, start):
        builds = _patients(clinic, n, start)
        with CaptureQueriesContext(connection) as ctx:
            registry.records_store(builds)
        return len(ctx.captured_queries)

    assert queries(2, 0) == queries(20, 10)


@time_machine.travel(dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC), tick=False)
@pytest.mark.django_db
def test_procedures_stored_together_schedule_as_one_by_one(clinic):
    together, one_by_one = _episodes(clinic, 2)
    procedures = [dict(date=dt.date(2024, 2, 1), kind="bmc", is_index=True),
                  dict(date=dt.date(2024, 3, 1), kind="prp", is_index=False),
                  dict(date=dt.date(2024, 9, 1), kind=SURGERY, is_index=False)]  # a conversion
    registry.procedures_store([registry.procedure_build(episode=together, **f) for f in procedures])
    for fields in procedures:
        registry.procedure_record(episode=one_by_one, **fields)
    plan = _plan(together)
    assert plan == _plan(one_by_one)
    assert {row[2] for row in plan} == {Assessment.Status.SCHEDULED, Assessment.Status.CANCELLED}  # conversion
    def history(episode):  # the assessments' history rows (the cancellations), as saving each would write
        return sorted(Assessment.history.filter(episode=episode).values_list("time_point", "instrument", "status"))

    assert history(together) == history(one_by_one) != []
    assert Procedure.objects.filter(episode=together).count() == 3
    assert AuditEvent.objects.filter(object_type="procedure", action="create").count() == 6


@time_machine.travel(dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC), tick=False)
@pytest.mark.django_db
def test_episodes_schedule_queries_do_not_grow_with_the_episodes(clinic):
    episodes = _episodes(clinic, 8)
    # index procedures stored without the event (records_store), so nothing is scheduled yet
    registry.records_store([registry.procedure_build(episode=e, date=dt.date(2024, 6, 1), kind="bmc", is_index=True)
                            for e in episodes])

    def queries(some):
        with CaptureQueriesContext(connection) as ctx:
            results = followup.episodes_schedule(episodes=some)
        assert all(r.created for r in results)
        # (the new assessments are inserted together, in as many statements as the database's batch size needs)
        return sum(1 for q in ctx.captured_queries if not q["sql"].startswith("INSERT"))

    assert queries(episodes[:2]) == queries(episodes[2:])
    assert _plan(episodes[0]) == _plan(episodes[7])
    assert followup.episode_schedule(episode=episodes[0]).created == 0  # idempotent


def test_record_build_refuses_what_the_constraints_refuse_by_clean(clinic, index_procedure):
    """record_build leaves Django's re-check of Patient's and Procedure's constraints out (their clean() enforces
    them): a used MRN and a second index procedure are still refused, with clean()'s messages; a new patient is
    checked in one query (its MRN is free), not three."""
    from django.core.exceptions import ValidationError

    Patient.objects.create(clinic=clinic, mrn="DUP-1", given_name="Ann", family_name="Lee",
                           birth_date=dt.date(1970, 1, 1))
    with pytest.raises(ValidationError) as err:
        registry.record_build(Patient, clinic=clinic, mrn="DUP-1", given_name="Bo", family_name="Ray",
                              birth_date=dt.date(1971, 1, 1))
    assert err.value.message_dict["mrn"] == ["MRN DUP-1 is already used by another patient of this clinic."]
    with CaptureQueriesContext(connection) as ctx:
        registry.record_build(Patient, clinic=clinic, mrn="NEW-1", given_name="Bo", family_name="Ray",
                              birth_date=dt.date(1971, 1, 1))
    assert len(ctx.captured_queries) == 1  # its MRN is free (its clinic is the record given: not looked up)
    with pytest.raises(ValidationError) as err:
        registry.procedure_build(episode=index_procedure.episode, date=index_procedure.date, kind="bmc",
                                 is_index=True, target_structure="joint", image_guidance="ultrasound")
    assert "already has an index procedure" in err.value.message_dict["is_index"][0]


def test_record_build_looks_up_a_foreign_key_given_as_an_id_only(clinic):
    """A related record given as a record read from the database is not looked up again; one given as an id is, and
    one that is not there is refused with Django's message, the other fields still checked."""
    from django.core.exceptions import ValidationError

    (patient,) = registry.records_store(_patients(clinic, 1))
    with CaptureQueriesContext(connection) as ctx:
        registry.record_build(Episode, patient=patient, body_site="first_mtp", side="right", condition="hallux_rigidus")
    assert not [q for q in ctx.captured_queries if "registry_patient" in q["sql"]]
    with CaptureQueriesContext(connection) as ctx:
        registry.record_build(Episode, patient_id=patient.pk, body_site="first_mtp", side="right",
                              condition="hallux_rigidus")
    assert [q for q in ctx.captured_queries if "registry_patient" in q["sql"]]
    with pytest.raises(ValidationError) as err:
        registry.record_build(Episode, patient_id=patient.pk + 1000, body_site="first_mtp", side="nowhere",
                              condition="hallux_rigidus")
    assert err.value.message_dict == {"patient": [f"patient instance with id {patient.pk + 1000} is not a valid choice."],
                                      "side": ["Value 'nowhere' is not a valid choice."]}
    unsaved = Patient(clinic=clinic, mrn="NOT-SAVED", given_name="Ann", family_name="Lee",
                      birth_date=dt.date(1970, 1, 1))
    with pytest.raises(ValidationError) as err:  # an attached record never stored is no proof of anything
        registry.record_build(Episode, patient=unsaved, body_site="first_mtp", side="right",
                              condition="hallux_rigidus")
    assert err.value.message_dict == {"patient": ["This field cannot be null."]}
