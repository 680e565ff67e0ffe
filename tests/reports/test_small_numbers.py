"""The small-number rule (analytics.summaries.too_few, fewer than 5): a cohort of 7 of whom one answered at 24 months
gets no 24-month point, no "100% responders (1/1)" and no A-B difference for a cohort of 1-3, in the JSON, the page,
the charts and the PDF; just the count and "too few"."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.urls import reverse
from django.utils import timezone

from orthoreg.analytics import facts, selectors, summaries
from orthoreg.analytics.filters import CohortFilter
from orthoreg.instruments.charts import render
from orthoreg.reports import pdf, plots, static_html
from tests.analytics.builders import Builder

from .test_report_numbers import pdf_text

AS_OF = timezone.localdate()
INDEX = AS_OF - dt.timedelta(days=800)  # 24 months due for everyone


@pytest.fixture
def seven(clinic):
    """7 treated with bone marrow concentrate, all answered at 6 months; only one of them at 24 months (pain 0);
    3 more treated with prolotherapy."""
    b = Builder(clinic)
    for n in range(7):
        e = b.episode(index_date=INDEX + dt.timedelta(days=n), kind="bmc")
        b.assessment(e, "baseline", score=8)
        b.assessment(e, "6m", score=3 + n % 3)
        b.assessment(e, "24m", score=0 if n == 0 else None)
    for _n in range(3):
        e = b.episode(index_date=INDEX, kind="prolotherapy")
        b.assessment(e, "baseline", score=7)
        b.assessment(e, "6m", score=2)
    return clinic


def _row(report, time_point):
    tp = next(t for t in report["time_points"] if t["time_point"] == time_point)
    return next(i for i in tp["instruments"] if i["instrument"] == "nprs")


def test_no_estimate_from_one_patient_in_the_report(seven):
    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    report = selectors.cohort_report(CohortFilter(procedures=("bmc",)), clinic_ids={seven.pk}, as_of=AS_OF).document()
    late = _row(report, "24m")
    assert late["responded"] == 1 and late["score"]["n"] == 1 and late["score"]["too_few"]
    assert all(late["score"][k] is None for k in summaries.SUMMARY_ESTIMATES)
    assert all(late["change"][k] is None for k in summaries.SUMMARY_ESTIMATES)
    for r in late["responders"].values():
        if r["denominator"] < 5:
            assert r["too_few"] and r["rate"] is None and r["numerator"] is None and r["worst_case_rate"] is None
    six = _row(report, "6m")
    assert not six["score"]["too_few"] and six["score"]["mean"] == pytest.approx(4 - 1 / 7, abs=1e-6)
    # Survival: no estimate once fewer than 5 are still followed, and the curve stops there.
    s = report["survival"]
    assert all(a["survival"] is None for a in s["at"] if a["at_risk"] < 5)
    assert all(p["at_risk"] >= 5 for p in s["curve"])
    assert s["curve"][-1]["time"] <= s["estimable_until_days"] < s["max_follow_up_days"]


def test_charts_draw_no_point_for_too_few(seven):
    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    report = selectors.cohort_report(CohortFilter(procedures=("bmc",)), clinic_ids={seven.pk}, as_of=AS_OF)
    cohorts = [("Cohort", report)]
    for measure in ("score", "change"):
        fig = plots.trajectory_figure(cohorts, measure=measure)
        drawn = [x for line in fig.axes[0].lines if line.get_label().startswith("Cohort")
                 for x in line.get_xdata()]
        assert 6 in drawn and 24 not in drawn, measure
        texts = [t.get_text() for ax in fig.axes for t in ax.texts]
        assert "1 (too few)" in texts and "7" in texts  # the count stays, under the axis
    fig = plots.responders_over_time_figure(cohorts)
    xs = [x for line in fig.axes[0].lines for x in line.get_xdata()]
    assert xs and max(xs) < 24
    fig = plots.survival_figure(cohorts)
    curve = fig.axes[0].lines[0].get_xdata()
    assert max(curve) * plots.DAYS_PER_MONTH <= report.survival.estimable_until_days + 1e-6
    # A cohort of 3: no bar, the count.
    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    small = selectors.cohort_report(CohortFilter(procedures=("prolotherapy",)), clinic_ids={seven.pk}, as_of=AS_OF)
    fig = plots.responder_figure([("Cohort", small)])
    assert not fig.axes[0].patches
    assert any("too few to estimate (n=3)" in t.get_text() for t in fig.axes[0].texts)
    svg = render(plots.survival_figure([("Cohort", small)]), "svg")
    assert b"<svg" in svg


def test_no_difference_for_a_cohort_of_three(seven):
    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    typed = selectors.comparison_report(CohortFilter(procedures=("bmc",)), CohortFilter(procedures=("prolotherapy",)),
                                        clinic_ids={seven.pk}, as_of=AS_OF)
    report = typed.document()
    six = next(d for d in report["differences"] if d["time_point"] == "6m")
    assert six["responders"] and all(x["too_few"] and x["difference"] is None for x in six["responders"].values())
    assert six["mean_change"]["too_few"] and six["mean_change"]["difference"] is None
    ae = report["differences"][-1]["adverse_events"]
    assert all(x["difference"] is None and x["too_few"] for x in ae.values())
    assert report["survival_test"] is None
    html = static_html.cohort_html(typed)
    assert "too few" in html and "+" not in html.split("Differences (A minus B)")[1].split("</table>")[0]
    text = pdf_text(pdf.cohort_pdf(typed))
    assert "too few" in text and "no log-rank test (too few treated in a cohort)" in text


def test_pages_pdf_and_api_say_too_few(seven, clinician_client):
    params = {"procedure": "bmc", "show": "1"}
    page = clinician_client.get(reverse("reports:cohort"), params).content.decode()
    assert "too few to estimate" in page and "n=1" in page and "1/1" not in page
    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    report = selectors.cohort_report(CohortFilter(procedures=("bmc",)), clinic_ids={seven.pk}, as_of=AS_OF)
    text = pdf_text(pdf.cohort_pdf(report))
    assert "too few to estimate (n=1)" in text and "1/1" not in text
    api = clinician_client.get("/api/v1/cohorts/report", {"procedure": "bmc"})
    assert api.status_code == 200, api.content
    data = json.loads(api.content)
    late = _row(data, "24m")
    assert late["score"]["too_few"] and late["score"]["mean"] is None
    assert all(r["numerator"] is None for r in late["responders"].values() if r["denominator"] < 5)
