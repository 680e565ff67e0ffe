"""DF's page and her case report in a real browser on a phone (390 px) and a desktop (issue 11 items 10 and 18): no
sideways overflow, the treated episode first, chart text at least 11 px as shown, her baseline and change beside
the similar patients'."""

from __future__ import annotations

import pytest

from tests.conftest import screenshot
from tests.reports.conftest import demo_cohort_size, df_episode, small_demo  # noqa: F401 - the demo fixtures

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]



@pytest.fixture
def demo_cohort_size():
    return None


VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}

# the smallest text of each chart image, in CSS px as shown: the SVG's font size scaled by shown / drawn width
CHART_TEXT_PX = """async () => {
  const out = [];
  for (const img of document.querySelectorAll('img.chart')) {
    img.scrollIntoView();
    const svg = new DOMParser().parseFromString(await (await fetch(img.src)).text(), 'image/svg+xml');
    const viewWidth = parseFloat(svg.documentElement.getAttribute('viewBox').split(/[ ,]+/)[2]);
    const sizes = [...svg.querySelectorAll('text')].map(
      t => parseFloat(((t.getAttribute('style') || '').match(/font[^;]*?([0-9.]+)px/) || [0, 0])[1]));
    out.push(sizes.length ? Math.min(...sizes) * img.getBoundingClientRect().width / viewWidth : 0);
  }
  return out;
}"""


@pytest.fixture
def demo_page(browser, default_protocols, small_demo, live_server, request):
    from tests.conftest import browser_login

    context = browser.new_context(viewport=VIEWPORTS[request.param])
    tab = context.new_page()
    tab.viewport_name = request.param
    browser_login(tab, live_server, "clinician", "demo-pass-123")
    yield tab
    context.close()


def _no_sideways_scroll(tab):
    width = tab.evaluate("document.documentElement.scrollWidth")
    assert width <= tab.viewport_size["width"], f"page is {width} px wide in a {tab.viewport_size['width']} px view"


@pytest.mark.parametrize("demo_page", list(VIEWPORTS), indirect=True)
def test_df_page(demo_page, live_server, df_episode):
    tab = demo_page
    tab.goto(f"{live_server.url}/patients/{df_episode.patient_id}/")
    tab.wait_for_load_state("networkidle")
    first = tab.locator("section.episode h2").first.inner_text()
    assert first == "Hallux rigidus, right first MTP joint", first
    _no_sideways_scroll(tab)
    sizes = tab.evaluate(CHART_TEXT_PX)
    assert len(sizes) >= 4 and min(sizes) >= 11, sizes
    screenshot(tab, f"df-page-{tab.viewport_name}")


@pytest.mark.parametrize("demo_page", list(VIEWPORTS), indirect=True)
def test_df_case_report(demo_page, live_server, df_episode):
    tab = demo_page
    tab.goto(f"{live_server.url}/reports/episodes/{df_episode.pk}/")
    tab.wait_for_load_state("networkidle")
    _no_sideways_scroll(tab)
    table = tab.locator("[data-testid=similar-pain]")
    assert table.is_visible()
    rows = [" ".join(r.split()) for r in table.locator("tbody tr").all_inner_texts()]
    assert rows[0].startswith("Before treatment 7 ") and rows[1].startswith("At 6 months 3 ")
    assert rows[2].startswith("Change by 6 months -4 ")
    box = table.bounding_box()
    assert box["x"] + box["width"] <= tab.viewport_size["width"]
    sizes = tab.evaluate(CHART_TEXT_PX)
    assert sizes and min(sizes) >= 11, sizes
    screenshot(tab, f"df-case-report-{tab.viewport_name}")
