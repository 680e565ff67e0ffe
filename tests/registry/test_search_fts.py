"""The patient search on SQLite goes through an FTS5 trigram index (registry/fts.py) for words of 3 characters or
more, and returns exactly what the plain LIKE filter returns: a property test on random names with accents,
apostrophes, quotes and mixed case, words cut from them and random words; clinic scoping unchanged. On PostgreSQL
the index does not exist and the search is the plain filter (the trigram indexes of migration 0004)."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orthoreg.registry import fts, selectors
from orthoreg.registry.models import Patient

SYLLABLES = ["an", "é", "ño", "O'", "Mc", "de la ", "ß", "ü", "Ø", "van ", "jo", "SÉ", "ç", "li", "ä", '"', "-",
             "ma", "Ï", "%", "_", "ri", "ÉT", "al", "ong", "Ő", "ka"]


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))).strip() or "X"


@pytest.fixture
def people(clinic, other_clinic):
    rng = random.Random(17)
    made = []
    for n in range(120):
        given, family = _name(rng), _name(rng)
        made.append(Patient.objects.create(
            clinic=clinic if n % 5 else other_clinic, mrn=f"{rng.choice(['MRN', 'é-', 'x'])}{n:04d}",
            given_name=given, family_name=family, email=f"{given[:3].lower()}{n}@example.org" if n % 3 else "",
            birth_date=dt.date(1970, 1, 1)))
    return made


def _plain(user, q: str) -> list[int]:
    from orthoreg.accounts import access

    qs = access.scope(Patient.objects.all(), user, access.CONTACT).filter(selectors.search_terms(q, indexed=False))
    return sorted(qs.values_list("id", flat=True))


def _searched(user, q: str) -> list[int]:
    return sorted(selectors.patient_search(user=user, q=q).values_list("id", flat=True))


def test_the_index_exists_and_is_used_on_sqlite_only(db):
    if connection.vendor == "sqlite":
        assert fts.usable("default")
        qs = Patient.objects.filter(selectors.search_terms("abc", indexed=True))
        assert "registry_patient_fts MATCH" in str(qs.query)
        sql, params = qs.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
            plan = " | ".join(str(row[-1]) for row in cursor.fetchall())
        assert "registry_patient_fts VIRTUAL TABLE" in plan, plan
    else:
        assert not fts.usable("default")


def test_fts_search_equals_the_plain_filter_on_random_names(people, clinician):
    rng = random.Random(3)
    texts = [p.given_name for p in people] + [p.family_name for p in people] + [p.mrn for p in people]

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def check(data):
        kind = data.draw(st.sampled_from(["cut", "cut", "random", "initials", "two"]))
        if kind == "cut":
            text = data.draw(st.sampled_from(texts))
            start = data.draw(st.integers(0, max(0, len(text) - 1)))
            q = text[start:start + data.draw(st.integers(1, 8))]
            if data.draw(st.booleans()):
                q = q.upper() if data.draw(st.booleans()) else q.lower()
        elif kind == "random":
            q = data.draw(st.text(alphabet=st.sampled_from(list("aeoinlrsté'\"%_-ÉØñ ")), min_size=1, max_size=7))
        elif kind == "initials":
            q = data.draw(st.sampled_from(people)).initials.lower()
        else:
            q = f"{data.draw(st.sampled_from(texts))[:4]} {data.draw(st.sampled_from(texts))[-3:]}"
        if not q.strip():
            return
        assert _searched(clinician, q) == _plain(clinician, q), q

    check()
    # and a few by hand: an apostrophe, an accent in another case, a quote, LIKE's wildcards
    for q in ["O'", "o'mc", "SÉ", "sé", 'an"', "%", "_", "de la", "mrn00", "ÉT", "ét", rng.choice(texts)]:
        assert _searched(clinician, q) == _plain(clinician, q), q


def test_the_index_follows_inserts_updates_and_deletes(clinic, clinician):
    p = Patient.objects.create(clinic=clinic, mrn="Q-1", given_name="Zoltán", family_name="Kovács",
                               birth_date=dt.date(1970, 1, 1))
    assert _searched(clinician, "ovác") == [p.pk]
    Patient.objects.filter(pk=p.pk).update(family_name="Szabó")
    assert _searched(clinician, "ovác") == [] and _searched(clinician, "zabó") == [p.pk]
    p.delete()
    assert _searched(clinician, "zabó") == []


def test_ensure_puts_back_dropped_triggers_and_rebuilds(clinic, clinician):
    if connection.vendor != "sqlite":
        pytest.skip("the FTS5 index is SQLite's")
    fts.drop(connection)
    p = Patient.objects.create(clinic=clinic, mrn="Q-2", given_name="Ilse", family_name="Grünwald",
                               birth_date=dt.date(1970, 1, 1))
    assert not fts.usable("default")
    assert _searched(clinician, "rünw") == [p.pk]  # the plain filter meanwhile
    assert fts.ensure(connection)
    assert fts.usable("default") and _searched(clinician, "rünw") == [p.pk]


def test_clinic_scoping_is_unchanged(people, clinic, other_clinic, clinician, other_clinician):
    for q in ("mrn", "ma", "é-00", "x00"):
        mine, theirs = _searched(clinician, q), _searched(other_clinician, q)
        assert set(Patient.objects.filter(pk__in=mine).values_list("clinic_id", flat=True)) <= {clinic.pk}
        assert set(Patient.objects.filter(pk__in=theirs).values_list("clinic_id", flat=True)) <= {other_clinic.pk}
        everyone = Patient.objects.filter(selectors.search_terms(q)).values_list("id", flat=True)
        assert sorted(mine + theirs) == sorted(everyone), q
