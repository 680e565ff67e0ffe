"""The database's responder counts agree with the same rules in Python (summaries.py), on random registries."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from django.template import Context, Template

from orthoreg.analytics import definitions as defs
from orthoreg.analytics import facts, selectors, summaries
from orthoreg.analytics.filters import CohortFilter
from orthoreg.analytics.metrics import instrument_infos

D = dt.date
AS_OF = D(2026, 1, 1)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sql_responders_equal_python_rules(builder, clinic, seed):
    rng = random.Random(seed)
    infos = instrument_infos()
    expected = {"pain_50": 0, "mcid": 0, "omeract_oarsi": 0}
    for _ in range(25):
        e = builder.episode(index_date=D(2025, 1, 1))
        pain = (rng.randint(1, 10), rng.choice([0, 0.5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]))
        builder.assessment(e, "baseline", score=pain[0])
        builder.assessment(e, "6m", score=pain[1])
        domains = {"pain": (infos["nprs"], pain[1], pain[0])}
        if rng.random() < 0.7:
            sane = (rng.randint(0, 90), rng.randint(0, 100))
            builder.assessment(e, "baseline", "sane", score=sane[0])
            builder.assessment(e, "6m", "sane", score=sane[1])
            domains["glob"] = (infos["sane"], sane[1], sane[0])
        if rng.random() < 0.6:
            adl = (round(rng.uniform(10, 90), 1), round(rng.uniform(10, 100), 1))
            builder.response(e, "baseline", "faam-adl", adl[0], D(2025, 1, 1))
            builder.response(e, "6m", "faam-adl", adl[1], D(2025, 7, 1))
            domains["function"] = (infos["faam-adl"], adl[1], adl[0])
        expected["pain_50"] += summaries.pain_50_met(pain[1], pain[0])
        expected["mcid"] += summaries.mcid_met(infos["nprs"], pain[1], pain[0])
        expected["omeract_oarsi"] += summaries.oarsi_met(domains["pain"], domains.get("function"),
                                                          domains.get("glob"))
    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    report = selectors.cohort_report(CohortFilter(), clinic_ids={clinic.pk}, as_of=AS_OF, use_cache=False).document()
    six = next(t for t in report["time_points"] if t["time_point"] == "6m")
    nprs = next(i for i in six["instruments"] if i["instrument"] == "nprs")
    for code, count in expected.items():
        assert nprs["responders"][code]["numerator"] == count, code
        assert nprs["responders"][code]["denominator"] == 25


@pytest.mark.usefixtures("estimates_at_any_n")
def test_oarsi_thresholds_are_configurable(builder, clinic, settings):
    e = builder.episode(index_date=D(2025, 1, 1))
    builder.assessment(e, "baseline", score=8)
    builder.assessment(e, "6m", score=5)  # 3 points = 37.5%: not "high" (50%)
    base = dict(clinic_ids={clinic.pk}, as_of=AS_OF, use_cache=False)

    def oarsi():
        facts.refresh()  # what the worker (or a page, once at its top) does before reading
        report = selectors.cohort_report(CohortFilter(), **base).document()
        six = next(t for t in report["time_points"] if t["time_point"] == "6m")
        return six["instruments"][0]["responders"]["omeract_oarsi"]["numerator"]

    assert oarsi() == 0
    settings.ORTHOREG_ANALYTICS_OARSI = {"high_relative": 0.35}
    assert defs.oarsi_thresholds()["high_relative"] == 0.35
    assert oarsi() == 1
    settings.ORTHOREG_ANALYTICS_OARSI = {"nonsense": 1}
    with pytest.raises(ValueError):
        defs.oarsi_thresholds()


def test_unscored_and_invalid_answers(builder, clinic):
    e = builder.episode(index_date=D(2025, 1, 1))
    builder.assessment(e, "baseline", score=8)
    builder.assessment(e, "6m", score=3, scored=False)  # answered, no valid score
    facts.refresh()  # what the worker (or a page, once at its top) does before reading
    report = selectors.cohort_report(CohortFilter(), clinic_ids={clinic.pk}, as_of=AS_OF, use_cache=False).document()
    six = next(t for t in report["time_points"] if t["time_point"] == "6m")["instruments"][0]
    assert (six["eligible"], six["responded"], six["scored"]) == (1, 1, 0)
    assert six["responders"]["pain_50"]["denominator"] == 0 and six["responders"]["pain_50"]["unknown"] == 1


def test_clinic_glance_tag(builder, clinic, clinician, coordinator):
    e = builder.episode(index_date=D(2025, 1, 1))
    builder.assessment(e, "baseline", score=8)
    builder.assessment(e, "6m", score=2)
    facts.refresh()
    template = Template("{% load analytics_tags %}{% clinic_glance glance %}")
    html = template.render(Context({"glance": selectors.clinic_glance(clinician)}))
    assert "Outcomes at a glance" in html and "East Clinic" in html and "treated" in html
    assert selectors.clinic_glance(coordinator) is None  # no research capability: nothing shown
    assert "Outcomes at a glance" not in template.render(Context({"glance": None}))
