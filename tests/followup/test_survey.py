"""The patient's link: one instrument per page, per-item messages, save and continue, single use, expiry."""

import datetime as dt
import re

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from orthoreg.followup import services
from orthoreg.followup.models import Assessment, Invitation
from orthoreg.instruments.models import Response
from orthoreg.registry import services as registry


@pytest.fixture
def link(episode, settings):
    settings.BASE_URL = "http://testserver"
    registry.procedure_record(episode=episode, date=timezone.localdate() - dt.timedelta(days=90), kind="prp",
                              is_index=True)
    services.worker_pass()
    token = re.search(r"/s/([A-Za-z0-9_-]+)/", mail.outbox[0].body).group(1)
    return f"/s/{token}/"


def answer_all(client, link):
    """Answer each page in turn with its first option / lowest number."""
    from orthoreg.instruments.definitions import format_number, get_definition

    for _ in range(10):
        page = client.get(link)
        if page.status_code == 302:
            return page
        assessment = Assessment.objects.get(pk=page.context["assessment"].pk)
        data = {"assessment": assessment.pk, "action": "submit"}
        for item in get_definition(assessment.instrument).items:
            value = item.scored_options[0].value if item.type == "choice" else (item.minimum + item.maximum) / 2
            data[f"item_{item.number}"] = format_number(value)
        response = client.post(link, data)
        assert response.status_code == 302, response.content.decode()[:3000]
        if response["Location"] == reverse("survey_done"):
            return response
    raise AssertionError("never finished")


def test_the_whole_flow(link, episode):
    client = Client()
    page = client.get(link)
    assert page.status_code == 200
    body = page.content.decode()
    assert "Questionnaire 1 of 3" in body and "Save and continue later" in body
    done = answer_all(client, link)
    assert done["Location"] == reverse("survey_done")
    assert Response.objects.filter(episode=episode, time_point="3m", source="patient_link").count() == 3
    assert Invitation.objects.get().status == "completed"
    # the link is single-use
    used = client.get(link)
    assert used.status_code == 410 and "already been answered" in used.content.decode()


def test_per_item_message_and_nothing_stored(link):
    client = Client()
    page = client.get(link)
    assessment = page.context["assessment"]
    response = client.post(link, {"assessment": assessment.pk, "action": "submit", "item_1": "11"})
    assert response.status_code == 400
    assert "out of range" in response.content.decode()
    assert not Response.objects.exists()
    empty = client.post(link, {"assessment": assessment.pk, "action": "submit"})
    assert "Please answer this question" in empty.content.decode()


def test_save_and_continue_later(link):
    client = Client()
    assessment = client.get(link).context["assessment"]
    saved = client.post(link, {"assessment": assessment.pk, "action": "save", "item_1": "4"})
    assert "continue later" in saved.content.decode()
    assert Assessment.objects.get(pk=assessment.pk).draft["item_1"] == "4"
    again = Client().get(link)
    assert 'value="4"' in again.content.decode()


def test_unknown_and_expired_links_reveal_nothing(link, patient):
    unknown = Client().get("/s/" + "x" * 43 + "/")
    assert unknown.status_code == 404
    assert patient.family_name not in unknown.content.decode()
    invitation = Invitation.objects.get()
    with time_machine.travel(invitation.expires_at + dt.timedelta(seconds=1)):
        expired = Client().get(link)
    assert expired.status_code == 410 and "expired" in expired.content.decode()
    assert patient.family_name not in expired.content.decode()


def test_revoked_link(link):
    services.invitation_revoke(invitation=Invitation.objects.get(), reason="wrong email")
    assert Client().get(link).status_code == 410


def test_a_link_reaches_only_its_own_form(link, other_patient, clinician_client):
    client = Client()
    client.get(link)
    for url in ["/patients/", f"/patients/{other_patient.pk}/", "/followup/", "/instruments/"]:
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url


def test_staff_enter_a_phone_answer(clinician_client, link, episode):
    assessment = Assessment.objects.filter(episode=episode, time_point="3m", instrument="nprs").get()
    url = reverse("followup:assessment_enter", args=[assessment.pk])
    bad = clinician_client.post(url, {"meta-completed_on": "2999-01-01", "item_1": "5"})
    assert bad.status_code == 400 and "future" in bad.content.decode()
    ok = clinician_client.post(url, {"meta-completed_on": timezone.localdate().isoformat(), "item_1": "5"})
    assert ok.status_code == 302, ok.content.decode()
    response = Response.objects.get(episode=episode, instrument="nprs", time_point="3m")
    assert response.source == "staff" and response.score == 5


def test_worklist_tabs_and_actions(clinician_client, link, episode, other_client):
    for tab in ("due", "overdue", "missed", "completed", "failed"):
        assert clinician_client.get(reverse("followup:worklist"), {"tab": tab}).status_code == 200
    due = clinician_client.get(reverse("followup:worklist"), {"tab": "due"}).content.decode()
    assert "MRN-001" in due
    assert "MRN-001" not in other_client.get(reverse("followup:worklist"), {"tab": "due"}).content.decode()
    missed = clinician_client.get(reverse("followup:worklist"), {"tab": "missed"}).content.decode()
    assert "baseline" in missed  # the baseline window closed unanswered
    assessment = Assessment.objects.filter(episode=episode, time_point="3m", instrument="sane").get()
    assert other_client.post(reverse("followup:assessment_cancel", args=[assessment.pk]),
                             {"reason": "x"}).status_code == 404
    clinician_client.post(reverse("followup:assessment_cancel", args=[assessment.pk]), {"reason": "patient asked"})
    assessment.refresh_from_db()
    assert assessment.status == "cancelled" and assessment.cancelled_reason == "patient asked"
    invitation = Invitation.objects.get()
    clinician_client.post(reverse("followup:invitation_resend", args=[invitation.pk]))
    assert services.worker_pass().reminders == 1


def test_cancel_a_whole_time_point_from_the_worklist(clinician_client, link, episode):
    first = Assessment.objects.filter(episode=episode, time_point="3m").order_by("id").first()
    response = clinician_client.post(reverse("followup:assessment_cancel", args=[first.pk]),
                                     {"reason": "patient declined", "scope": "time_point"})
    assert response.status_code == 302
    rows = Assessment.objects.filter(episode=episode, time_point="3m")
    assert {a.status for a in rows} == {"cancelled"}
    assert Invitation.objects.get().status == "cancelled"  # nothing left to answer: no more reminders
    assert Client().get(link).status_code == 410
