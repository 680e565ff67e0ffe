"""A coordinator saves a protocol whose re-planning is left to the worker: the page says so honestly and shows
the progress, on a phone and on a desktop."""

import datetime as dt

import pytest
from django.utils import timezone

from orthoreg.followup import services
from orthoreg.followup.models import Protocol
from orthoreg.registry import services as registry
from orthoreg.registry.models import Episode, Patient
from tests.conftest import browser_login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("width", [390, 1280])
def test_protocol_save_shows_replanning_progress(browser, live_server, clinic, coordinator, monkeypatch, width):
    for i in range(3):
        patient = Patient.objects.create(clinic=clinic, mrn=f"B{i}", given_name="P", family_name=f"N{i}",
                                         birth_date=dt.date(1970, 1, 1))
        episode = Episode.objects.create(patient=patient, body_site="first_mtp", side="right",
                                         condition="hallux_rigidus")
        registry.procedure_record(episode=episode, date=timezone.localdate() - dt.timedelta(days=30), kind="bmc",
                                  is_index=True)
    own = services.protocol_copy_for_clinic(protocol=Protocol.objects.get(clinic=None, condition="hallux_rigidus"),
                                            clinic=clinic)
    monkeypatch.setattr(services.protocols, "REPLAN_INLINE", 0)
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    browser_login(page, live_server, coordinator.username)
    page.goto(f"{live_server.url}/followup/protocols/{own.pk}/edit/")
    page.fill("input[name=name]", "Our hallux protocol")
    page.click("button:has-text('Save and re-plan')")
    page.wait_for_load_state()
    body = page.inner_text("body")
    assert "Re-planning 3 episodes in the background" in body and "No worker has run recently" in body
    assert "0 of 3 episodes (0%) re-planned by the worker" in body
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    screenshot(page, f"protocol-replanning-{width}")
    services.worker_pass(worker="t", interval=60)
    page.reload()
    assert "re-planned by the worker" not in page.inner_text("body")
    context.close()
