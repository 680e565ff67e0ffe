"""Keyset pagination (issue 17 item 1): the patient list and the worklist page by a cursor on their sort order, not
by OFFSET. Following the next links visits every row exactly once, names that tie included; the previous links
walk back over the same pages; a tampered cursor shows the first page with a note, never a 500."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from django.urls import reverse

from orthoreg import keyset
from orthoreg.followup import selectors as followup_selectors
from orthoreg.registry.models import Patient
from tests.analytics.builders import Builder
from tests.conftest import login

LINK = re.compile(r'<a class="btn btn-small" rel="(next|prev)" href="([^"]+)"')
ROW = re.compile(r'href="/patients/(\d+)/"')


def _links(body: str) -> dict[str, str]:
    return {rel: html.unescape(href) for rel, href in LINK.findall(body)}


def _ids(body: str) -> list[int]:
    return [int(pk) for pk in ROW.findall(body)]


@pytest.fixture
def crowd(clinic, other_clinic):
    """61 patients of the clinic whose names tie in groups (same family and given name), and some of another
    clinic with the same names that must never show."""
    made = []
    for n in range(61):
        made.append(Patient.objects.create(clinic=clinic, mrn=f"K{n:03d}", given_name=f"Ann{n % 3}",
                                           family_name=f"Same{n % 4}", birth_date=dt.date(1970, 1, 1)))
    for n in range(5):
        Patient.objects.create(clinic=other_clinic, mrn=f"W{n:03d}", given_name="Ann0", family_name="Same0",
                               birth_date=dt.date(1970, 1, 1))
    return made


def test_next_links_visit_every_patient_once_in_order_and_previous_links_walk_back(clinician_client, crowd):
    url = reverse("registry:patient_list")
    pages, bodies = [], []
    body = clinician_client.get(url).content.decode()
    while True:
        bodies.append(body)
        pages.append(_ids(body))
        assert "61 patients" in body
        nxt = _links(body).get("next")
        if not nxt:
            break
        assert "page=" not in nxt
        response = clinician_client.get(url + nxt)
        assert response.status_code == 200
        body = response.content.decode()
    seen = [pk for page in pages for pk in page]
    expected = list(Patient.objects.filter(clinic=crowd[0].clinic).order_by("family_name", "given_name", "id")
                    .values_list("id", flat=True))
    assert seen == expected and len(set(seen)) == 61
    assert [len(p) for p in pages] == [25, 25, 11]
    assert "prev" not in _links(bodies[0])
    # back from the last page: the same pages, in reverse
    back = [pages[-1]]
    body = bodies[-1]
    while prev := _links(body).get("prev"):
        body = clinician_client.get(url + prev).content.decode()
        back.append(_ids(body))
    assert back == list(reversed(pages))


def test_a_search_pages_with_its_terms_kept(clinician_client, crowd):
    url = reverse("registry:patient_list")
    body = clinician_client.get(url, {"q": "same"}).content.decode()
    seen = _ids(body)
    while nxt := _links(body).get("next"):
        assert "q=same" in nxt
        body = clinician_client.get(url + nxt).content.decode()
        seen += _ids(body)
    wanted = set(Patient.objects.filter(clinic=crowd[0].clinic).values_list("id", flat=True))
    assert len(seen) == len(set(seen)) == 61 and set(seen) == wanted


@pytest.mark.parametrize("cursor", ["garbage", "", "x" * 5000, "%00", "eyJhIjoxfQ:1abc:def", "WORKLIST", "CHANGED"])
def test_a_tampered_cursor_shows_the_first_page(clinician_client, crowd, cursor):
    url = reverse("registry:patient_list")
    first = clinician_client.get(url).content.decode()
    nxt = _links(first)["next"].split("cursor=")[1]
    if cursor == "WORKLIST":  # a valid cursor of another list
        cursor = keyset.make_cursor(keyset.FORWARD, ["2025-01-01", 1, "6m"], name="worklist-due")
    elif cursor == "CHANGED":  # a real cursor with one character changed
        from urllib.parse import unquote

        real = unquote(nxt)
        cursor = real[:10] + ("A" if real[10] != "A" else "B") + real[11:]
    response = clinician_client.get(url, {"cursor": cursor})
    assert response.status_code == 200
    body = response.content.decode()
    assert _ids(body) == _ids(first)
    if cursor:
        assert "That page link was not valid" in body


def test_keyset_refuses_what_it_did_not_make():
    with pytest.raises(keyset.InvalidCursor):
        keyset.read_cursor("abc", name="patients", width=3)
    made = keyset.make_cursor(keyset.FORWARD, ["A", "B", 3], name="patients")
    assert keyset.read_cursor(made, name="patients", width=3) == (keyset.FORWARD, ["A", "B", 3])
    with pytest.raises(keyset.InvalidCursor):
        keyset.read_cursor(made, name="patients", width=2)
    with pytest.raises(keyset.InvalidCursor):
        keyset.read_cursor(made, name="worklist-due", width=3)


def test_the_worklist_pages_every_visit_once(clinic, clinician):
    builder = Builder(clinic)
    for i in range(31):  # the same index date for several episodes: due dates tie
        e = builder.episode(index_date=dt.date(2025, 1, 1) + dt.timedelta(days=i % 4))
        builder.assessment(e, "baseline", score=5)
        builder.assessment(e, "baseline", "lefs", score=40)
        builder.assessment(e, "6m", score=3)
    for tab in ("completed",):
        rows = followup_selectors.worklist(user=clinician, tab=tab)
        seen, cursor = [], None
        while True:
            page, items = followup_selectors.work_items(rows, tab=tab, cursor=cursor)
            seen.extend((item.episode_id, item.time_point) for item in items)
            assert all(len(item.assessments) >= 1 for item in items)
            if not page.has_next:
                break
            cursor = page.next_cursor
        assert len(seen) == len(set(seen)) == 62
    client = login(clinician)
    body = client.get(reverse("followup:worklist"), {"tab": "completed"}).content.decode()
    assert "62 visits" in body and 'rel="next"' in body
    nxt = _links(body)["next"]
    assert client.get(reverse("followup:worklist") + nxt).status_code == 200
    assert client.get(reverse("followup:worklist"), {"tab": "completed", "cursor": "bad"}).status_code == 200
