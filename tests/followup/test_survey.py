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
    from orthoreg.instruments.definitions import get_definition
    from orthoreg.instruments.types import format_number

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
    assert "Choose one number from 0 to 10." in response.content.decode()  # plain words, not "out of range"
    assert not Response.objects.exists()
    empty = client.post(link, {"assessment": assessment.pk, "action": "submit"})
    body = empty.content.decode()
    assert "Please answer this question" in body
    # a screen reader hears which answer is wrong and why: the inputs point at their message
    assert 'id="item_1-error"' in body
    assert body.count('aria-describedby="item_1-error"') >= 1 and 'aria-invalid="true"' in body


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


def test_a_tampered_scale_value_gets_one_message(link):
    client = Client()
    page = client.get(link)
    assessment = page.context["assessment"]
    assert assessment.instrument == "nprs" and 'class="scale"' in page.content.decode()
    for value in ("11", "-1", "abc"):
        response = client.post(link, {"assessment": assessment.pk, "action": "submit", "item_1": value})
        assert response.status_code == 400
        assert len(response.context["form"].errors["item_1"]) == 1, response.context["form"].errors
    assert not Response.objects.exists()


def test_a_response_entered_from_the_patient_page_completes_its_assessment(clinician_client, link, episode,
                                                                          patient):
    """'Enter a response' (instruments) marks the scheduled assessment answered; when the time point is done, its
    invitation closes and no reminder follows."""
    from orthoreg.instruments.definitions import get_definition
    from orthoreg.instruments.types import format_number

    invitation = Invitation.objects.get()
    for code in ("nprs", "sane", "global-improvement"):
        data = {"instrument": code, "episode": episode.pk, "time_point": "3m",
                "completed_on": timezone.localdate().isoformat()}
        for item in get_definition(code).items:
            value = item.scored_options[0].value if item.type == "choice" else item.minimum
            data[f"item_{item.number}"] = format_number(value)
        url = reverse("instruments:response_new", args=[patient.pk]) + f"?instrument={code}"
        saved = clinician_client.post(url, data)
        assert saved.status_code == 302, saved.content.decode()[:2000]
        assessment = Assessment.objects.get(episode=episode, time_point="3m", instrument=code)
        response = Response.objects.get(episode=episode, time_point="3m", instrument=code)
        assert assessment.status == "completed" and assessment.response_id == response.pk
        invitation.refresh_from_db()
        assert invitation.status == ("completed" if code == "global-improvement" else "sent")
    with time_machine.travel(timezone.now() + dt.timedelta(days=10)):
        assert services.worker_pass().reminders == 0
    assert Client().get(link).status_code == 410


def test_a_response_without_a_matching_assessment_changes_nothing(link, episode, patient):
    from orthoreg.instruments.services import response_record

    response_record(patient=patient, episode=episode, instrument="nprs", answers=[4], time_point="1m")
    response_record(patient=patient, episode=None, instrument="nprs", answers=[4], time_point="3m")
    assert not Assessment.objects.filter(episode=episode, status="completed").exists()
    assert Invitation.objects.get().status == "sent"


def test_worklist_rows_resend_and_revoke_their_invitation(clinician_client, link, episode, other_client):
    invitation = Invitation.objects.get()
    due = Assessment.objects.filter(episode=episode, time_point="3m").first().due_date
    tab = "due" if due >= timezone.localdate() else "overdue"  # 90 days is about three months
    page = clinician_client.get(reverse("followup:worklist"), {"tab": tab})
    html = page.content.decode()
    resend = reverse("followup:invitation_resend", args=[invitation.pk])
    revoke = reverse("followup:invitation_revoke", args=[invitation.pk])
    assert f'action="{resend}"' in html and f'action="{revoke}"' in html
    assert 'style="' not in html and "onclick" not in html and "<script>" not in html
    # the resend from the row sends a reminder at the next pass
    back = reverse("followup:worklist") + f"?tab={tab}"
    assert clinician_client.post(resend, {"back": back})["Location"] == back
    assert services.worker_pass().reminders == 1
    # revoking needs a reason, is refused to another clinic, and stops the link
    assert other_client.post(revoke, {"reason": "x"}).status_code == 404
    clinician_client.post(revoke, {"reason": ""})
    assert Invitation.objects.get().status == "sent"
    clinician_client.post(revoke, {"reason": "patient asked by phone", "back": back})
    invitation.refresh_from_db()
    assert invitation.status == "cancelled" and invitation.cancelled_reason == "patient asked by phone"
    assert not invitation.tokens.filter(revoked=False).exists()
    assert Client().get(link).status_code == 410
    # a revoked invitation shows no more actions, and revoking again says why not
    html = clinician_client.get(reverse("followup:worklist"), {"tab": tab}).content.decode()
    assert "MRN-001" in html and f'action="{revoke}"' not in html and f'action="{resend}"' not in html
    again = clinician_client.post(revoke, {"reason": "again"}, follow=True)
    assert "nothing to revoke" in again.content.decode()


def test_linking_imported_responses_closes_the_answered_invitation(link, episode, patient):
    from orthoreg.instruments.services import response_build

    rows = [response_build(patient=patient, episode=episode, instrument=code, answers=answers, time_point="3m")
            for code, answers in (("nprs", [3]), ("sane", [70]), ("global-improvement", [1, 40]))]
    Response.objects.bulk_create(rows)  # an import: no signal
    assert services.link_responses(episode_ids=[episode.pk]) == 3
    assert Invitation.objects.get().status == "completed"


@pytest.mark.parametrize("back, expected", [
    ("/patients/?q=Fox", "/patients/?q=Fox"),
    ("//evil.example/phish", "/followup/"),
    ("https://evil.example/", "/followup/"),
    ("", "/followup/"),
])
def test_worklist_actions_go_back_only_within_the_site(clinician_client, link, episode, back, expected):
    assessment = Assessment.objects.filter(episode=episode, time_point="3m").first()
    response = clinician_client.post(reverse("followup:assessment_cancel", args=[assessment.pk]),
                                     {"reason": "moved away", "back": back})
    assert response.status_code == 302 and response["Location"] == expected
