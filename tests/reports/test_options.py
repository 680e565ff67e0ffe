"""Options for the next patient (issue 16 item 6): the command, the page (audited like a case report), its PDF,
and the page in a real browser on a phone and a desktop."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from orthoreg.accounts.models import AuditEvent, Role
from tests.analytics.builders import Builder
from tests.conftest import PASSWORD, browser_login, make_user, screenshot

D = dt.date
QUERY = {"condition": "hallux_rigidus", "site": "first_mtp", "side": "right", "grade": "3", "age_band": "40-49"}


def _registry(clinic):
    """12 patients aged 44 with grade 3 hallux rigidus treated with bone marrow concentrate (8 of 10 answering at
    6 months 2+ points better, 2 not; 2 did not answer) and 3 with a cheilectomy (too few to say); one aged 60 with
    bone marrow concentrate (outside the age band)."""
    b = Builder(clinic)
    for i in range(12):
        e = b.episode(index_date=D(2025, 1, 1), kind="bmc", grade=3, birth=D(1980, 6, 15))
        b.assessment(e, "baseline", score=7)
        b.assessment(e, "6m", score=None if i >= 10 else (3 if i < 8 else 7))
    for _ in range(3):
        e = b.episode(index_date=D(2025, 1, 1), kind="cheilectomy", grade=3, birth=D(1980, 6, 15))
        b.assessment(e, "baseline", score=6)
    b.episode(index_date=D(2025, 1, 1), kind="bmc", grade=3, birth=D(1964, 6, 15))


def _run(*args) -> str:
    out = io.StringIO()
    call_command("report", "options", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_the_command_gives_one_entry_per_treatment(clinic):
    _registry(clinic)
    page = json.loads(_run("--condition", "hallux_rigidus", "--site", "first_mtp", "--side", "right", "--grade", "3",
                           "--age-band", "40-49"))
    options = {o["treatment"]: o for o in page["options"]}
    assert list(options) == ["bmc", "cheilectomy"]
    bmc = options["bmc"]
    assert set(bmc) >= {"treatment", "similar", "responders", "surgery_free", "serious_adverse_events", "lost"}
    assert bmc["similar"] == 12  # the 60-year-old is outside the band
    six = next(r for r in bmc["responders"] if r["months"] == 6)
    assert (six["numerator"], six["denominator"]) == (8, 10)
    assert "8 of 10 whose result is known (80%)" in six["words"]
    assert next(r for r in bmc["responders"] if r["months"] == 12)["too_few"]  # nobody due at 12 months yet
    assert bmc["lost"]["lost"] == 2 and bmc["lost"]["eligible"] == 12
    assert options["cheilectomy"]["too_few"] and options["cheilectomy"]["responders"] == []
    assert "too few to say" in options["cheilectomy"]["words"]
    assert "observational" in page["note"]
    assert AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT, detail__startswith="command line: options").exists()


def test_the_command_refuses_bad_values(clinic):
    with pytest.raises(CommandError) as exc:
        _run("--condition", "gout", "--site", "first_mtp", "--side", "right", "--grade", "7", "--age-band", "x")
    assert exc.value.returncode == 2
    text = str(exc.value)
    assert "--condition" in text and "--grade" in text and "--age-band" in text


def test_the_page_is_audited_and_prints(clinic, clinician_client):
    _registry(clinic)
    response = clinician_client.get("/reports/options/", QUERY)
    assert response.status_code == 200
    text = response.content.decode()
    assert "Bone marrow concentrate" in text and "observational registry data" in text and "Too few to say" in text
    assert AuditEvent.objects.filter(action=AuditEvent.Action.VIEW, detail__startswith="options page").count() == 1
    pdf = clinician_client.get("/reports/options/", {**QUERY, "format": "pdf"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT, detail__startswith="options page PDF").exists()
    bad = clinician_client.get("/reports/options/", {**QUERY, "grade": "9"})
    assert bad.status_code == 400 and "whole number from 0 to 4" in bad.content.decode()


def test_a_researcher_may_not_open_it(clinic, researcher):
    from tests.conftest import login

    assert login(researcher).get("/reports/options/", QUERY).status_code == 404


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("width", [390, 1280])
def test_the_page_in_a_browser(page, live_server, default_protocols, width):
    from django.core.cache import cache

    from orthoreg.registry.models import Clinic

    cache.clear()
    clinic = Clinic.objects.create(code="east", name="East Clinic")
    make_user("doc", Role.CLINICIAN, clinic)
    _registry(clinic)
    page.set_viewport_size({"width": width, "height": 900})
    browser_login(page, live_server, "doc", PASSWORD)
    page.goto(f"{live_server.url}/reports/options/")
    page.select_option("select[name=condition]", "hallux_rigidus")
    page.select_option("select[name=site]", "first_mtp")
    page.select_option("select[name=side]", "right")
    page.select_option("select[name=grade]", "3")
    page.fill("input[name=age_band]", "40-49")
    page.click("form.filters button[type=submit]")
    page.wait_for_load_state("networkidle")
    screenshot(page, f"reports-options-{width}")
    assert page.locator("section.treatment-option").count() == 2
    assert page.get_by_text("8 of 10 whose result is known").is_visible()
    # nothing runs off the side of a phone screen
    wide = page.evaluate("[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > "
                         "window.innerWidth + 1).map(e => e.tagName + '.' + e.className).slice(0, 5)")
    assert not wide
    assert not page.console_errors
