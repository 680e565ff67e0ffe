"""The annotation editor in a real browser (Playwright driving Debian's chromium), under the site's CSP."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client

from orthoreg.imaging.demo import create_demo_images
from orthoreg.imaging.models import Annotation
from tests.conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page(browser, live_server, clinician):
    """A signed-in tab (the session cookie of a logged-in client) on the shared browser of tests/conftest.py."""
    client = Client()
    client.force_login(clinician)
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}])
    tab = context.new_page()
    tab.problems = []
    tab.on("console", lambda m: tab.problems.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: tab.problems.append(str(e)))
    yield tab
    context.close()


def _closing_connections(steps):
    """While Playwright's sync API runs, Django keeps the test's database connection in an async context that
    pytest-django does not close; close it, or PostgreSQL cannot drop the test database at the end."""
    def test(*args, **kwargs):
        try:
            steps(*args, **kwargs)
        finally:
            connections.close_all()

    return test


def _to_screen(page, image, x, y):
    """Screen point of an image pixel coordinate in the editor (the SVG shows the whole image, centred)."""
    box = page.locator("#imaging-overlay").bounding_box()
    scale = min(box["width"] / image.width, box["height"] / image.height)
    left = box["x"] + (box["width"] - image.width * scale) / 2
    top = box["y"] + (box["height"] - image.height * scale) / 2
    return left + x * scale, top + y * scale


def test_draw_an_arrow_and_see_it_saved(page, live_server, episode, clinician):
    _closing_connections(_draw_an_arrow)(page, live_server, episode, clinician)


def test_measure_the_joint_space_accept_it_and_delete_an_annotation(page, live_server, episode, clinician):
    _closing_connections(_measure_and_accept)(page, live_server, episode, clinician)


def _draw_an_arrow(page, live_server, episode, clinician):
    from playwright.sync_api import expect

    before, after = create_demo_images(episode=episode, before_date=dt.date(2025, 3, 4),
                                       after_date=dt.date(2025, 9, 4), user=clinician)
    page.goto(f"{live_server.url}/imaging/image/{after.pk}/")
    expect(page.locator("#annotation-list li")).to_have_count(2)  # the demo's circle and arrow
    assert page.locator("#jsw-table").is_visible()  # the demo's accepted measurement is shown
    arrows_before = Annotation.objects.filter(image=after, kind="arrow").count()

    page.click("button[data-tool=arrow]")
    page.fill("#ann-label", "spur")
    box = page.locator("#imaging-overlay").bounding_box()
    x, y = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 60, y + 40, steps=6)
    page.mouse.up()
    expect(page.locator("#imaging-status")).to_contain_text("Arrow saved")

    arrows = Annotation.objects.filter(image=after, kind="arrow").order_by("id")
    assert arrows.count() == arrows_before + 1
    saved = arrows.last()
    assert saved.label == "spur" and saved.created_by == clinician
    assert 0 < saved.geometry["x1"] < saved.geometry["x2"] < after.width  # image pixel coordinates
    assert saved.history.count() == 1

    page.reload()
    expect(page.locator("#annotation-list li")).to_have_count(3)
    assert "spur" in page.locator("#annotation-list").inner_text()
    assert page.locator(f"g.ann[data-id='{saved.pk}'] polygon").count() == 1  # the arrow head
    assert page.problems == []  # no script error, no Content-Security-Policy violation
    screenshot(page, "imaging-image-page")
    page.goto(f"{live_server.url}/imaging/episode/{episode.pk}/compare/")
    expect(page.locator("svg.compare-svg")).to_have_count(2)
    page.wait_for_load_state("networkidle")
    screenshot(page, "imaging-before-after")
    page.goto(f"{live_server.url}/imaging/episode/{episode.pk}/upload/")
    page.set_input_files("#id_file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}])
    page.click("form[enctype] button[type=submit]")
    expect(page.locator(".errorlist")).to_contain_text("not a DICOM, PNG or JPEG")
    screenshot(page, "imaging-upload-refused")


def _measure_and_accept(page, live_server, episode, clinician):
    from playwright.sync_api import expect

    from orthoreg.imaging.models import Measurement

    before, _after = create_demo_images(episode=episode, before_date=dt.date(2025, 3, 4),
                                        after_date=dt.date(2025, 9, 4), user=clinician)
    demo_measurement = before.accepted_measurement
    page.goto(f"{live_server.url}/imaging/image/{before.pk}/")
    expect(page.locator("#annotation-list li")).to_have_count(2)
    page.click("button[data-tool=jsw]")
    x1, y1, x2, y2 = demo_measurement.line  # medial end first
    start, end = _to_screen(page, before, x1, y1), _to_screen(page, before, x2, y2)
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=10)
    page.mouse.up()
    expect(page.locator("#imaging-status")).to_contain_text("Measured")
    expect(page.locator("#jsw-accept")).to_be_visible()
    table = page.locator("#jsw-table").inner_text()
    assert table.count(" mm") == 4 and "not measurable" not in table
    page.click("#jsw-accept")
    expect(page.locator("#jsw-accept")).to_have_count(0)
    screenshot(page, "imaging-measured")
    accepted = Measurement.objects.get(image=before, accepted=True)
    assert accepted.pk != demo_measurement.pk and accepted.accepted_by == clinician
    assert accepted.medial == pytest.approx(demo_measurement.medial, abs=0.1)

    page.locator("#annotation-list li").first.get_by_role("button", name="Delete").click()
    expect(page.locator("#annotation-list li")).to_have_count(1)
    assert Annotation.objects.filter(image=before).count() == 1
    assert page.problems == []


def test_an_uncalibrated_caliper_then_calibration_on_a_marker(page, live_server, png_image):
    _closing_connections(_calibrate)(page, live_server, png_image)


def _calibrate(page, live_server, image):
    from playwright.sync_api import expect

    page.goto(f"{live_server.url}/imaging/image/{image.pk}/")
    expect(page.locator("#calibration-badge")).to_contain_text("Uncalibrated")

    def drag(tool, x1, y1, x2, y2):
        page.click(f"button[data-tool={tool}]")
        page.mouse.move(*_to_screen(page, image, x1, y1))
        page.mouse.down()
        page.mouse.move(*_to_screen(page, image, x2, y2), steps=8)
        page.mouse.up()

    drag("caliper", 50, 40, 50, 140)  # 100 px
    expect(page.locator("#annotation-list")).to_contain_text("100.0 px (uncalibrated)")
    drag("calibrate", 20, 200, 220, 200)  # a 200 px marker ...
    expect(page.locator("#marker-form")).to_be_visible()
    page.fill("#marker-mm", "20")  # ... of 20 mm
    page.click("#marker-form button[type=submit]")
    expect(page.locator("#calibration-badge")).to_contain_text("0.1 mm/px")
    expect(page.locator("#annotation-list")).to_contain_text("10.00 mm")
    image.refresh_from_db()
    assert image.calibration_source == "manual" and image.spacing_row_mm == pytest.approx(0.1, rel=0.02)
    screenshot(page, "imaging-calibrated")
    assert page.problems == []


@pytest.mark.parametrize("width", [390, 1280])
def test_before_after_says_within_measurement_error_with_its_reference(page, live_server, episode, clinician,
                                                                       width):
    _before_after(page, live_server, episode, clinician, width)


@_closing_connections
def _before_after(page, live_server, episode, clinician, width):
    from playwright.sync_api import expect

    create_demo_images(episode=episode, before_date=dt.date(2025, 3, 10), after_date=dt.date(2025, 9, 12),
                       user=clinician)
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{live_server.url}/imaging/episode/{episode.pk}/compare/")
    expect(page.locator("#sdc-note")).to_contain_text("Smallest detectable change for this pair of films: 0.69 mm")
    expect(page.locator("#sdc-note")).to_contain_text("J Rheumatol 1999;26:1359")
    badges = page.locator("td .badge", has_text="within measurement error")
    assert badges.count() >= 1  # the demo's lateral third barely changes
    assert "J Rheumatol" in badges.first.get_attribute("title")
    assert page.evaluate("document.documentElement.scrollWidth") <= width + 1  # no sideways scrolling
    screenshot(page, f"imaging-compare-{width}")
    assert not page.problems
