"""The API's documentation page (/api/v1/docs) in a real browser under the site's Content-Security-Policy: the
Swagger UI files come from the site itself (no CDN, no inline script) and it renders every operation."""

import pytest

from tests.conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_docs_page_renders_under_the_csp(page, live_server):
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    response = page.goto(f"{live_server.url}/api/v1/docs")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.wait_for_selector("text=orthoreg API")
    page.wait_for_selector('.opblock-summary-path[data-path="/api/v1/patients/{patient_id}"]')
    screenshot(page, "api-docs")
    shown = {(block.get_attribute("class").split("opblock-")[-1].split()[0],
              block.locator(".opblock-summary-path").get_attribute("data-path"))
             for block in page.locator(".opblock").all()}
    # every operation (tests/api/test_permissions.py lists the 40 besides FHIR's)
    assert len({(m, p) for m, p in shown if not p.startswith("/api/v1/fhir")}) == 40, sorted(shown)
    assert not [e for e in page.console_errors if "Content Security Policy" in e or "Refused" in e], \
        page.console_errors
    assert all(url.startswith(live_server.url) for url in requests), requests
