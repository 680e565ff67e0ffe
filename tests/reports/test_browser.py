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
    make_user("doc", Role.CLINICIAN, clinic)  # a cohort of 2: a researcher gets no figures from it (disclosure)
    b = Builder(clinic)
    for n, (kind, base, six) in enumerate([("bmc", 8, 2), ("bmc", 7, 3), ("bmc", 6, 5), ("hyaluronic_acid", 7, 6),
                                           ("hyaluronic_acid", 8, 4), ("bmc", 9, None)]):
        e = b.episode(index_date=dt.date(2025, 1, 1) + dt.timedelta(days=n), kind=kind, grade=2)
        b.assessment(e, "baseline", score=base)
        b.assessment(e, "6m", score=six)
        if n < 2:
            b.procedure(e, date=dt.date(2025, 1, 20), kind="prolotherapy")

    browser_login(page, live_server, "doc", PASSWORD)
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
    assert charts.count() == 8  # six charts, the cumulative incidence and one change distribution (pain)
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


@pytest.mark.parametrize("width", [390, 1280])
def test_a_small_cohort_shows_counts_and_too_few(page, live_server, default_protocols, width):
    """The small-number rule on screen (issue 11, item 9): a cohort of 7 of whom one answered at 24 months; a
    researcher asking for 3 is told why nothing is shown (issue 12, item 5)."""
    from django.core.cache import cache
    from django.utils import timezone

    from orthoreg.registry.models import Clinic

    cache.clear()
    page.set_viewport_size({"width": width, "height": 900})
    clinic = Clinic.objects.create(code="east", name="East Clinic")
    make_user("doc", Role.CLINICIAN, clinic)
    make_user("research", Role.RESEARCHER, clinic)
    b = Builder(clinic)
    index = timezone.localdate() - dt.timedelta(days=800)
    for n in range(7):
        e = b.episode(index_date=index + dt.timedelta(days=n), kind="bmc")
        b.assessment(e, "baseline", score=8)
        b.assessment(e, "6m", score=3 + n % 3)
        b.assessment(e, "24m", score=0 if n == 0 else None)
    for _n in range(3):
        e = b.episode(index_date=index, kind="prolotherapy")
        b.assessment(e, "baseline", score=7)
        b.assessment(e, "6m", score=2)

    browser_login(page, live_server, "doc", PASSWORD)
    page.goto(f"{live_server.url}/reports/cohort/?procedure=bmc&vs_procedure=prolotherapy&show=1")
    page.wait_for_load_state("networkidle")
    text = page.locator("main").inner_text() if page.locator("main").count() else page.inner_text("body")
    assert "too few to estimate" in text and "1/1" not in text
    screenshot(page, f"reports-cohort-small-{width}")
    wide = page.evaluate("""() => [...document.querySelectorAll('body *')].filter(
        el => el.getBoundingClientRect().right > window.innerWidth + 1 && !el.closest('.table-wrap'))
        .slice(0, 5).map(el => el.tagName + '.' + el.className + ' ' + Math.round(el.getBoundingClientRect().right))""")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), wide  # no sideways scroll

    page.context.clear_cookies()
    browser_login(page, live_server, "research", PASSWORD)
    page.goto(f"{live_server.url}/reports/cohort/?procedure=prolotherapy&show=1")
    assert "Fewer than 5 patients" in page.inner_text("body")
    screenshot(page, f"reports-cohort-refused-{width}")


@pytest.mark.parametrize("width", [390, 1280])
def test_public_page_in_a_browser(page, live_server, default_protocols, width):
    from django.core.cache import cache
    from django.utils import timezone

    from orthoreg.registry.models import Clinic

    cache.clear()
    page.set_viewport_size({"width": width, "height": 900})
    clinic = Clinic.objects.create(code="east", name="East Clinic", public_outcomes=True)
    b = Builder(clinic)
    index = timezone.localdate() - dt.timedelta(days=800)
    for n in range(13):  # 6 of 13 with half the pain: "46% (95% CI 23-71%)" would pin the 13
        e = b.episode(index_date=index, kind="bmc")
        b.assessment(e, "baseline", score=8)
        b.assessment(e, "6m", score=2 if n < 6 else 7)
        b.exam(e, date=index + dt.timedelta(days=760))
    for n in range(20):  # 10 of 20 answered: counts and rates may be shown
        e = b.episode(index_date=index, kind="prp")
        b.assessment(e, "baseline", score=8)
        b.assessment(e, "6m", score=(2 if n < 5 else 7) if n < 10 else None)
        b.exam(e, date=index + dt.timedelta(days=760))
    page.goto(f"{live_server.url}/reports/public/first_mtp/hallux_rigidus/")
    body = page.inner_text("body")
    assert "46%" not in body and "not shown" in body
    assert page.evaluate("img => img.complete && img.naturalWidth > 0", page.locator("img.chart").element_handle())
    screenshot(page, f"reports-public-{width}")
