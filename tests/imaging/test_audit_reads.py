"""Every read of a patient's radiographs is audited once per request (issue 12, finding 9): the full-resolution
rendition, the thumbnail, the before/after pictures (page download and case-report picture), and nothing twice."""

import pytest
from django.urls import reverse

from orthoreg.accounts.models import AuditEvent


def _new_entries(client, url, patient, **params):
    before = set(AuditEvent.objects.values_list("id", flat=True))
    response = client.get(url, params)
    entries = list(AuditEvent.objects.exclude(id__in=before))
    return response, entries


@pytest.mark.parametrize("name", ["image_rendition", "image_thumbnail"])
def test_an_image_rendition_is_one_audited_read(clinician_client, clinician, image, name):
    patient = image.patient
    response, entries = _new_entries(clinician_client, reverse(f"imaging:{name}", args=[image.pk]), patient)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    b"".join(response.streaming_content)
    [entry] = entries
    assert (entry.action, entry.patient_id, entry.user_id) == ("view", patient.pk, clinician.pk)
    assert str(image.pk) in entry.detail


def test_the_before_after_download_is_one_audited_export(clinician_client, image, png_image):
    episode = image.study.episode
    response, entries = _new_entries(clinician_client, reverse("imaging:compare_png", args=[episode.pk]),
                                     episode.patient, before=image.pk, after=png_image.pk)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    [entry] = entries
    assert (entry.action, entry.patient_id) == ("export", episode.patient.pk)


def test_the_case_report_before_after_picture_is_one_audited_read(clinician_client, image, png_image):
    episode = image.study.episode
    response, entries = _new_entries(clinician_client, reverse("reports:case_images", args=[episode.pk]),
                                     episode.patient)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    [entry] = entries
    assert (entry.action, entry.patient_id) == ("view", episode.patient.pk)


def test_a_refused_image_read_is_not_logged_as_a_read(other_client, image):
    response, entries = _new_entries(other_client, reverse("imaging:image_rendition", args=[image.pk]), None)
    assert response.status_code == 404 and entries == []
