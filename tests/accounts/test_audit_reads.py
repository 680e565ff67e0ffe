"""Reads of patient data that were not audited (issue 12, finding 9): score charts, patient searches and the
API's cohort report. Each answered request leaves exactly one entry."""

import datetime as dt

import pytest
from django.urls import reverse

from orthoreg.accounts.models import AuditEvent
from tests.analytics.builders import Builder
from tests.conftest import login


def _get(client, url, params=None):
    before = set(AuditEvent.objects.values_list("id", flat=True))
    response = client.get(url, params or {})
    return response, list(AuditEvent.objects.exclude(id__in=before))


def test_a_score_chart_is_one_audited_read(clinician_client, clinician, index_procedure):
    from orthoreg.instruments.services import response_record

    episode = index_procedure.episode
    response_record(patient=episode.patient, episode=episode, instrument="nprs", answers=[6])
    response, entries = _get(clinician_client, reverse("instruments:episode_chart", args=[episode.pk, "nprs", "svg"]))
    assert response.status_code == 200 and response["Content-Type"].startswith("image/svg+xml")
    [entry] = entries
    assert (entry.action, entry.patient_id, entry.user_id) == ("view", episode.patient.pk, clinician.pk)


def test_a_patient_search_is_one_audited_read_naming_what_was_shown(clinician_client, patient, other_patient):
    response, entries = _get(clinician_client, reverse("registry:patient_list"), {"q": "fox"})
    assert response.status_code == 200 and b"Fox" in response.content
    [entry] = entries
    assert entry.action == "view" and entry.patient_id is None
    assert f"#{patient.pk}" in entry.detail and "1 found" in entry.detail and "q='fox'" in entry.detail
    assert f"#{other_patient.pk}" not in entry.detail  # another clinic's patient was neither found nor logged
    # the plain list (a search without terms) and the live-search partial are reads too
    for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
        before = AuditEvent.objects.count()
        assert clinician_client.get(reverse("registry:patient_list"), **headers).status_code == 200
        assert AuditEvent.objects.count() == before + 1


@pytest.fixture
def ten_treated(clinic):
    """Five men and five women: a researcher sees no figure from a cohort under 5 (analytics.disclosure)."""
    b = Builder(clinic)
    for n in range(10):
        b.episode(index_date=dt.date(2025, 1, 1), sex="female" if n % 2 else "male")


@pytest.mark.parametrize("url, params", [
    ("/api/v1/cohorts/report", {"condition": "hallux_rigidus"}),
    ("/api/v1/cohorts/compare", {"sex": "male", "vs_sex": "female"}),
])
@pytest.mark.parametrize("who", ["clinician", "researcher"])
def test_the_api_cohort_report_is_one_audited_read(request, ten_treated, url, params, who):
    user = request.getfixturevalue(who)
    response, entries = _get(login(user), url, params)
    assert response.status_code == 200, response.content
    [entry] = entries
    assert (entry.action, entry.user_id, entry.patient_id) == ("view", user.pk, None)
    assert entry.detail.startswith("API cohort")
    assert all(f"{name}={value}" in entry.detail for name, value in params.items()), entry.detail
    # a refused request is not a read
    _, refused = _get(login(user), url, {"grade_min": "3", "grade_max": "1", **params})
    assert refused == []
