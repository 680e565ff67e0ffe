"""The PACS page and the measurement report in a real browser (Playwright driving Debian's chromium), against the
real Orthanc of tests/imaging/orthanc.py: a phone (390 px) and a desktop (1280 px)."""

from __future__ import annotations

import pydicom
import pytest
from django.conf import settings
from django.test import Client

from orthoreg.imaging import services, srreport
from orthoreg.imaging.models import Image
from tests.conftest import screenshot
from tests.imaging.orthanc import film_for, free_port, orthanc, orthanc_server  # noqa: F401
from tests.imaging.real_films import JOINTS
from tests.imaging.test_browser import _closing_connections

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _tab(browser, live_server, user, width):
    client = Client()
    client.force_login(user)
    context = browser.new_context(viewport={"width": width, "height": 900}, accept_downloads=True)
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME]
                          .value, "url": live_server.url}])
    tab = context.new_page()
    tab.problems = []
    tab.on("console", lambda m: tab.problems.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: tab.problems.append(str(e)))
    return context, tab


@pytest.mark.parametrize("width", [390, 1280])
def test_pick_a_study_import_it_and_download_its_report(browser, live_server, orthanc, episode, patient, clinician,
                                                        width, tmp_path):
    _closing_connections(_pick_import_download)(browser, live_server, orthanc, episode, patient, clinician, width,
                                                tmp_path)


def _pick_import_download(browser, live_server, orthanc, episode, patient, clinician, width, tmp_path):
    from playwright.sync_api import expect

    orthanc.upload(film_for("ankle", patient.mrn))
    orthanc.upload(film_for("cat", patient.mrn))
    context, tab = _tab(browser, live_server, clinician, width)
    try:
        tab.goto(f"{live_server.url}/imaging/episode/{episode.pk}/")
        tab.get_by_role("link", name="From the PACS").click()
        expect(tab.locator("table.pacs-studies tbody tr")).to_have_count(2)
        assert "Non-ossifying fibroma of distal tibia" in tab.locator("table.pacs-studies").inner_text()
        assert tab.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scrolling on a phone
        screenshot(tab, f"imaging-pacs-studies-{width}")

        tab.get_by_label("Import the study of 26 Aug 2004").check()
        tab.get_by_role("button", name="Import the chosen studies").click()
        expect(tab.locator("#pacs-outcomes h2")).to_have_text("1 of 1 image imported")
        assert tab.evaluate("document.documentElement.scrollWidth") <= width
        screenshot(tab, f"imaging-pacs-imported-{width}")
        assert tab.locator("table.pacs-studies tr", has_text="Non-ossifying").locator(".badge").inner_text() \
            == "on this episode"
        image = Image.objects.get(study__episode=episode)

        joint = next(j for j in JOINTS if j.name == "ankle tibiotalar")
        services.measurement_run(image=image, line=joint.line, user=clinician)
        tab.locator("#pacs-outcomes a", has_text="26 Aug 2004").click()
        expect(tab.locator("#report-card")).to_be_visible()
        assert tab.evaluate("document.documentElement.scrollWidth") <= width  # the long UID file name wraps
        with tab.expect_download() as info:
            tab.click("#report-download")
        path = tmp_path / info.value.suggested_filename
        info.value.save_as(path)
        report = srreport.read(pydicom.dcmread(path))
        assert len([v for v in report["values"] if v.name == "Width"]) == 4
        assert report["referenced"] == [image.header["sop_instance_uid"]]

        tab.click("#report-push")
        expect(tab.locator(".messages")).to_contain_text("Measurement report sent to the PACS")
        tab.locator("#report-card").scroll_into_view_if_needed()
        screenshot(tab, f"imaging-report-sent-{width}")

        settings.DICOMWEB_URL = f"http://127.0.0.1:{free_port()}/dicom-web"
        tab.goto(f"{live_server.url}/imaging/episode/{episode.pk}/pacs/")
        expect(tab.locator("#pacs-error")).to_contain_text("cannot be reached")
        screenshot(tab, f"imaging-pacs-down-{width}")
        assert tab.problems == []
    finally:
        context.close()
