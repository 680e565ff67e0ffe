"""Issue 11 item 17: "not reached" only where it means that. A survival time point past everyone's follow-up is
"no one followed this long yet" on the page and in the PDF."""

from __future__ import annotations

import datetime as dt

from django.urls import reverse
from django.utils import timezone

from orthoreg.analytics import facts, selectors
from orthoreg.analytics.filters import CohortFilter
from orthoreg.reports import pdf
from tests.analytics.builders import Builder

from .test_report_numbers import pdf_text

AS_OF = timezone.localdate()


def _six_followed_thirteen_months(clinic):
    b = Builder(clinic)
    for n in range(6):
        e = b.episode(index_date=AS_OF - dt.timedelta(days=400 + n), kind="bmc")
        b.assessment(e, "baseline", score=7)
        b.assessment(e, "6m", score=3)


def test_survival_past_everyones_follow_up_says_so(clinic, clinician_client):
    _six_followed_thirteen_months(clinic)
    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    report = selectors.cohort_report(CohortFilter(procedures=("bmc",)), clinic_ids={clinic.pk}, as_of=AS_OF)
    late = [a for a in report.survival.at if a.at_risk == 0]
    assert late, "a time point past the longest follow-up (24 months after 13)"
    page = clinician_client.get(reverse("reports:cohort"), {"procedure": "bmc", "show": "1"}).content.decode()
    text = pdf_text(pdf.cohort_pdf(report))
    for shown in (page, text):
        assert "no one followed this long yet" in shown and "not reached" not in shown

