"""One way to scope by clinic (issue 13 item 3): each clinical model declares where its patient is, and each
request has one access object built by AccessMiddleware."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.urls import reverse

from orthoreg.accounts import access
from orthoreg.accounts.models import AuditEvent, Membership
from orthoreg.registry import services
from orthoreg.registry.models import Clinic, Patient
from tests.conftest import login

CLINICAL = ["registry.Patient", "registry.Episode", "registry.Grade", "registry.Procedure", "registry.Exam",
            "registry.Note", "registry.AdverseEvent", "instruments.Response", "followup.Assessment",
            "followup.Invitation", "followup.Unsubscription", "imaging.ImagingStudy", "imaging.Image",
            "imaging.Annotation", "imaging.Measurement"]


def follow(model, path: str):
    for step in path.split("__") if path else ():
        model = model._meta.get_field(step).related_model or model  # "id": the model itself
    return model


@pytest.mark.parametrize("label", CLINICAL)
def test_each_clinical_model_declares_its_patient_and_reaches_its_clinic(label):
    model = apps.get_model(label)
    assert "patient_path" in model.__dict__, f"{label} declares no patient_path"
    assert follow(model, access.patient_path_for(model)) is Patient
    assert follow(model, access.clinic_path_for(model)) is Clinic


def test_every_declared_path_is_a_real_one():
    declared = [m for m in apps.get_models() if "patient_path" in m.__dict__ or "clinic_path" in m.__dict__]
    assert {m._meta.label for m in declared} >= set(CLINICAL) | {"registry.Clinic"}
    for model in declared:
        assert follow(model, access.clinic_path_for(model)) is Clinic, model


def test_a_model_of_no_clinic_cannot_be_scoped_by_accident():
    with pytest.raises(LookupError):
        access.clinic_path_for(Membership.user.field.related_model)


def test_patient_of_follows_the_declared_path(index_procedure, clinician):
    event = services.adverse_event_record(procedure=index_procedure, actor=clinician, date=index_procedure.date,
                                          description="Swelling", severity="mild")
    patient = index_procedure.episode.patient
    assert access.patient_of(event) == patient
    assert access.patient_of(index_procedure.episode) == patient
    assert access.patient_of(patient) == patient
    assert access.patient_of(patient.clinic) is None and access.patient_of(clinician) is None


def test_scope_needs_no_path_string(patient, other_patient, clinician):
    assert list(access.scope(Patient.objects.all(), clinician, access.CONTACT)) == [patient]
    assert list(access.scope(Clinic.objects.all(), clinician, access.CONTACT)) == [patient.clinic]


def test_one_access_object_reads_the_roles_once(clinician, django_assert_num_queries):
    assert access.current() is None  # outside a request nothing is kept
    with access.request_access() as acc:
        assert access.current() is acc
        with django_assert_num_queries(1):
            for _ in range(3):
                access.clinic_ids(clinician, access.CLINICAL)
                access.roles(clinician)
    assert access.current() is None
    assert not any(key.startswith("_orthoreg") for key in clinician.__dict__)


def test_a_read_is_logged_once_per_patient_and_request(clinician, patient):
    client = login(clinician)
    before = AuditEvent.objects.filter(action=AuditEvent.Action.VIEW, patient=patient).count()
    assert client.get(reverse("registry:patient_detail", args=[patient.pk])).status_code == 200
    assert AuditEvent.objects.filter(action=AuditEvent.Action.VIEW, patient=patient).count() == before + 1
    assert access.current() is None  # the middleware let go of it


def test_touch_outside_a_request_keeps_nothing(clinician, patient):
    before = AuditEvent.objects.count()
    access.touch(clinician, patient)
    assert not any(key.startswith("_orthoreg") for key in clinician.__dict__)
    assert AuditEvent.objects.count() == before


def test_a_clinic_path_through_the_patient_names_the_patient_too():
    class Legacy:  # a model declared the older way: its clinic path only
        clinic_path = "episode__patient__clinic"

    assert access.patient_path_for(Legacy) == "episode__patient"
