"""Whatever is typed into a form, the answer is a page with messages, never a 500, and nothing half-saved."""

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orthoreg.registry.models import Exam, Procedure

junk = st.one_of(st.text(max_size=30), st.integers(-10**12, 10**12).map(str), st.floats(allow_nan=True).map(str),
                 st.sampled_from(["", "1e309", "NaN", "-0", "2024-02-30", "0000-00-00", "9" * 40, "<script>"]))


@pytest.mark.parametrize("route", ["registry:procedure_create", "registry:exam_create", "registry:grade_create"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.dictionaries(st.sampled_from(
    ["date", "kind", "dorsiflexion_deg", "plantarflexion_deg", "harvest_volume_ml", "total_nucleated_cells",
     "bmi", "spins", "g_force", "dextrose_percent", "system", "dorsiflexion", "radiograph", "grade", "loss",
     "other_side_dorsiflexion", "category", "nsaid_use", "cpt_code"]), junk, max_size=8))
def test_forms_never_fail_on_junk(clinician_client, episode, route, values):
    before = (Procedure.objects.count(), Exam.objects.count(), episode.grades.count())
    response = clinician_client.post(reverse(route, args=[episode.pk]), values)
    assert response.status_code in (200, 302, 400)
    if response.status_code == 400:
        assert before == (Procedure.objects.count(), Exam.objects.count(), episode.grades.count())


@pytest.mark.parametrize("query", ["page=abc", "page=-1", "page=99999", "condition=nope", "q=" + "x" * 500,
                                   "clinic=<b>"])
def test_patient_list_never_fails(clinician_client, patient, query):
    assert clinician_client.get(f"{reverse('registry:patient_list')}?{query}").status_code == 200


def test_nul_characters_are_refused_with_a_message(clinician_client, episode):
    response = clinician_client.get(f"{reverse('registry:patient_list')}?q=a%00b")
    assert response.status_code == 400 and b"NUL" in response.content
    response = clinician_client.post(reverse("registry:note_create", args=[episode.pk]),
                                     {"date": "2024-01-01", "text": "bad\x00text"})
    assert response.status_code == 400
    assert not episode.timeline_notes.exists()


def test_static_files_are_served_by_the_app(client, db):
    response = client.get("/static/orthoreg/app.css")
    assert response.status_code == 200
    assert b".card" in b"".join(response.streaming_content)
