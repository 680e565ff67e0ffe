"""Fixtures of the API tests: bearer tokens of each role, and one record of every kind in each clinic."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from django.test import Client
from django.utils import timezone

from orthoreg.api import tokens
from orthoreg.followup.models import Assessment
from orthoreg.imaging import services as imaging_services
from orthoreg.instruments import services as instrument_services
from orthoreg.registry import services
from orthoreg.registry.models import Episode
from tests.imaging.conftest import as_upload, dicom_bytes, small_phantom  # noqa: F401  (fixtures)


class TokenClient(Client):
    """A test client that sends `Authorization: Bearer <token>` (and JSON bodies) on every request."""

    def __init__(self, token: str | None, **kwargs):
        super().__init__(**kwargs)
        self.token = token

    def _base_environ(self, **request):
        environ = super()._base_environ(**request)
        if self.token is not None:
            environ.setdefault("HTTP_AUTHORIZATION", f"Bearer {self.token}")
        return environ

    def post_json(self, path, data, **headers):
        return self.post(path, data, content_type="application/json", headers=headers)

    def patch_json(self, path, data, **headers):
        return self.patch(path, data, content_type="application/json", headers=headers)


def token_for(user, days=None) -> str:
    return tokens.token_create(user=user, name="test", days=days)[1]


def api_client(user, days=None) -> TokenClient:
    return TokenClient(token_for(user, days) if user is not None else None)


@dataclass
class Records:
    patient: object
    episode: object
    grade: object
    procedure: object
    exam: object
    adverse_event: object
    assessment: object
    response: object
    image: object
    measurement: object


def make_records(patient, clinician, dicom) -> Records:
    today = timezone.localdate()
    episode = Episode.objects.filter(patient=patient).first() or services.episode_create(
        patient=patient, body_site="first_mtp", side="right", condition="hallux_rigidus")
    grade = services.grade_record(episode=episode, system="coughlin_shurnas", date=today - dt.timedelta(days=210),
                                  inputs={}, grade=2)
    procedure = services.procedure_record(episode=episode, date=today - dt.timedelta(days=200), kind="bmc",
                                          is_index=True, target_structure="joint", image_guidance="ultrasound")
    exam = services.exam_record(episode=episode, date=today - dt.timedelta(days=200), dorsiflexion_deg=30)
    event = services.adverse_event_record(procedure=procedure, date=today - dt.timedelta(days=199),
                                          severity="mild", description="Soreness at the harvest site")
    assessment = Assessment.objects.filter(episode=episode).order_by("due_date", "id").first()
    response = instrument_services.response_record(patient=patient, episode=episode, instrument="nprs",
                                                   answers=[6], time_point="baseline")
    image = imaging_services.image_upload(episode=episode, file=as_upload(dicom), view="ap_wb", side="right",
                                          date=today - dt.timedelta(days=10), user=clinician)
    measurement = imaging_services.measurement_run(image=image, line=[60, 110, 240, 110], user=clinician)
    return Records(patient, episode, grade, procedure, exam, event, assessment, response, image, measurement)


@pytest.fixture
def ours(patient, clinician, dicom_bytes):
    return make_records(patient, clinician, dicom_bytes)


@pytest.fixture
def theirs(other_patient, other_clinician, dicom_bytes):
    return make_records(other_patient, other_clinician, dicom_bytes)
