"""DF's case report (the founding case), and the PDFs: real PDFs that pdftoppm renders."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from django.urls import reverse

from orthoreg.accounts.models import AuditEvent
from orthoreg.analytics import facts
from orthoreg.analytics.filters import CohortFilter
from orthoreg.analytics.selectors import cohort_report, comparison_report
from orthoreg.registry.models import Clinic
from orthoreg.reports import case as case_reports
from orthoreg.reports import pdf

NOT_EVIDENCE = ("One patient's result is not evidence: DF's 57% improvement at 6 months is one responder, not "
                "evidence that bone marrow concentrate injection with prolotherapy works.")


def test_df_result_is_stated_plainly_and_kept_in_its_place(df_episode):
    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    report = case_reports.case_report(df_episode)
    assert report.result == ("At 6 months, DF's pain was 3 out of 10, down from 7 before treatment: 57% less pain "
                             "(4 points).")
    assert report.not_evidence == NOT_EVIDENCE
    verdicts = {v.code: v.met for v in report.verdicts}
    assert verdicts == {"pain_50": True, "mcid": True, "omeract_oarsi": True, "no_conversion": True}
    assert report.age_at_index == 40 and report.grade.grade == 3
    assert report.treatment == "bone marrow concentrate injection with prolotherapy"


def test_df_similar_patients_exclude_her_and_give_n_and_cis(df_episode):
    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    report = case_reports.case_report(df_episode)
    similar = report.similar
    assert similar["n"] >= 1
    assert df_episode.pk in similar["report"].filters["exclude_episodes"]
    assert similar["report"].filters["condition"] == "hallux_rigidus"
    pain = similar["pain"]
    if pain and pain.responders["pain_50"].denominator:
        assert pain.responders["pain_50"].ci_low is not None
    assert "show=1" in report.similar_url


def test_df_case_page(demo_client, df_episode):
    page = demo_client.get(reverse("reports:case", args=[df_episode.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "DF&#x27;s 57% improvement at 6 months is one responder, not evidence" in html
    assert "Dana" not in html and "Fairley" not in html and "DF-0001" not in html  # initials only
    assert "What similar patients experienced" in html and "obstacle race" in html


def test_df_radiographs_when_imaging_exists(demo_client, df_episode):
    if case_reports.case_images(df_episode) is None:
        pytest.skip("the imaging app made no demo radiographs in this build")
    png = demo_client.get(reverse("reports:case_images", args=[df_episode.pk]))
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    html = demo_client.get(reverse("reports:case", args=[df_episode.pk])).content.decode()
    assert "Radiographs before and after" in html and "medial third" in html


def test_case_report_without_imaging_app(df_episode, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_imaging(name, *args, **kwargs):
        if name.startswith("orthoreg.imaging"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_imaging)
    assert case_reports.case_images(df_episode) is None
    assert case_reports.comparison_png(df_episode) is None


def _render(data: bytes, tmp_path) -> list:
    path = tmp_path / "report.pdf"
    path.write_bytes(data)
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(path), str(tmp_path / "page")], check=True,
                   capture_output=True, timeout=120)
    return sorted(tmp_path.glob("page*.png"))


pdftoppm = pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm is not installed (poppler-utils)")


@pdftoppm
def test_df_case_pdf_renders(demo_client, df_episode, tmp_path):
    response = demo_client.get(reverse("reports:case_pdf", args=[df_episode.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF") and b"%%EOF" in response.content[-64:]
    pages = _render(response.content, tmp_path)
    assert pages and all(p.stat().st_size > 1000 for p in pages)
    assert AuditEvent.objects.filter(action="export", object_id=str(df_episode.pk), detail="case report PDF").exists()


@pdftoppm
def test_cohort_and_comparison_pdfs_render(small_demo, tmp_path):
    ids = set(Clinic.objects.values_list("pk", flat=True))
    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    one = pdf.cohort_pdf(cohort_report(CohortFilter(condition="hallux_rigidus"), clinic_ids=ids))
    two = pdf.cohort_pdf(comparison_report(CohortFilter(procedures=("bmc",)), CohortFilter(procedures=("prp",)),
                                           clinic_ids=ids))
    empty = pdf.cohort_pdf(cohort_report(CohortFilter(condition="tendinopathy"), clinic_ids=ids))
    for n, data in enumerate((one, two, empty)):
        folder = tmp_path / str(n)
        folder.mkdir()
        assert data.startswith(b"%PDF")
        assert _render(data, folder)
