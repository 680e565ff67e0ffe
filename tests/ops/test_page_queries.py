"""The pages a clinic network lives in cost a fixed number of queries, whatever the number of patients and events
(issue 17 item 1): counted through HTTP on a small registry and on one ten times larger, and bounded."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orthoreg.analytics import facts
from orthoreg.registry.models import Exam, Grade, Note, Procedure
from tests.analytics.builders import Builder
from tests.conftest import login

D = dt.date


def queries(client, url: str) -> int:
    """The queries of a page as a user sees it the second time (the first fills per-session caches)."""
    client.get(url)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    return len(ctx.captured_queries)


def next_link(client, url: str) -> str:
    """The first page's link to the next (a keyset cursor)."""
    body = client.get(url).content.decode()
    return html.unescape(re.search(r'rel="next" href="([^"]+)"', body).group(1))  # type: ignore[union-attr]


def grow(builder: Builder, n: int) -> None:
    for i in range(n):
        e = builder.episode(index_date=D(2025, 1, 1) + dt.timedelta(days=i), grade=2)
        builder.assessment(e, "baseline", score=7)
        builder.assessment(e, "6m", score=3)


def events(episode, n: int) -> None:
    """n more dated events on one episode: procedures, exams, grades and notes in turn."""
    for i in range(n):
        day = D(2024, 1, 1) + dt.timedelta(days=i)
        kind = i % 4
        if kind == 0:
            Procedure.objects.create(episode=episode, date=day, kind="prp")
        elif kind == 1:
            Exam.objects.create(episode=episode, date=day)
        elif kind == 2:
            Grade.objects.create(episode=episode, date=day, system="coughlin_shurnas", grade=2)
        else:
            Note.objects.create(episode=episode, date=day, text=f"note {i}")


@pytest.fixture
def builder(clinic):
    return Builder(clinic)


def test_patient_list_and_search(builder, clinician):
    client = login(clinician)
    grow(builder, 3)
    small = [queries(client, reverse("registry:patient_list")),
             queries(client, reverse("registry:patient_list") + "?q=Family2"),
             queries(client, reverse("registry:patient_list") + "?q=T-0002")]
    grow(builder, 30)
    large = [queries(client, reverse("registry:patient_list")),
             queries(client, reverse("registry:patient_list") + "?q=Family2"),
             queries(client, reverse("registry:patient_list") + "?q=T-0002"),
             queries(client, reverse("registry:patient_list") + next_link(client, reverse("registry:patient_list")))]
    assert large[:3] == small
    assert max(large) <= 15


def test_patient_page_with_fifty_events(builder, clinician):
    client = login(clinician)
    e = builder.episode(index_date=D(2025, 1, 1), grade=2)
    url = reverse("registry:patient_detail", args=[e.patient_id])
    events(e, 5)
    few = queries(client, url)
    events(e, 45)
    many = queries(client, url)
    assert many == few and many <= 40


def test_worklist(builder, clinician):
    client = login(clinician)
    grow(builder, 3)
    small = queries(client, reverse("followup:worklist"))
    grow(builder, 30)
    assert queries(client, reverse("followup:worklist")) == small <= 30


def test_cohort_page(builder, clinician, settings):
    client = login(clinician)
    grow(builder, 3)
    facts.refresh()
    url = reverse("reports:cohort") + "?show=1"
    small = queries(client, url)
    grow(builder, 30)
    facts.refresh()
    assert queries(client, url) == small <= 30
