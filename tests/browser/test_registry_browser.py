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


@pytest.mark.parametrize("width", [390, 1280], ids=["phone", "desktop"])
def test_grade_calculator_flags_400_degrees_on_its_field_and_keeps_the_suggestion(page, live_server, df, width):
    episode = df.episodes.get()
    page.set_viewport_size({"width": width, "height": 900})
    browser_login(page, live_server, "doc")
    page.goto(f"{live_server.url}/episodes/{episode.pk}/grades/new/")
    page.select_option("select[name=radiograph]", "2")
    page.select_option("select[name=clinical]", "2")
    page.wait_for_selector("[data-testid=suggested-grade]:has-text('Grade 2')")
    page.locator("input[name=dorsiflexion]").press_sequentially("400")  # typed, as a user does
    error = page.locator("#live-error-dorsiflexion li")
    error.wait_for()
    assert error.inner_text() == "400: Enter a number from -30 to 120 degrees."
    # the message sits right under its own field, and the suggestion says the value was not used
    field_box = page.locator("#field-dorsiflexion").bounding_box()
    error_box = error.bounding_box()
    assert 0 <= error_box["y"] - (field_box["y"] + field_box["height"]) < 40
    assert abs(error_box["x"] - field_box["x"]) < 20
    assert page.locator("[data-testid=refused-inputs]").inner_text() == "Not used until corrected: Dorsiflexion (°)."
    assert page.locator("[data-testid=suggested-grade]").inner_text() == "Grade 2"
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    screenshot(page, f"grade-400-degrees-{width}")
    with page.expect_navigation():
        page.click("button:has-text('Save')")
    assert page.locator("[data-testid=suggested-grade]").inner_text() == "Grade 2"
    assert page.locator("[data-testid=refused-inputs]").inner_text() == "Not used until corrected: Dorsiflexion (°)."
    assert page.locator("#field-dorsiflexion .errorlist").inner_text() == "Enter a number from -30 to 120 degrees."
    screenshot(page, f"grade-400-degrees-after-save-{width}")
    # correcting it clears the message live
    page.fill("input[name=dorsiflexion]", "")
    page.locator("input[name=dorsiflexion]").press_sequentially("25")
    page.wait_for_selector("#live-error-dorsiflexion li", state="detached")
    assert not episode.grades.exists()
