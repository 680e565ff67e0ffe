"""Staff entry and instrument pages through HTTP: login, clinic isolation, per-item messages, success."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from orthoreg.accounts.models import AuditEvent
from orthoreg.instruments.models import Response
from orthoreg.instruments.services import response_record

pytestmark = pytest.mark.django_db


def new_url(patient, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return reverse("instruments:response_new", args=[patient.pk]) + (f"?{query}" if query else "")


def post_data(**answers):
    data = {"instrument": "faam-sports", "episode": "", "time_point": "6m",
            "completed_on": timezone.localdate().isoformat()}
    data.update(answers)
    return data


@pytest.mark.parametrize("name,args", [
    ("instrument_list", []), ("instrument_detail", ["faos"]), ("response_new", [1]), ("response_detail", [1]),
    ("episode_responses", [1]), ("episode_chart", [1, "nprs", "svg"]),
])
def test_login_required(client, name, args):
    response = client.get(reverse(f"instruments:{name}", args=args))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_instrument_list_shows_licence_status(clinician_client):
    response = clinician_client.get(reverse("instruments:instrument_list"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "licensed text not installed" in html and "Mapi Research Trust" in html and "text shipped" in html
    assert 'style="' not in html


def test_instrument_detail(clinician_client):
    html = clinician_client.get(reverse("instruments:instrument_detail", args=["faam-adl"])).content.decode()
    assert "at least 19 of its 21 items answered" in html and "Item 21 (licensed text not installed)" in html
    assert clinician_client.get(reverse("instruments:instrument_detail", args=["nope"])).status_code == 404


def test_pick_page_then_form(clinician_client, patient, episode):
    response = clinician_client.get(new_url(patient, episode=episode.pk))
    assert response.status_code == 200 and b"Continue" in response.content
    response = clinician_client.get(new_url(patient, episode=episode.pk, instrument="faam-sports"))
    html = response.content.decode()
    assert response.status_code == 200 and 'name="item_8"' in html and "Not applicable" in html
    assert f'<option value="{episode.pk}" selected>' in html
    assert "licensed text of FAAM Sports is not installed" in html


def test_unknown_instrument_goes_back_to_the_pick(clinician_client, patient):
    response = clinician_client.get(new_url(patient, instrument="nope"))
    assert response.status_code == 200 and b"Unknown instrument" in response.content


def test_other_clinics_patient_is_404(other_client, patient, episode):
    assert other_client.get(new_url(patient)).status_code == 404
    assert other_client.post(new_url(patient), post_data(**{f"item_{n}": "4" for n in range(1, 9)})).status_code == 404
    assert other_client.get(reverse("instruments:episode_responses", args=[episode.pk])).status_code == 404
    assert other_client.get(reverse("instruments:episode_chart", args=[episode.pk, "nprs", "svg"])).status_code == 404
    r = response_record(patient=patient, episode=episode, instrument="nprs", answers=[5])
    assert other_client.get(r.get_absolute_url()).status_code == 404
    assert not Response.objects.filter(entered_by__username="otherdoc").exists()


def test_coordinator_has_no_clinical_access(coordinator, patient):
    from tests.conftest import login

    assert login(coordinator).get(new_url(patient)).status_code == 404


def test_per_item_messages_and_nothing_saved(clinician_client, patient):
    data = post_data(item_1="4", item_2="abc", item_3="9", item_4="4", item_5="4", item_6="4", item_7="4",
                     item_8="na")
    data["completed_on"] = (timezone.localdate() + dt.timedelta(days=3)).isoformat()
    response = clinician_client.post(new_url(patient), data)
    assert response.status_code == 400
    form = response.context["form"]
    assert form.errors["item_3"] == ["Select a valid choice. 9 is not one of the available choices."]
    assert "item_2" in form.errors and form.errors["completed_on"] == ["This date is in the future."]
    html = response.content.decode()
    assert "Nothing was saved" in html and 'class="field wide has-error"' in html
    assert not Response.objects.exists()


def test_a_fraction_on_the_integer_nprs_is_refused_in_plain_words(clinician_client, patient):
    response = clinician_client.post(new_url(patient), post_data(instrument="nprs", item_1="7.5"))
    assert response.status_code == 400
    assert response.context["form"].errors["item_1"] == ["Enter a whole number from 0 to 10: 7.5 has a fraction."]
    assert not Response.objects.exists()


def test_service_item_errors_land_on_their_fields(clinician_client, patient):
    data = post_data(instrument="nprs", item_1="12")
    response = clinician_client.post(new_url(patient), data)
    assert response.status_code == 400
    assert response.context["form"].errors["item_1"][0].startswith("Item 1: 12 is out of range")
    assert not Response.objects.exists()


def test_successful_entry(clinician_client, clinician, patient, episode):
    answers = {"item_1": "4", "item_2": "4", "item_3": "3", "item_4": "3", "item_5": "2", "item_6": "2",
               "item_7": "4", "item_8": "4"}
    response = clinician_client.post(new_url(patient), post_data(episode=str(episode.pk), **answers))
    r = Response.objects.get()
    assert response.status_code == 302 and response["Location"] == r.get_absolute_url()
    assert (r.score, r.episode, r.time_point, r.source, r.entered_by) == (81.25, episode, "6m", "staff", clinician)
    assert r.completed_at.date() == timezone.localdate()
    assert AuditEvent.objects.filter(object_type="response", object_id=str(r.pk), user=clinician).exists()
    detail = clinician_client.get(r.get_absolute_url())
    assert detail.status_code == 200 and b"81.25" in detail.content and detail["Cache-Control"] == "private, no-store"


def test_not_answered_and_not_applicable_are_stored_as_null(clinician_client, patient):
    answers = {f"item_{n}": "4" for n in range(1, 9)}
    answers["item_7"] = answers["item_8"] = "na"
    clinician_client.post(new_url(patient), post_data(**answers))
    r = Response.objects.get()
    assert r.answers[-2:] == [None, None] and not r.valid and "6 of 8" in r.invalid_reason


def test_episode_of_another_patient_cannot_be_chosen(clinician_client, patient, clinic):
    from orthoreg.registry.models import Episode, Patient

    stranger = Patient.objects.create(clinic=clinic, mrn="X-9", given_name="A", family_name="B",
                                      birth_date=dt.date(1990, 1, 1))
    foreign = Episode.objects.create(patient=stranger, body_site="knee", side="left", condition="oa_primary")
    response = clinician_client.post(new_url(patient), post_data(instrument="nprs", item_1="3",
                                                                 episode=str(foreign.pk)))
    assert response.status_code == 400 and "episode" in response.context["form"].errors
    assert not Response.objects.exists()


def test_episode_responses_and_chart(clinician_client, patient, episode):
    for tp, days, pain in (("baseline", 200, 7), ("3m", 100, 4), ("6m", 10, 3)):
        response_record(patient=patient, episode=episode, instrument="nprs", answers=[pain], time_point=tp,
                        completed_at=timezone.now() - dt.timedelta(days=days))
    page = clinician_client.get(reverse("instruments:episode_responses", args=[episode.pk]))
    html = page.content.decode()
    assert page.status_code == 200 and "Pain 7 → 3, 57% better" in html and 'style="' not in html
    chart = clinician_client.get(reverse("instruments:episode_chart", args=[episode.pk, "nprs", "svg"]))
    assert chart.status_code == 200 and chart["Content-Type"] == "image/svg+xml"
    assert chart.content.lstrip().startswith(b"<?xml") and b"<svg" in chart.content
    assert "script-src" not in chart["Content-Security-Policy"] and chart["Cache-Control"] == "private, no-store"
    png = clinician_client.get(reverse("instruments:episode_chart", args=[episode.pk, "nprs", "png"]))
    assert png["Content-Type"] == "image/png" and png.content.startswith(b"\x89PNG")
    for code, fmt in (("nprs", "gif"), ("nope", "svg")):
        url = reverse("instruments:episode_chart", args=[episode.pk, code, fmt])
        assert clinician_client.get(url).status_code == 404


def test_response_new_rejects_other_methods(clinician_client, patient):
    assert clinician_client.put(new_url(patient)).status_code == 405
