"""The worklist's completeness table is cached per scope (the user's clinics, the clinic filter, the day) under a
key any cache backend accepts: no CacheKeyWarning (memcached refuses spaces, control characters and keys over 250
characters), whatever the clinic filter holds."""

import datetime as dt
import warnings

import pytest
from django.core.cache import CacheKeyWarning

from orthoreg.accounts.models import Role
from orthoreg.followup import selectors
from orthoreg.registry import services as registry
from tests.conftest import make_user

INDEX = dt.date(2026, 1, 1)
TODAY = dt.date(2026, 9, 1)  # the 6-week, 3- and 6-month time points are due


@pytest.fixture
def planned(episode):
    registry.procedure_record(episode=episode, date=INDEX, kind="bmc", is_index=True)
    return episode


@pytest.mark.parametrize("code", ["", "east", "east clinic", "é\n\x7f", "x" * 300])
def test_completeness_key_is_portable(planned, clinician, code):
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheKeyWarning)
        first = selectors.completeness(user=clinician, clinic=code, today=TODAY)
        assert selectors.completeness(user=clinician, clinic=code, today=TODAY) == first


def test_every_scope_has_its_own_entry(planned, clinician, other_clinic, monkeypatch):
    other = make_user("elsewhere", Role.COORDINATOR, other_clinic)
    computed = []
    real = selectors._completeness

    def counting(**kwargs):
        computed.append((kwargs["user"].username, kwargs["clinic"], kwargs["today"]))
        return real(**kwargs)

    monkeypatch.setattr(selectors, "_completeness", counting)
    scopes = [(clinician, "", TODAY), (clinician, "east", TODAY), (clinician, "west", TODAY),
              (clinician, "", TODAY + dt.timedelta(days=1)), (other, "", TODAY)]
    results = [selectors.completeness(user=u, clinic=c, today=d) for u, c, d in scopes]
    assert len(computed) == len(scopes)  # no scope was served another's entry
    assert [selectors.completeness(user=u, clinic=c, today=d) for u, c, d in scopes] == results
    assert len(computed) == len(scopes)  # and each scope's entry is found again
    assert sum(row["due"] for row in results[0]) > 0  # the clinician's own clinic has due assessments
    assert sum(row["due"] for row in results[2] + results[4]) == 0  # another clinic's filter, another's user
    assert results[0] == results[1]
