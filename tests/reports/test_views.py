"""The report pages over HTTP: who may see what, bad filters, charts, downloads, public pages."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from django.utils import timezone

from orthoreg.accounts.models import AuditEvent
from orthoreg.analytics import facts
from orthoreg.followup.models import WorkerRun
from orthoreg.registry.models import Patient
from tests.conftest import login

COHORT = reverse("reports:cohort")


def test_login_required(client, registry):
    for url in (COHORT, reverse("reports:cohort_pdf"), reverse("reports:cohort_json"),
                reverse("reports:cohort_chart", args=["survival", "svg"]),
                reverse("reports:case", args=[registry["mine"][0].pk])):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url


def test_cohort_page_for_a_researcher_shows_aggregates_only(researcher, registry):
    client = login(researcher)
    page = client.get(COHORT, {"condition": "hallux_rigidus", "show": "1"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "Responders per time point" in html and "Free of conversion to surgery" in html
    assert "6 months" in html and "worst case" in html
    for p in Patient.objects.all():
        assert p.mrn not in html and p.family_name not in html and p.given_name not in html
    assert "style=" not in html and "<script>" not in html  # Content-Security-Policy: no inline style or script
    assert page["Cache-Control"] == "private, no-store"


def test_cohort_page_scopes_to_the_users_clinics(researcher, registry):
    report = login(researcher).get(reverse("reports:cohort_json"), {"condition": "hallux_rigidus"}).json()
    assert report["cohort"]["episodes"] == 6  # the other clinic's episode is not counted


def test_first_visit_shows_the_form_only(clinician_client, registry):
    page = clinician_client.get(COHORT)
    assert page.status_code == 200
    assert b"Show outcomes" in page.content and b"Responders per time point" not in page.content


@pytest.mark.parametrize("query", [{"grade_min": "9"}, {"procedure": "magic"}, {"index_from": "yesterday"},
                                   {"grade_min": "3", "grade_max": "1"}, {"also": "prp"}, {"vs_age_min": "-1"}])
def test_bad_filters_answer_400_with_the_message(clinician_client, registry, query):
    page = clinician_client.get(COHORT, query)
    assert page.status_code == 400
    assert b'class="errorlist nonfield"' in page.content
    chart = clinician_client.get(reverse("reports:cohort_chart", args=["flow", "svg"]), query)
    assert chart.status_code == 400 and chart.content.startswith(b"Bad filters: ")
    assert clinician_client.get(reverse("reports:cohort_pdf"), query).status_code == 400
    assert clinician_client.get(reverse("reports:cohort_json"), query).status_code == 400


def test_roles_without_research_get_404(coordinator, auditor, registry):
    for user in (coordinator, auditor):
        assert login(user).get(COHORT).status_code == 404


@pytest.mark.parametrize("name", ["trajectory", "change", "responders", "responders_over_time", "survival", "flow"])
def test_charts(clinician_client, registry, name):
    svg = clinician_client.get(reverse("reports:cohort_chart", args=[name, "svg"]),
                               {"procedure": "bmc", "vs_sex": "female"})
    assert svg.status_code == 200 and svg["Content-Type"] == "image/svg+xml"
    assert svg.content.lstrip().startswith(b"<?xml") and b"<svg" in svg.content
    assert "unsafe-inline" in svg["Content-Security-Policy"]
    png = clinician_client.get(reverse("reports:cohort_chart", args=[name, "png"]))
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


def test_unknown_chart_is_404(clinician_client, registry):
    assert clinician_client.get(reverse("reports:cohort_chart", args=["pie", "svg"])).status_code == 404
    assert clinician_client.get(reverse("reports:cohort_chart", args=["flow", "gif"])).status_code == 404


def test_comparison_page(clinician_client, registry):
    page = clinician_client.get(COHORT, {"procedure": "bmc", "sex": "male", "vs_sex": "female", "show": "1"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "Differences (A minus B)" in html and "not a randomized trial" in html
    assert "no log-rank test (too few treated in a cohort)" in html  # 3 men vs 3 women: the small-number rule


def test_the_page_says_how_current_its_figures_are(clinician_client, registry, monkeypatch):
    html = clinician_client.get(COHORT, {"show": "1"}).content.decode()
    assert "Figures from every record up to" in html
    WorkerRun.objects.create(worker="elsewhere", interval=60, finished_at=timezone.now())  # the worker's job
    monkeypatch.setattr(facts, "RULES_VERSION", facts.RULES_VERSION + 1)  # an upgrade the worker has not seen
    html = clinician_client.get(COHORT, {"show": "1"}).content.decode()
    assert "The figures are being recomputed by the worker under new rules" in html
    assert "Figures from every record" not in html


def test_downloads_are_audited(clinician_client, clinician, registry):
    pdf = clinician_client.get(reverse("reports:cohort_pdf"), {"condition": "hallux_rigidus"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert "attachment" in pdf["Content-Disposition"]
    data = clinician_client.get(reverse("reports:cohort_json"), {"condition": "hallux_rigidus"})
    report = json.loads(data.content)
    assert report["schema"] == "orthoreg.cohort-report/1"
    exports = AuditEvent.objects.filter(action="export", user=clinician)
    assert exports.count() == 2 and all("cohort report" in e.detail for e in exports)


def test_case_report_of_another_clinic_is_404(clinician_client, registry):
    theirs = registry["theirs"]
    for name in ("case", "case_pdf", "case_images"):
        assert clinician_client.get(reverse(f"reports:{name}", args=[theirs.pk])).status_code == 404
    assert clinician_client.get(reverse("reports:case", args=[999999])).status_code == 404


def test_case_report_needs_the_clinical_role(researcher, registry):
    assert login(researcher).get(reverse("reports:case", args=[registry["mine"][0].pk])).status_code == 404


def test_case_report_of_a_plain_episode(clinician_client, clinician, registry):
    episode = registry["mine"][0]
    page = clinician_client.get(reverse("reports:case", args=[episode.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "one responder, not evidence" in html and "What similar patients experienced" in html
    assert b"style=" not in page.content
    assert AuditEvent.objects.filter(action="view", user=clinician, object_id=str(episode.pk)).exists()
    assert clinician_client.get(reverse("reports:case_images", args=[episode.pk])).status_code == 404


def test_public_pages_show_only_opted_in_clinics_with_small_cells_hidden(client, registry, clinic, other_clinic):
    assert b"No clinic publishes" in client.get(reverse("reports:public_index")).content
    clinic.public_outcomes = True
    clinic.save()
    index = client.get(reverse("reports:public_index"))
    assert index.status_code == 200 and b"Hallux rigidus" in index.content
    page = client.get(reverse("reports:public_outcomes", args=["first_mtp", "hallux_rigidus"]))
    html = page.content.decode()
    assert page.status_code == 200 and "East Clinic" in html and "West Clinic" not in html
    assert "&lt;5" in html and "too few" in html  # 6 treated; 5 answered: no rate is shown
    for p in Patient.objects.all():
        assert p.mrn not in html and p.family_name not in html
    chart = client.get(reverse("reports:public_chart", args=["first_mtp", "hallux_rigidus"]))
    assert chart.status_code == 200 and chart["Content-Type"] == "image/svg+xml"
    assert client.get(reverse("reports:public_outcomes", args=["knee", "gout"])).status_code == 404
    empty = client.get(reverse("reports:public_outcomes", args=["knee", "oa_primary"]))
    assert empty.status_code == 200 and b"has treated this yet" in empty.content


def test_public_pages_count_consented_patients_only(client, registry, clinic):
    clinic.public_outcomes = True
    clinic.save()
    Patient.objects.filter(clinic=clinic).update(consent_registry=False)
    page = client.get(reverse("reports:public_outcomes", args=["first_mtp", "hallux_rigidus"]))
    assert b"has treated this yet" in page.content
    assert b"Hallux rigidus" not in client.get(reverse("reports:public_index")).content


def test_analytics_address_leads_to_the_cohort_report(clinician_client, coordinator, client):
    response = clinician_client.get("/analytics/?condition=hallux_rigidus")
    assert response.status_code == 302 and response["Location"] == f"{COHORT}?condition=hallux_rigidus"
    assert login(coordinator).get("/analytics/").status_code == 404
    assert "/accounts/login/" in client.get("/analytics/")["Location"]


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

NAMES = ["clinic", "condition", "site", "side", "grade_min", "grade_max", "procedure", "also", "within_days",
         "age_min", "age_max", "sex", "index_from", "index_to", "vs_procedure", "vs_grade_min", "show", "other"]
VALUES = st.one_of(st.sampled_from(["", "1", "-1", "4", "99", "bmc", "prp", "hallux_rigidus", "knee", "female",
                                    "2025-01-01", "2025-02-30", "east", "west", "x" * 300, "1e9", "null"]),
                   st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                           max_size=12))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(query=st.lists(st.tuples(st.sampled_from(NAMES), VALUES), max_size=6))
def test_cohort_page_never_fails(clinician_client, registry, query):
    from urllib.parse import urlencode

    response = clinician_client.get(f"{COHORT}?{urlencode(query)}")
    assert response.status_code in (200, 400)
