"""Numbers the report pages, charts and PDFs print: the survival band with no conversion, the median's interval,
means of too few answers."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from pypdf import PdfReader

from orthoreg.analytics import facts, selectors, stats
from orthoreg.analytics.filters import CohortFilter
from orthoreg.reports import pdf, plots, static_html
from tests.analytics.builders import Builder

D = dt.date
AS_OF = D(2025, 9, 1)


def cohort(clinic, scores) -> dict:
    b = Builder(clinic)
    for n, score in enumerate(scores):
        e = b.episode(index_date=D(2025, 1, 1) + dt.timedelta(days=n))
        b.assessment(e, "baseline", score=9)
        b.assessment(e, "6m", score=score)
    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    return selectors.cohort_report(CohortFilter(), clinic_ids={clinic.pk}, as_of=AS_OF)


def pdf_text(data: bytes) -> str:
    return " ".join(" ".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages).split())


def test_survival_band_with_no_conversion_is_the_reported_interval(clinic):
    report = cohort(clinic, [3] * 12)  # 12 followed to 6 months, nobody converted
    s = report.survival
    assert s.events == 0
    at3 = next(a for a in s.at if a.months == 3)
    assert at3.ci_low == pytest.approx(stats.wilson(12, 12)[0], abs=1e-6)  # about 76%
    xs, ys, lows, highs = plots.survival_steps(s)
    assert xs[0] == 0 and set(ys) == {1.0} and set(highs) == {1.0}
    assert all(low == pytest.approx(at3.ci_low) for low in lows)
    figure = plots.survival_figure([("Cohort", report)])
    band = figure.axes[0].collections[0].get_paths()[0].vertices
    assert band[:, 1].min() == pytest.approx(at3.ci_low, abs=1e-6)  # drawn, not the empty [1, 1]


def test_survival_band_after_conversions_still_follows_the_table(clinic):
    """With conversions the drawn steps hold the table's survival and interval at every event time."""
    b = Builder(clinic)
    for n in range(10):
        e = b.episode(index_date=D(2025, 1, 1))
        b.assessment(e, "6m", score=3)
        if n < 3:
            b.procedure(e, date=D(2025, 2, 1) + dt.timedelta(days=10 * n), kind="cheilectomy")
    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    s = selectors.cohort_report(CohortFilter(), clinic_ids={clinic.pk}, as_of=AS_OF).survival
    xs, ys, lows, highs = plots.survival_steps(s)
    for row in s.table[1:]:
        i = max(k for k, x in enumerate(xs[:-1]) if x <= row.time / plots.DAYS_PER_MONTH)
        assert (ys[i], lows[i], highs[i]) == (row.survival, row.ci_low, row.ci_high)


def test_pdf_prints_the_median_with_its_interval(clinic):
    report = cohort(clinic, [1, 2, 3, 4, 5, 6, 7, 8])
    score = next(i for tp in report.time_points if tp.time_point == "6m" for i in tp.instruments).score
    assert (score.median, score.median_ci_low, score.median_ci_high) == (4.5, 1, 8)
    assert pdf._stat_text(score).endswith("median 4.5 (1 to 8), n=8")
    assert "median 4.5 (1 to 8), n=8" in pdf_text(pdf.cohort_pdf(report))
    assert "median 4.5 (1 to 8)" in static_html.cohort_html(report)  # as the pages already did


def test_too_few_answers_are_not_estimated_in_html_and_pdf(clinic):
    report = cohort(clinic, [0, 10, 5])  # NPRS t interval at n=3: -7.4 to 17.4
    score = next(i for tp in report.time_points if tp.time_point == "6m" for i in tp.instruments).score
    assert score.too_few and (score.mean, score.ci_low, score.ci_high) == (None, None, None)  # JSON too
    assert pdf._stat_text(score) == "too few to estimate (n=3)"
    text = pdf_text(pdf.cohort_pdf(report))
    assert "too few to estimate (n=3)" in text and "17.4" not in text and "-7.4" not in text
    html = static_html.cohort_html(report)
    assert "too few to estimate" in html
    assert not re.search(r"95% CI [−-]7\.4|17\.4", html)
