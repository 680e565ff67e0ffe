"""The clinician's path in a real browser: sign in, live search for DF, her page, the live grade calculator."""

import datetime as dt

import pytest
from django.utils import timezone

from orthoreg.registry import services
from tests.conftest import browser_login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def df(clinician, clinic):
    today = timezone.localdate()
    df = services.patient_create(clinic=clinic, mrn="DF-0001", given_name="Dana", family_name="Fairley",
                                 birth_date=dt.date(1986, 1, 15), sex="female")
    toe = services.episode_create(patient=df, body_site="first_mtp", side="right", condition="hallux_rigidus")
    services.procedure_record(episode=toe, date=today - dt.timedelta(days=190), kind="bmc", is_index=True,
                              total_nucleated_cells=4.6e8)
    services.procedure_record(episode=toe, date=today - dt.timedelta(days=190), kind="prolotherapy",
                              target_structure="mcl", dextrose_percent=15)
    for n in range(3):
        services.patient_create(clinic=clinic, mrn=f"X{n}", given_name="Other", family_name=f"Person{n}",
                                birth_date=dt.date(1970, 1, 1))
    return df


def test_search_df_and_open_her_page(page, live_server, df):
    browser_login(page, live_server, "doc")
    page.goto(f"{live_server.url}/patients/")
    page.fill("#q", "DF")
    page.wait_for_selector("[data-testid=result-count]:text-is('1 patient')")
    page.click("text=Fairley, Dana")
    page.wait_for_selector("h1:has-text('Dana Fairley')")
    assert page.locator("text=Bone marrow concentrate injection").count() >= 1
    assert page.locator("text=Medial collateral ligament").count() >= 1
    screenshot(page, "patient-page")
    assert not [e for e in page.console_errors if "Content Security Policy" in e]


def test_live_grade_calculator(page, live_server, df):
    episode = df.episodes.get()
    browser_login(page, live_server, "doc")
    page.goto(f"{live_server.url}/episodes/{episode.pk}/grades/new/")
    page.fill("input[name=dorsiflexion]", "8")
    page.select_option("select[name=radiograph]", "3")
    page.select_option("select[name=clinical]", "3")
    page.wait_for_selector("[data-testid=suggested-grade]:has-text('Grade 3')")
    page.check("input[name=midrange_pain]")
    page.wait_for_selector("[data-testid=suggested-grade]:has-text('Grade 4')")
    # Kellgren-Lawrence inputs are hidden while Coughlin-Shurnas is chosen
    assert page.locator("fieldset[data-system=kellgren_lawrence]").is_hidden()
    screenshot(page, "grade-form")
    page.click("button:has-text('Save')")
    page.wait_for_selector("text=Coughlin-Shurnas (hallux rigidus): grade 4")
