"""Model rules and services: bad input gets a message on the field and nothing is saved."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from orthoreg.accounts.models import AuditEvent
from orthoreg.registry import selectors, services
from orthoreg.registry.models import Episode, Grade, Patient, Procedure

TODAY = timezone.localdate


def errors_of(excinfo) -> dict:
    return excinfo.value.message_dict


def test_patient_create_derives_initials_and_audits(clinic):
    p = services.patient_create(clinic=clinic, mrn="A1", given_name="Dana", family_name="Fairley",
                                birth_date=dt.date(1986, 1, 15))
    assert p.initials == "DF"
    assert AuditEvent.objects.filter(action="create", patient=p).exists()
    assert p.history.count() == 1


def test_duplicate_mrn_in_same_clinic_is_a_field_error(patient, clinic, other_clinic):
    with pytest.raises(ValidationError) as info:
        services.patient_create(clinic=clinic, mrn=patient.mrn, given_name="X", family_name="Y",
                                birth_date=dt.date(1990, 1, 1))
    assert "mrn" in errors_of(info)
    assert Patient.objects.filter(mrn=patient.mrn).count() == 1
    # the same MRN in another clinic is fine
    services.patient_create(clinic=other_clinic, mrn=patient.mrn, given_name="X", family_name="Y",
                            birth_date=dt.date(1990, 1, 1))


@pytest.mark.parametrize(("fields", "field"), [
    ({"status": "deceased"}, "status_date"),
    ({"birth_date": dt.date(2999, 1, 1)}, "birth_date"),
    ({"consent_registry": True, "consent_date": None}, "consent_date"),
])
def test_patient_rules(clinic, fields, field):
    base = dict(clinic=clinic, mrn="B1", given_name="A", family_name="B", birth_date=dt.date(1980, 1, 1))
    with pytest.raises(ValidationError) as info:
        services.patient_create(**{**base, **fields})
    assert field in errors_of(info)
    assert not Patient.objects.filter(mrn="B1").exists()


def test_episode_code_is_derived_from_condition_and_side(patient):
    right = services.episode_create(patient=patient, body_site="first_mtp", side="right", condition="hallux_rigidus")
    left = services.episode_create(patient=patient, body_site="knee", side="left", condition="oa_primary")
    back = services.episode_create(patient=patient, body_site="lumbar_spine", side="na", condition="low_back_pain")
    assert (right.icd10_code, left.icd10_code, back.icd10_code) == ("M20.21", "M17.12", "M54.50")


def test_right_foot_code_on_left_episode_is_refused(patient):
    with pytest.raises(ValidationError) as info:
        services.episode_create(patient=patient, body_site="first_mtp", side="left", condition="hallux_rigidus",
                                icd10_code="M20.21")
    assert "right code" in errors_of(info)["icd10_code"][0]
    assert not Episode.objects.filter(patient=patient).exists()


def test_side_rules(patient):
    with pytest.raises(ValidationError) as info:
        services.episode_create(patient=patient, body_site="knee", side="na", condition="oa_primary")
    assert "side" in errors_of(info)
    with pytest.raises(ValidationError) as info:
        services.episode_create(patient=patient, body_site="knee", side="left", condition="hallux_rigidus")
    assert "body_site" in errors_of(info)


@pytest.mark.parametrize(("day", "message"), [
    (lambda p: p.birth_date - dt.timedelta(days=1), "before the patient's birth"),
    (lambda p: TODAY() + dt.timedelta(days=1), "future"),
])
def test_procedure_dated_before_birth_or_in_future_is_refused(episode, day, message):
    with pytest.raises(ValidationError) as info:
        services.procedure_record(episode=episode, date=day(episode.patient), kind="prp")
    assert message in errors_of(info)["date"][0]
    assert not Procedure.objects.exists()


def test_biologic_fields_belong_to_their_kind(episode):
    with pytest.raises(ValidationError) as info:
        services.procedure_record(episode=episode, date=TODAY(), kind="cheilectomy", total_nucleated_cells=4e8,
                                  dextrose_percent=15)
    assert {"total_nucleated_cells", "dextrose_percent"} <= set(errors_of(info))


def test_ranges_are_validated(episode):
    with pytest.raises(ValidationError) as info:
        services.procedure_record(episode=episode, date=TODAY(), kind="bmc", harvest_volume_ml=5000)
    assert "harvest_volume_ml" in errors_of(info)
    with pytest.raises(ValidationError) as info:
        services.exam_record(episode=episode, date=TODAY(), dorsiflexion_deg=400)
    assert "dorsiflexion_deg" in errors_of(info)


def test_one_index_procedure_per_episode(index_procedure):
    with pytest.raises(ValidationError) as info:
        services.procedure_record(episode=index_procedure.episode, date=TODAY(), kind="prp", is_index=True)
    assert "is_index" in errors_of(info)


def test_category_is_derived_and_checked(episode):
    p = services.procedure_record(episode=episode, date=TODAY(), kind="prolotherapy")
    assert p.category == "injection"
    with pytest.raises(ValidationError) as info:
        services.procedure_record(episode=episode, date=TODAY(), kind="bmc", category="surgery")
    assert "category" in errors_of(info)


def test_conversion_to_surgery_is_derived(index_procedure):
    episode = index_procedure.episode
    assert selectors.conversion_for(episode) is None
    before = services.procedure_record(episode=episode, date=index_procedure.date - dt.timedelta(days=400),
                                       kind="cheilectomy")
    assert selectors.conversion_for(episode) is None  # surgery before the index is history, not a conversion
    fusion = services.procedure_record(episode=episode, date=index_procedure.date + dt.timedelta(days=120),
                                       kind="first_mtp_arthrodesis")
    assert selectors.conversion_for(episode) == fusion
    annotated = selectors.episodes_with_outcome_dates().get(pk=episode.pk)
    assert annotated.index_date == index_procedure.date
    assert annotated.conversion_date == fusion.date
    assert before.pk


def test_after_a_surgical_index_a_later_surgery_is_its_conversion(episode):
    """One rule in Python and in the database: a fusion after an index cheilectomy is the second procedure."""
    services.procedure_record(episode=episode, date=TODAY() - dt.timedelta(days=500), kind="cheilectomy",
                              is_index=True)
    assert selectors.conversion_for(episode) is None
    fusion = services.procedure_record(episode=episode, date=TODAY() - dt.timedelta(days=100),
                                       kind="first_mtp_arthrodesis")
    assert selectors.conversion_for(episode) == fusion
    assert selectors.episodes_with_outcome_dates().get(pk=episode.pk).conversion_date == fusion.date


def test_adverse_event_cannot_precede_its_procedure(index_procedure):
    with pytest.raises(ValidationError) as info:
        services.adverse_event_record(procedure=index_procedure, date=index_procedure.date - dt.timedelta(days=1),
                                      severity="mild", description="x")
    assert "date" in errors_of(info)


def test_grade_record_keeps_suggestion_and_grade_of_record(episode):
    grade = services.grade_record(episode=episode, system="coughlin_shurnas", date=TODAY(),
                                  inputs={"dorsiflexion": 20, "radiograph": 3, "clinical": 2}, grade=2)
    assert (grade.suggested_grade, grade.grade, grade.discordant) == (3, 2, True)
    assert any("differs from the suggestion" in f for f in grade.flags)
    auto = services.grade_record(episode=episode, system="coughlin_shurnas", date=TODAY(), inputs={"radiograph": 1})
    assert auto.grade == 1


def test_grade_input_out_of_range_is_refused(episode):
    with pytest.raises(ValidationError):
        services.grade_record(episode=episode, system="coughlin_shurnas", date=TODAY(), inputs={"dorsiflexion": 400})
    assert not Grade.objects.exists()


def test_coughlin_shurnas_only_for_first_mtp(patient):
    knee = services.episode_create(patient=patient, body_site="knee", side="left", condition="oa_primary")
    with pytest.raises(ValidationError) as info:
        services.grade_record(episode=knee, system="coughlin_shurnas", date=TODAY(), inputs={"radiograph": 1})
    assert "system" in errors_of(info)


def test_patient_timeline_query_count_does_not_grow(django_assert_max_num_queries, index_procedure):
    episode = index_procedure.episode
    for n in range(5):
        services.exam_record(episode=episode, date=TODAY() - dt.timedelta(days=n), dorsiflexion_deg=30)
        services.procedure_record(episode=episode, date=TODAY() - dt.timedelta(days=n), kind="prolotherapy")
    with django_assert_max_num_queries(8):
        timeline = selectors.patient_timeline(episode.patient)
        assert len(timeline[0].entries) == 11
