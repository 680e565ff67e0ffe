"""Issue 11 items 10 and 17 on DF's case report: the similar patients' baseline and change beside hers, survival in
the rates' format, a full first PDF page, one date format, labels instead of parameter names."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from django.urls import reverse

from orthoreg.analytics import facts
from orthoreg.reports import case as case_reports
from orthoreg.reports import pdf


@pytest.fixture
def demo_cohort_size():
    """The demo's whole synthetic cohort: DF's similar patients are enough to be estimated, as a clinic sees them."""
    return None


def test_similar_patients_give_their_baseline_and_change_beside_hers(df_episode):
    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    report = case_reports.case_report(df_episode)
    similar = report.similar
    assert similar["baseline"].n >= 5 and similar["baseline"].mean is not None
    assert similar["change"].n >= 5 and similar["change"].mean < 0  # pain fell on average
    assert report.own_pain == {"baseline": 7, "score": 3, "change": pytest.approx(-4)}


def test_case_page_sets_her_7_to_3_beside_theirs(demo_client, df_episode):
    html = demo_client.get(reverse("reports:case", args=[df_episode.pk])).content.decode()
    table = re.search(r'<table[^>]*data-testid="similar-pain".*?</table>', html, re.S).group(0)
    rows = [re.sub(r"<[^>]+>", " ", r) for r in re.findall(r"<tr>.*?</tr>", table, re.S)]
    before, after, change = (" ".join(r.split()) for r in rows[1:4])
    assert before.startswith("Before treatment 7 ") and "n=" in before
    assert after.startswith("At 6 months 3 ") and "n=" in after
    assert change.startswith("Change by 6 months -4 ") and "95% CI" in change


def test_survival_is_printed_like_the_rates(demo_client, df_episode):
    html = demo_client.get(reverse("reports:case", args=[df_episode.pk])).content.decode()
    row = re.search(r"Free of surgery at 12 months</th><td>(.*?)</td>", html, re.S)
    assert row, "the demo cohort has a 12-month survival"
    text = " ".join(re.sub(r"<[^>]+>", " ", row.group(1)).split())
    assert re.fullmatch(r"\d+% \(95% CI \d+–\d+%\) , \d+ still followed", text), text
    assert re.search(r'<strong>\d+%</strong> <span class="ci">', row.group(1))  # marked up as the rates are
    rates = re.findall(r'<span class="ci">\(95% CI (\d+–\d+%)\)</span>', html)
    assert rates  # the rates use the same "(95% CI a–b%)" with whole percents
    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    text = _pdf_text(pdf.case_pdf(case_reports.case_report(df_episode)))
    assert re.search(r"Free of surgery at 12 months\s+\d+% \(95% CI \d+–\d+%\), \d+ still followed", text), text
    assert re.search(r"50% less pain\s+\d+% \(\d+/\d+; 95% CI \d+–\d+%\)", text)


def test_mcid_detail_says_what_it_means(df_episode):
    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    mcid = next(v for v in case_reports.case_report(df_episode).verdicts if v.code == "mcid")
    assert "not reached" not in mcid.detail and "reached" not in mcid.detail
    assert "better by at least the MCID" in mcid.detail


def _pdf_text(data: bytes) -> str:
    if not shutil.which("pdftotext"):
        pytest.skip("pdftotext (poppler-utils) is not installed")
    return subprocess.run(["pdftotext", "-layout", "-", "-"], input=data, capture_output=True, check=True).stdout.decode()


def test_case_pdf_first_page_is_full(df_episode, tmp_path):
    """The first page used to end halfway down: the radiograph pair (kept in one piece) went to page 2."""
    if not shutil.which("pdftoppm"):
        pytest.skip("pdftoppm (poppler-utils) is not installed")
    from PIL import Image

    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    (tmp_path / "case.pdf").write_bytes(pdf.case_pdf(case_reports.case_report(df_episode)))
    subprocess.run(["pdftoppm", "-r", "40", "-png", "-f", "1", "-l", "1", str(tmp_path / "case.pdf"),
                    str(tmp_path / "page")], check=True)
    page = Image.open(next(tmp_path.glob("page*.png"))).convert("L")
    width, height = page.size
    footer = int(height * 20 / 297)  # the footer line sits 9 mm above the bottom edge: look above 20 mm
    rows = [y for y in range(height - footer) if any(page.getpixel((x, y)) < 200 for x in range(width))]
    empty_mm = (height - footer - rows[-1]) / height * 297
    assert empty_mm < 40, f"{empty_mm:.0f} mm of page 1 left empty above the footer"


def test_case_pdf_and_page_use_the_one_date_format(demo_client, df_episode):
    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    report = case_reports.case_report(df_episode)
    index_day = report.timeline.index_procedure.date
    expected = f"{index_day.day} {index_day:%b %Y}"  # 26 May 2026, never 05/26/2026 or 2026-05-26 or 06 May
    text = _pdf_text(pdf.case_pdf(report))
    assert f"Treatment: bone marrow concentrate injection with prolotherapy, {expected}." in text
    assert not re.search(r"\b0\d [A-Z][a-z]{2} \d{4}\b", text), "a zero-padded day in the PDF"
    assert not re.search(r"\d{4}-\d{2}-\d{2}", text)
    html = demo_client.get(reverse("reports:case", args=[df_episode.pk])).content.decode()
    assert f", {expected}." in html
    assert not re.search(r"\d{4}-\d{2}-\d{2}", re.sub(r"<[^>]+>", "", html)), "an ISO date printed on the page"


def test_cohort_errors_name_the_field_not_the_parameter(demo_client, small_demo):
    from django.contrib.auth import get_user_model

    from tests.conftest import login

    client = login(get_user_model().objects.get(username="researcher"))
    page = client.get(reverse("reports:cohort") + "?grade_min=3&grade_max=2&vs_age_min=abc&show=1")
    html = page.content.decode()
    assert page.status_code == 400
    assert "<strong>Grade to</strong>: The upper grade is below the lower one" in html
    assert "<strong>Cohort B: Age from</strong>: Enter a whole number." in html
    assert "grade_max" not in re.sub(r'="[^"]*"', "", html)  # in no text, only in attributes
    plain = client.get(reverse("reports:cohort_json") + "?grade_min=3&grade_max=2")
    assert plain.status_code == 400 and plain.content.decode().startswith("Bad filters: Grade to: ")
