"""Every email names the joint in plain words and carries an unsubscribe link (and List-Unsubscribe headers) that
stops further invitations for that episode: recorded, audited, shown on the worklist (issue 11.14)."""

import datetime as dt
import re

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from orthoreg.accounts.models import AuditEvent
from orthoreg.followup import services
from orthoreg.followup.models import Invitation, Unsubscription
from orthoreg.registry import services as registry


@pytest.fixture
def sent(episode, settings):
    settings.BASE_URL = "http://testserver"
    registry.procedure_record(episode=episode, date=timezone.localdate() - dt.timedelta(days=90), kind="prp",
                              is_index=True)
    services.worker_pass()
    return mail.outbox[0]


def test_the_email_names_the_joint_and_says_how_to_stop(sent):
    assert "your right big toe" in sent.subject and "MTP" not in sent.subject
    assert "your right big toe" in sent.body and "MTP" not in sent.body
    assert "reply to this email" not in sent.body.lower()
    token = re.search(r"/s/([A-Za-z0-9_-]+)/", sent.body).group(1)
    unsubscribe = f"http://testserver/s/{token}/unsubscribe/"
    assert unsubscribe in sent.body
    headers = sent.message()
    assert headers["List-Unsubscribe"] == f"<{unsubscribe}>"
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def unsubscribe_path(message) -> str:
    return re.search(r"http://testserver(/s/[A-Za-z0-9_-]+/unsubscribe/)", message.body).group(1)


def test_opening_the_link_asks_and_changes_nothing(sent, episode):
    page = Client().get(unsubscribe_path(sent))
    assert page.status_code == 200
    body = page.content.decode()
    assert "Stop these emails?" in body and "your right big toe" in body
    assert not Unsubscription.objects.exists()
    assert Invitation.objects.get().status == "sent"


def test_one_click_unsubscribe_stops_every_further_email_for_the_episode(sent, episode, patient, clinician_client):
    path = unsubscribe_path(sent)
    # a mail program's one-click POST (RFC 8058): no form, no CSRF token
    client = Client(enforce_csrf_checks=True)
    done = client.post(path, {"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and "no more emails" in done.content.decode()
    record = Unsubscription.objects.get()
    assert record.episode == episode and record.invitation == Invitation.objects.get()
    invitation = Invitation.objects.get()
    assert invitation.status == "cancelled" and invitation.cancelled_reason == "the patient unsubscribed"
    audit = AuditEvent.objects.filter(patient=patient, detail__contains="unsubscribed")
    assert audit.count() == 1
    # a second click changes nothing and is not audited again
    assert client.post(path).status_code == 200
    assert Unsubscription.objects.count() == 1 and audit.count() == 1
    # no reminder, and no invitation at the next time points
    outbox = len(mail.outbox)
    for days in (10, 100, 300, 700):
        with time_machine.travel(timezone.now() + dt.timedelta(days=days)):
            services.worker_pass()
    assert len(mail.outbox) == outbox
    assert Invitation.objects.count() == 1
    # the coordinator sees it on the worklist
    html = clinician_client.get(reverse("followup:worklist"), {"tab": "overdue"}).content.decode() + \
        clinician_client.get(reverse("followup:worklist"), {"tab": "due"}).content.decode()
    assert "Unsubscribed" in html


def test_another_episode_of_the_patient_is_still_invited(sent, patient, episode):
    knee = registry.episode_create(patient=patient, body_site="knee", side="bilateral", condition="oa_primary")
    registry.procedure_record(episode=knee, date=timezone.localdate() - dt.timedelta(days=90), kind="prp",
                              is_index=True)
    Client().post(unsubscribe_path(sent))
    services.worker_pass()
    knee_mail = mail.outbox[-1]
    assert len(mail.outbox) == 2 and "both your knees" in knee_mail.subject


def test_an_unknown_link_unsubscribes_nobody(sent):
    response = Client().post("/s/" + "x" * 43 + "/unsubscribe/")
    assert response.status_code == 404 and not Unsubscription.objects.exists()
