"""The coordinator's worklist as a page: who to call and how, why a row has no email out, instrument names, what
"due" counts, actions in a menu, and no host name or process id (issue 11.13)."""

import datetime as dt
import os
import re
import socket

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from orthoreg.followup import services
from orthoreg.followup.models import Protocol, TimePoint
from orthoreg.registry import services as registry
from orthoreg.registry.models import Episode, Patient


def enrol(clinic, mrn: str, given: str, *, email="p@example.org", consent=True, phone="") -> Episode:
    patient = Patient.objects.create(clinic=clinic, mrn=mrn, given_name=given, family_name="Test", phone=phone,
                                     birth_date=dt.date(1980, 1, 1), email=email, consent_registry=consent,
                                     consent_date=dt.date(2024, 1, 1) if consent else None,
                                     consent_version="v1" if consent else "")
    episode = Episode.objects.create(patient=patient, body_site="first_mtp", side="right", condition="hallux_rigidus")
    registry.procedure_record(episode=episode, date=timezone.localdate() - dt.timedelta(days=90), kind="bmc",
                              is_index=True)
    return episode


@pytest.fixture
def rows(clinic, settings):
    settings.BASE_URL = "http://testserver"
    enrol(clinic, "A-1", "Ann", email="")
    enrol(clinic, "B-1", "Bea", consent=False)
    # a clinic protocol asking only a licensed instrument whose text is not installed
    protocol = Protocol.objects.create(name="Licensed", clinic=clinic, condition="hallux_rigidus",
                                       body_site="first_mtp")
    TimePoint.objects.create(protocol=protocol, label="3m", offset_months=3, window_before_days=14,
                             window_after_days=30, instruments=["moxfq"])
    enrol(clinic, "C-1", "Cyd")
    protocol.delete()
    unsubscribed = enrol(clinic, "D-1", "Dot")
    enrol(clinic, "E-1", "Eve", phone="+1 555 0100")
    services.worker_pass(worker=f"{socket.gethostname()}:{os.getpid()}")  # `orthoreg worker`'s default name
    token = services.token_issue(invitation=unsubscribed.invitations.get())
    Client().post(f"/s/{token}/unsubscribe/")
    return clinic


def page_html(client) -> str:
    url = reverse("followup:worklist")
    return "".join(client.get(url, {"tab": tab}).content.decode() for tab in ("due", "overdue"))


def row_of(html: str, name: str) -> str:
    found = [row for row in re.split(r"<tr[ >]", html) if name in row]
    assert len(found) == 1, name
    return re.sub(r"\s+", " ", found[0])


def test_each_row_says_why_no_email_is_out(rows, coordinator):
    html = page_html(_login(coordinator))
    assert "No email: No email address" in row_of(html, "Ann Test")
    assert "No email: No registry consent recorded" in row_of(html, "Bea Test")
    assert "No email: Licensed questionnaire text not installed" in row_of(html, "Cyd Test")
    dot = row_of(html, "Dot Test")
    assert "Unsubscribed" in dot and "No email: Unsubscribed from emails" in dot
    eve = row_of(html, "Eve Test")
    assert "No email" not in eve and "Email sent" in eve


def test_the_coordinator_gets_a_name_and_a_phone_to_call(rows, coordinator):
    eve = row_of(page_html(_login(coordinator)), "Eve Test")
    assert '<a href="tel:+15550100">+1 555 0100</a>' in eve and "E-1" in eve
    assert "no phone" in row_of(page_html(_login(coordinator)), "Ann Test")


def test_instrument_names_not_codes_and_due_counts_questionnaires(rows, coordinator):
    html = page_html(_login(coordinator))
    eve = row_of(html, "Eve Test")
    assert ">Pain</a>" in eve and ">SANE</a>" in eve and ">Improvement</a>" in eve
    assert ">nprs<" not in html and ">global-improvement<" not in html
    assert ">MOXFQ</a>" in row_of(html, "Cyd Test")
    assert "Questionnaires due" in html and "Counts questionnaires, not patients" in html


def test_row_actions_sit_in_a_menu(rows, coordinator):
    eve = row_of(page_html(_login(coordinator)), "Eve Test")
    assert eve.count('<details class="row-menu">') == 1
    menu = eve[eve.index('<details class="row-menu">'):eve.index("</details>")]
    assert "Resend the email" in menu and "Revoke the link" in menu and "Cancel this time point" in menu


def test_no_host_name_or_process_id_on_the_page(rows, coordinator):
    html = page_html(_login(coordinator))
    host = socket.gethostname()
    # (random tokens left out first: a 64-character CSRF token holds a short host name such as "vm" now and then)
    html = re.sub(r"[A-Za-z0-9]{32,}", "", html)
    assert f"{host}:" not in html and not re.search(rf"(?<![\w-]){re.escape(host)}(?![\w-])", html)
    assert not re.search(rf":{os.getpid()}\b", html)


def _login(user):
    from tests.conftest import login

    return login(user)
