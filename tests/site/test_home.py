"""The home page of each role (issue 11, item 2): it says what the role can do, and every figure a researcher sees
counts patients with registry consent only (the cohort report's own cohort)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from orthoreg.accounts.models import Role
from tests.accounts.test_permission_matrix import verified_client
from tests.analytics.builders import Builder
from tests.conftest import login, make_user

NO_ROLE = "Your account has no clinic role yet"


@pytest.fixture
def mixed_consent(clinic):
    b = Builder(clinic)
    for n in range(11):
        e = b.episode(index_date=dt.date(2025, 1, 1) + dt.timedelta(days=n), consent=n < 8)  # 8 consented
        b.assessment(e, "baseline", score=8)
        b.assessment(e, "6m", score=3)


def treated(html: str) -> int:
    return int(re.search(r'<span class="kpi">([\d,]+)</span><span class="muted small">treated</span>', html)[1])


def test_a_researcher_counts_consented_patients_only(researcher, clinician, mixed_consent):
    home = login(researcher).get(reverse("home")).content.decode()
    assert treated(home) == 8 and "registry consent" in home
    report = login(researcher).get(reverse("reports:cohort_json")).json()
    assert report["cohort"]["episodes"] == 8  # the same number as the researcher's cohort report
    assert treated(login(clinician).get(reverse("home")).content.decode()) == 11  # their own patients


@pytest.mark.parametrize("role, says, link", [
    (Role.ADMIN, "manage the clinic", "reports:cohort"),
    (Role.CLINICIAN, "Record and read your patients", "registry:patient_list"),
    (Role.COORDINATOR, "worklist of questionnaires due", "followup:worklist"),
    (Role.RESEARCHER, "patients who gave registry consent", "reports:cohort"),
    (Role.AUDITOR, "audit log", "accounts:audit_log"),
])
def test_each_role_is_told_what_it_can_do(clinic, role, says, link):
    user = make_user(f"u-{role}", role, clinic)
    html = verified_client(user).get(reverse("home")).content.decode()
    assert NO_ROLE not in html
    assert Role(role).label in html and says in html and f'href="{reverse(link)}"' in html
    assert clinic.name in html


def test_no_role_yet(db):
    user = get_user_model().objects.create_user("newcomer", password="x-long-password-1")
    assert NO_ROLE in login(user).get(reverse("home")).content.decode()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("width", [390, 1280])
def test_researcher_home_in_a_browser(page, live_server, default_protocols, width):
    from django.core.cache import cache

    from orthoreg.registry.models import Clinic
    from tests.conftest import PASSWORD, browser_login, screenshot

    cache.clear()
    page.set_viewport_size({"width": width, "height": 900})
    clinic = Clinic.objects.create(code="east", name="East Clinic")
    make_user("research", Role.RESEARCHER, clinic)
    b = Builder(clinic)
    for n in range(11):
        e = b.episode(index_date=dt.date(2025, 1, 1) + dt.timedelta(days=n), consent=n < 8)
        b.assessment(e, "baseline", score=8)
        b.assessment(e, "6m", score=3)
    browser_login(page, live_server, "research", PASSWORD)
    page.goto(f"{live_server.url}/")
    body = page.inner_text("body")
    assert NO_ROLE not in body and "Researcher" in body and "registry consent" in body
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    screenshot(page, f"home-researcher-{width}")
