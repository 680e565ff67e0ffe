"""A survey POST answers the questionnaire it names, once: a repeated or parallel POST stores nothing the patient
did not see (issue 12.1)."""

import datetime as dt
import re
import threading

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from orthoreg.followup import services
from orthoreg.followup.models import Assessment, Invitation
from orthoreg.instruments.definitions import get_definition
from orthoreg.instruments.models import Response
from orthoreg.instruments.types import format_number
from orthoreg.registry import services as registry


def _link(episode, settings) -> str:
    settings.BASE_URL = "http://testserver"
    registry.procedure_record(episode=episode, date=timezone.localdate() - dt.timedelta(days=90), kind="prp",
                              is_index=True)
    services.worker_pass()
    return "/s/" + re.search(r"/s/([A-Za-z0-9_-]+)/", mail.outbox[0].body).group(1) + "/"


@pytest.fixture
def link(episode, settings):
    return _link(episode, settings)


def answers_for(assessment: Assessment, n: int = 0) -> dict:
    """A valid answer to every item of the assessment's page (varied by n), as the form posts it."""
    data = {"assessment": str(assessment.pk), "action": "submit"}
    for item in get_definition(assessment.instrument).items:
        if item.type == "choice":
            value = item.scored_options[0].value
        else:
            value = item.minimum + n % int(item.maximum - item.minimum + 1)
        data[f"item_{item.number}"] = format_number(value)
    return data


def test_a_double_submit_stores_the_page_once_and_shows_the_next_page(link, episode):
    client = Client()
    page = client.get(link)
    nprs = page.context["assessment"]
    assert nprs.instrument == "nprs"
    first = client.post(link, answers_for(nprs))
    second = client.post(link, answers_for(nprs))  # the same page, submitted again
    assert first.status_code == second.status_code == 302
    assert second["Location"] == link  # where the patient is: the next page
    assert list(Response.objects.values_list("instrument", flat=True)) == ["nprs"]
    assert Assessment.objects.filter(episode=episode, time_point="3m", status="scheduled").count() == 2
    following = client.get(link)
    assert following.context["assessment"].instrument == "sane"
    assert "Questionnaire 2 of 3" in following.content.decode()
    assert "already saved" in following.content.decode()  # said once, on the page the patient lands on
    assert "already saved" not in client.get(link).content.decode()


def test_a_draft_saved_for_an_answered_page_goes_nowhere(link, episode):
    client = Client()
    nprs = client.get(link).context["assessment"]
    client.post(link, answers_for(nprs))
    late = client.post(link, {"assessment": nprs.pk, "action": "save", "item_1": "7"})
    assert late.status_code == 302 and late["Location"] == link
    assert not Assessment.objects.filter(episode=episode).exclude(draft={}).exists()


@pytest.mark.parametrize("named", ["", "abc", "999999", "other-episode"])
def test_a_post_naming_no_pending_page_of_this_link_stores_nothing(link, episode, patient, named):
    if named == "other-episode":
        other = registry.episode_create(patient=patient, body_site="knee", side="left", condition="oa_primary")
        registry.procedure_record(episode=other, date=timezone.localdate() - dt.timedelta(days=90), kind="prp",
                                  is_index=True)
        named = str(Assessment.objects.filter(episode=other, instrument="nprs", time_point="3m").get().pk)
    data = answers_for(Assessment.objects.get(episode=episode, time_point="3m", instrument="nprs"))
    data["assessment"] = named
    response = Client().post(link, data)
    assert response.status_code == 302 and response["Location"] == link
    assert not Response.objects.exists()


def test_submitting_the_last_page_twice_ends_on_the_thank_you_page(link, episode):
    client = Client()
    for _ in range(3):
        assessment = client.get(link).context["assessment"]
        last = answers_for(assessment)
        done = client.post(link, last)
    assert done["Location"] == reverse("survey_done")
    again = client.post(link, last)
    assert again.status_code == 302 and again["Location"] == reverse("survey_done")
    assert Response.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_parallel_posts_store_only_pages_that_were_shown_and_answered(clinic, episode, settings, default_protocols):
    """20 patients' browsers at once (threads, each its own database connection) over three links of one
    invitation: first all POST the first page; then each walks through the pages it is shown. Every stored
    response is an answer some request posted for that very questionnaire, and each is stored once."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set ORTHOREG_DATABASE_URL=postgresql://...): real concurrent writers")
    first_link = _link(episode, settings)
    invitation = Invitation.objects.get()
    links = [first_link] + [f"/s/{services.token_issue(invitation=invitation)}/" for _ in range(2)]
    nprs = Assessment.objects.get(episode=episode, time_point="3m", instrument="nprs")
    posted: set[tuple[int, tuple]] = set()
    statuses: list[int] = []
    lock = threading.Lock()
    n = 20
    start = threading.Barrier(n)

    def post(client, url, data):
        with lock:
            posted.add((int(data["assessment"]), tuple(v for k, v in sorted(data.items()) if k.startswith("item_"))))
        response = client.post(url, data)
        with lock:
            statuses.append(response.status_code)
        return response

    def patient(k: int):
        try:
            client, url = Client(), links[k % len(links)]
            start.wait(timeout=60)
            post(client, url, answers_for(nprs, k))  # everyone submits the first page at once
            start.wait(timeout=60)
            for _ in range(6):  # then each answers what it is shown, until the link is used up
                page = client.get(url)
                if page.status_code != 200:
                    break
                post(client, url, answers_for(page.context["assessment"], k))
        finally:
            connection.close()

    threads = [threading.Thread(target=patient, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    stored = list(Response.objects.filter(episode=episode))
    assert sorted(r.instrument for r in stored) == ["global-improvement", "nprs", "sane"]
    for response in stored:
        assessment = Assessment.objects.get(response=response)
        shown = tuple(format_number(v) for v in response.answers if v is not None)
        assert any(pk == assessment.pk and tuple(v for v in values if v != "") == shown
                   for pk, values in posted), (response.instrument, response.answers)
    assert Invitation.objects.get().status == "completed"
    assert set(statuses) <= {302}, statuses  # no 500, no error page: a repeat goes to where the patient is
