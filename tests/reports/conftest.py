"""Fixtures of the report tests: the demo (DF and a small cohort), a small exact registry, empty caches."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from orthoreg.site import demo
from tests.analytics.builders import Builder
from tests.conftest import login

D = dt.date



@pytest.fixture
def demo_cohort_size():
    """Synthetic patients beside DF in the demo fixture; a module that needs the demo's whole cohort (DF's similar
    patients estimated, 5 or more at each time point) overrides this with None."""
    return 40


@pytest.fixture
def small_demo(db, monkeypatch, settings, tmp_path, demo_cohort_size):
    settings.DATA_DIR = tmp_path
    if demo_cohort_size is not None:
        monkeypatch.setattr(demo, "COHORT_PATIENTS", demo_cohort_size)
    monkeypatch.setenv("ORTHOREG_DEMO_PASSWORD", "demo-pass-123")
    call_command("demo", "--no-serve")


@pytest.fixture
def df_episode(small_demo):
    from orthoreg.registry.models import Episode

    return Episode.objects.get(patient__mrn=demo.DF_MRN, condition="hallux_rigidus")


@pytest.fixture
def demo_client(small_demo):
    return login(get_user_model().objects.get(username="clinician"))


@pytest.fixture
def registry(clinic, other_clinic):
    """A few treated episodes in each clinic, answered at baseline and 6 months (index 1 Jan 2025)."""
    b = Builder(clinic)
    episodes = []
    for n, (base, six) in enumerate([(8, 2), (7, 5), (6, 3), (9, 9), (5, None), (7, 1)]):
        e = b.episode(index_date=D(2025, 1, 1) + dt.timedelta(days=n), sex="female" if n % 2 else "male", grade=2)
        b.assessment(e, "baseline", score=base)
        b.assessment(e, "6m", score=six)
        episodes.append(e)
    theirs = b.episode(index_date=D(2025, 1, 1), clinic=other_clinic)
    b.assessment(theirs, "baseline", score=7)
    return {"mine": episodes, "theirs": theirs}
