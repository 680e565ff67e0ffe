"""A patient answers on a phone-sized screen from the emailed link, keyboard and taps, to the thank-you page."""

import datetime as dt
import re

import pytest
from django.core import mail
from django.utils import timezone

from orthoreg.followup import services
from orthoreg.instruments.models import Response
from orthoreg.registry import services as registry
from tests.conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_patient_answers_on_a_phone(browser, live_server, episode, settings):
    settings.BASE_URL = live_server.url
    registry.procedure_record(episode=episode, date=timezone.localdate() - dt.timedelta(days=183), kind="bmc",
                              is_index=True)
    services.worker_pass()
    link = re.search(r"(http://\S+/s/[A-Za-z0-9_-]+/)", mail.outbox[0].body).group(1)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(link)
    assert page.locator("text=Questionnaire 1 of 4").is_visible()
    # No horizontal scrolling on a phone
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # The 0-10 pain rating is a row of numbered buttons: tap 3, then move to 4 with the keyboard.
    page.locator(".options.scale label", has_text=re.compile(r"^3$")).tap()
    assert page.locator("input[name=item_1][value='3']").is_checked()
    page.keyboard.press("ArrowRight")
    assert page.locator("input[name=item_1][value='4']").is_checked()
    boxes = [label.bounding_box() for label in page.locator(".options.scale label").all()]
    # 0 to 10 on one row (issue 11.14): 11 buttons fit 390 px only narrower than 44 px; they stay 44 px tall and at
    # least 24 px wide (WCAG 2.2 target size, minimum)
    assert len({round(b["y"]) for b in boxes}) == 1
    assert all(b["width"] >= 24 and b["height"] >= 44 for b in boxes)
    screenshot(page, "survey-phone-1")
    page.click("button:has-text('Next')")
    for _ in range(6):
        if page.locator("text=Thank you!").count():
            break
        page.wait_for_selector("button:has-text('Next'), button:has-text('Finish')")
        for group in page.locator("fieldset.question").all():
            radios = group.locator("input[type=radio]")
            if radios.count():
                radios.first.check()
            else:
                box = group.locator("input[type=number]")
                box.fill(box.get_attribute("max") and str(int(float(box.get_attribute("max")) // 2)))
        if page.locator("text=Questionnaire 4 of 4").count():
            screenshot(page, "survey-phone-last")
        page.locator("button[value=submit]").click()
        page.wait_for_load_state()
    assert page.locator("text=Thank you!").is_visible()
    assert Response.objects.filter(episode=episode, time_point="6m").count() == 4
    assert Response.objects.get(episode=episode, time_point="6m", instrument="nprs").score == 4
    page.goto(link)
    assert page.locator("text=already been answered").is_visible()
    context.close()
