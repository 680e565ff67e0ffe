"""The survey page in the patient's words: the joint named plainly, the 0-10 scale's ends labelled, messages that
say what to enter (issue 11.14)."""

import pytest
from django.test import Client

from orthoreg.followup.models import Assessment
from orthoreg.instruments.models import Response
from tests.followup.test_survey_repeat import answers_for, link  # noqa: F401 - the fixture

JARGON = ("out of range", "expected", "null", "Item 1", "Please check this answer", "MTP")


def test_the_page_names_the_joint_and_labels_the_scale_ends(link):
    body = Client().get(link).content.decode()
    assert "These questions are about <strong>your right big toe</strong>" in body and "MTP" not in body
    assert "0 = No pain" in body and "10 = Worst pain imaginable" in body


@pytest.mark.parametrize("value", ["150", "-1", "2.5", "abc"])
def test_a_wrong_number_gets_a_plain_message(link, value):
    client = Client()
    client.post(link, answers_for(client.get(link).context["assessment"]))  # the pain page; now SANE, 0 to 100
    sane = client.get(link).context["assessment"]
    assert sane.instrument == "sane"
    response = client.post(link, {"assessment": sane.pk, "action": "submit", "item_1": value})
    assert response.status_code == 400
    assert response.context["form"].errors["item_1"] == ["Enter a whole number from 0 to 100."]
    assert not any(word in response.content.decode() for word in JARGON)
    assert Response.objects.count() == 1


def test_a_rule_tying_two_answers_is_shown_without_its_item_prefix(link, episode):
    client = Client()
    for _ in range(2):
        client.post(link, answers_for(client.get(link).context["assessment"]))
    improvement = Assessment.objects.get(episode=episode, time_point="3m", instrument="global-improvement")
    response = client.post(link, {"assessment": improvement.pk, "action": "submit", "item_1": "0", "item_2": "40"})
    assert response.status_code == 400
    message = response.context["form"].errors["item_2"][0]
    assert message == "40% given, but question 1 says about the same: leave it empty"
    assert "<legend>1. Compared with" in response.content.decode()
