"""The cohort page in a real browser (Playwright + Debian chromium): choose a cohort, see the numbers and the
charts (served as SVG under the site's Content-Security-Policy), compare with a second cohort."""

from __future__ import annotations

import datetime as dt

import pytest

from orthoreg.accounts.models import Role
from tests.analytics.builders import Builder
from tests.conftest import PASSWORD, browser_login, make_user, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_cohort_page_in_a_browser(page, live_server, default_protocols):
    from django.core.cache import cache

    from orthoreg.registry.models import Clinic

    cache.clear()
    clinic = Clinic.objects.create(code="east", name="East Clinic")
    make_user("research", Role.RESEARCHER, clinic)
    b = Builder(clinic)
    for n, (kind, base, six) in enumerate([("bmc", 8, 2), ("bmc", 7, 3), ("bmc", 6, 5), ("hyaluronic_acid", 7, 6),
                                           ("hyaluronic_acid", 8, 4), ("bmc", 9, None)]):
        e = b.episode(index_date=dt.date(2025, 1, 1) + dt.timedelta(days=n), kind=kind, grade=2)
        b.assessment(e, "baseline", score=base)
        b.assessment(e, "6m", score=six)
        if n < 2:
            b.procedure(e, date=dt.date(2025, 1, 20), kind="prolotherapy")

    browser_login(page, live_server, "research", PASSWORD)
    page.goto(f"{live_server.url}/reports/cohort/")
    page.select_option("select[name=condition]", "hallux_rigidus")
    page.select_option("select[name=procedure]", "bmc")
    page.check("input[name=also][value=prolotherapy]")
    page.click("button[name=show]")
    page.wait_for_load_state("networkidle")
    assert "procedure=bmc" in page.url and "also=prolotherapy" in page.url  # bookmarkable
    heading = page.locator("section.report-summary h2").inner_text()
    assert "Bone marrow concentrate injection + Prolotherapy within 30 days" in heading
    assert page.locator(".kpi").first.inner_text() == "2"
    charts = page.locator("img.chart")
    assert charts.count() == 6
    for i in range(charts.count()):  # every chart loaded as an image
        assert page.evaluate("img => img.complete && img.naturalWidth > 0", charts.nth(i).element_handle())
    screenshot(page, "reports-cohort")

    page.goto(f"{live_server.url}/reports/cohort/?condition=hallux_rigidus&procedure=bmc&show=1")
    page.click("details.compare summary")
    page.select_option("select[name=vs_procedure]", "hyaluronic_acid")
    page.click("button[name=show]")
    page.wait_for_load_state("networkidle")
    assert page.get_by_text("Differences (A minus B)").is_visible()
    assert page.locator("section.report-summary").count() == 2
    screenshot(page, "reports-cohort-comparison")

    page.goto(f"{live_server.url}/reports/cohort/?grade_min=7")
    assert "less than or equal to 4" in page.locator(".errorlist.nonfield").inner_text()
    assert page.console_errors == [] or all("400" in e for e in page.console_errors), page.console_errors
