"""Fixtures of the analytics tests: a builder of exact registries and the hand-built 10-patient cohort."""

from __future__ import annotations

import datetime as dt

import pytest

from .builders import Builder

D = dt.date


@pytest.fixture
def builder(clinic):
    return Builder(clinic)


AS_OF = D(2025, 9, 1)
INDEX = D(2025, 1, 1)


@pytest.fixture
def hand_cohort(builder):
    """Ten patients with hallux rigidus treated with bone marrow concentrate (see test_hand_cohort.py for every
    number this makes). NPRS at baseline and 6 months (due 2025-07-01); SANE for P4 and P5."""
    b = builder
    eps = {}

    def patient(name, base, six=None, *, sex="female", index=INDEX, **kwargs):
        e = b.episode(index_date=index, sex=sex, **kwargs)
        b.assessment(e, "baseline", score=base)
        eps[name] = e
        return e

    p1 = patient("P1", 8)
    b.assessment(p1, "6m", score=2)
    b.adverse_event(p1, date=D(2025, 1, 3), serious=True)
    p2 = patient("P2", 6)
    b.assessment(p2, "6m", score=3)
    b.adverse_event(p2, date=D(2025, 1, 2))
    b.assessment(patient("P3", 5, sex="male"), "6m", score=4)
    p4 = patient("P4", 10)
    b.assessment(p4, "6m", score=7)
    b.assessment(p4, "baseline", "sane", score=40)
    b.assessment(p4, "6m", "sane", score=60)
    p5 = patient("P5", 3, sex="male")
    b.assessment(p5, "6m", score=2)
    b.assessment(p5, "baseline", "sane", score=50)
    b.assessment(p5, "6m", "sane", score=55)
    p6 = patient("P6", 7)  # lost to follow-up: never answered at 6 months
    b.assessment(p6, "6m")
    b.exam(p6, date=D(2025, 2, 15))
    p7 = patient("P7", 6, sex="male")  # fused before 6 months
    b.procedure(p7, date=D(2025, 5, 1), kind="first_mtp_arthrodesis")
    b.assessment(p7, "6m", status="cancelled", reason="converted to surgery")
    p8 = patient("P8", 7, status="deceased", status_date=D(2025, 3, 1))  # died before 6 months
    b.assessment(p8, "6m", status="cancelled", reason="patient deceased on 01 Mar 2025")
    p9 = patient("P9", 6, index=D(2025, 6, 1))  # treated later: 6 months not yet due
    b.assessment(p9, "6m")
    b.exam(p9, date=D(2025, 7, 15))
    p10 = patient("P10", 8, sex="male")  # no better at 6 months, fused after
    b.assessment(p10, "6m", score=8)
    b.procedure(p10, date=D(2025, 8, 15), kind="first_mtp_arthrodesis")
    return eps
