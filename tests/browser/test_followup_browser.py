"""The follow-up loop in a real browser, on a phone and on a desktop: the survey page (plain words, the 0-10 row,
a double click on "Next"), the unsubscribe page, and the coordinator's worklist (issues 11.13, 11.14, 12.1)."""

import datetime as dt
import re

import pytest
from django.core import mail
from django.utils import timezone

from orthoreg.followup import services
from orthoreg.followup.models import Invitation
from orthoreg.instruments.models import Response
from orthoreg.registry import services as registry
from orthoreg.registry.models import Patient
from tests.conftest import browser_login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
SIZES = {"phone": PHONE, "desktop": DESKTOP}


@pytest.fixture
def emailed(episode, live_server, settings):
    settings.BASE_URL = live_server.url
    registry.procedure_record(episode=episode, date=timezone.localdate() - dt.timedelta(days=90), kind="bmc",
                              is_index=True)
    services.worker_pass()
    return mail.outbox[0]


def no_sideways_scroll(page, width: int) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.parametrize("size", SIZES)
def test_survey_page_in_plain_words_with_the_scale_on_one_row(browser, emailed, size):
    context = browser.new_context(**SIZES[size])
    page = context.new_page()
    link = re.search(r"(http://\S+/s/[A-Za-z0-9_-]+/)\n", emailed.body).group(1)
    page.goto(link)
    assert page.locator("text=These questions are about your right big toe").is_visible()
    labels = page.locator(".options.scale label")
    assert labels.count() == 11
    boxes = [labels.nth(i).bounding_box() for i in range(11)]
    assert len({round(b["y"]) for b in boxes}) == 1  # 0 to 10 on one row
    assert all(b["height"] >= 44 and b["width"] >= 24 for b in boxes)  # WCAG 2.2 target size, at least 24 px
    ends = page.locator(".scale-ends span")
    assert ends.nth(0).inner_text() == "0 = No pain" and ends.nth(1).inner_text() == "10 = Worst pain imaginable"
    assert ends.nth(0).is_visible() and ends.nth(1).is_visible()
    assert no_sideways_scroll(page, SIZES[size]["viewport"]["width"])
    screenshot(page, f"survey-nprs-{size}")
    # a double click on "Next" answers the pain page once and shows the next page
    labels.nth(3).click()
    page.locator("button[value=submit]").dblclick()
    page.wait_for_selector("text=Questionnaire 2 of 3")
    assert list(Response.objects.values_list("instrument", flat=True)) == ["nprs"]
    # a wrong number gets a plain message
    page.fill("input[name=item_1]", "150")
    page.locator("button[value=submit]").click()
    page.wait_for_selector("text=Enter a whole number from 0 to 100.")
    screenshot(page, f"survey-message-{size}")
    context.close()


@pytest.mark.parametrize("size", SIZES)
def test_unsubscribe_from_the_email_link(browser, emailed, size):
    from orthoreg.followup.models import Unsubscription

    context = browser.new_context(**SIZES[size])
    page = context.new_page()
    page.goto(re.search(r"(http://\S+/unsubscribe/)", emailed.body).group(1))
    assert page.locator("h1:has-text('Stop these emails?')").is_visible()
    screenshot(page, f"unsubscribe-ask-{size}")
    page.click("text=Yes, stop the emails")
    page.wait_for_selector("h1:has-text('You will get no more emails')")
    assert page.locator("text=about your right big toe").is_visible()
    assert Unsubscription.objects.count() == 1
    screenshot(page, f"unsubscribe-done-{size}")
    context.close()


@pytest.mark.parametrize("size", SIZES)
def test_worklist_on_phone_and_desktop(browser, live_server, emailed, coordinator, clinic, size):
    Patient.objects.filter(given_name="Dana").update(phone="+1 555 0100")
    bea = Patient.objects.create(clinic=clinic, mrn="B-2", given_name="Bea", family_name="Nomail",
                                 birth_date=dt.date(1979, 3, 3), consent_registry=True,
                                 consent_date=dt.date(2024, 1, 1), consent_version="v1")
    knee = registry.episode_create(patient=bea, body_site="knee", side="left", condition="oa_primary")
    registry.procedure_record(episode=knee, date=timezone.localdate() - dt.timedelta(days=90), kind="prp",
                              is_index=True)
    context = browser.new_context(**SIZES[size])
    page = context.new_page()
    browser_login(page, live_server, "coord")
    due = services.open_assessments(Invitation.objects.get())[0].due_date
    page.goto(f"{live_server.url}/followup/?tab={'due' if due >= timezone.localdate() else 'overdue'}")
    dana = page.locator("tr", has_text="Dana Fox")
    assert dana.locator("a[href='tel:+15550100']").is_visible()
    assert dana.locator("text=Pain").first.is_visible()
    bea_row = page.locator("tr", has_text="Bea Nomail")
    assert bea_row.locator("text=No email: No email address").is_visible()
    menu = dana.locator("details.row-menu")
    assert menu.locator("text=Resend the email").is_hidden()
    menu.locator("summary").click()
    assert menu.locator("text=Resend the email").is_visible()
    assert menu.locator("text=Revoke the link").is_visible()
    screenshot(page, f"worklist-{size}")
    width = SIZES[size]["viewport"]["width"]
    wide = page.evaluate("""(width) => [...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > width).slice(0, 8)
        .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))""", width)
    assert no_sideways_scroll(page, width), wide  # what sticks out, if anything
    context.close()
