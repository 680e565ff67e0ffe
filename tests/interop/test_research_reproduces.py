"""The trust test of the research export: the cohort report recomputed from the export alone (tests/interop/
reproduce.py, pandas, no orthoreg code) matches the report the registry prints, number for number: counts, rates and
their Wilson intervals, completeness, means, medians and their intervals, responder rates (PASS included where it
applies), the change distributions (share improved by at least each threshold) with their marks, adverse events and
the Kaplan-Meier table, estimates and curve."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
from django.core.management import call_command

from orthoreg.analytics import facts, selectors
from orthoreg.analytics.filters import CohortFilter
from orthoreg.followup.models import Assessment
from orthoreg.interop import research
from orthoreg.registry.models import Grade, Patient
from orthoreg.site.synth import Generator
from tests.analytics.builders import Builder
from tests.analytics.conftest import builder, hand_cohort  # noqa: F401
from tests.interop.reproduce import load, recompute
from tests.reports.conftest import demo_cohort_size, small_demo  # noqa: F401

D = dt.date
AS_OF = D(2025, 9, 1)


def reported(report: dict) -> dict:
    """The sections of the report the export can reproduce: everything but calendar dates, labels and prose."""
    cohort = {k: v for k, v in report["cohort"].items() if k not in ("index_from", "index_to")}
    points = [{"time_point": tp["time_point"], "order": tp["order"], "instruments": tp["instruments"]}
              for tp in report["time_points"]]
    flow = [{k: v for k, v in row.items() if k != "label"} for row in report["flow"]]
    survival = {k: v for k, v in report["survival"].items() if k not in ("event", "time_unit")}
    return {"cohort": cohort, "time_points": points, "flow": flow, "adverse_events": report["adverse_events"],
            "survival": survival}


def differences(mine, theirs, path="") -> list[str]:
    """Where two JSON documents differ (paths), to say which number did not match."""
    if isinstance(theirs, dict) and isinstance(mine, dict):
        return [d for k in sorted(set(mine) | set(theirs), key=str)
                for d in differences(mine.get(k, "<missing>"), theirs.get(k, "<missing>"), f"{path}.{k}")]
    if isinstance(theirs, list) and isinstance(mine, list):
        if len(mine) != len(theirs):
            return [f"{path}: {len(mine)} items, the report has {len(theirs)}"]
        return [d for i, (m, t) in enumerate(zip(mine, theirs)) for d in differences(m, t, f"{path}[{i}]")]
    return [] if mine == theirs else [f"{path}: {mine!r}, the report has {theirs!r}"]


def assert_same(mine: dict, theirs: dict) -> None:
    found = differences(json.loads(json.dumps(mine)), json.loads(json.dumps(theirs)))
    assert not found, "\n".join(found[:20])


def test_demo_report_is_recomputed_from_the_export_alone(small_demo, tmp_path, capsys):
    call_command("report", "cohort", "--consented-only", "--format", "json")
    report = json.loads(capsys.readouterr().out)
    for fmt in ("csv", "parquet"):
        call_command("export", "research", "--format", fmt, "--out", str(tmp_path / fmt))
    capsys.readouterr()
    expected = reported(report)
    assert expected["survival"]["events"] and expected["survival"]["table"], "the demo has conversions"
    assert any(r["responders"] for tp in expected["time_points"] for r in tp["instruments"])
    assert any(r["change_distribution"] for tp in expected["time_points"] for r in tp["instruments"]), \
        "the change distributions are recomputed too"
    for fmt in ("csv", "parquet"):
        assert_same(recompute(tmp_path / fmt), expected)
    csv_tables, parquet_tables = load(tmp_path / "csv")[1], load(tmp_path / "parquet")[1]
    for name, frame in csv_tables.items():
        pd.testing.assert_frame_equal(frame, parquet_tables[name], check_dtype=True, obj=name)


@pytest.fixture
def awkward_registry(hand_cohort, clinic):
    """The hand-built cohort (death, conversion, loss, not yet due, adverse events, SANE) and what it lacks: many
    patients (synthetic), a patient with two treated episodes, grades after treatment, a withdrawal, a conversion
    after the as-of day, an assessment removed from the protocol, a staff cancellation with a date in its text, two
    baselines on one day, a function score for OMERACT-OARSI, a patient without consent."""
    Generator(clinics=[clinic], seed=11, today=AS_OF, mrn_prefix="SYN").run(60)
    b = Builder(clinic)
    b.n = 500
    first = b.episode(index_date=D(2024, 3, 1), grade=2)
    Grade.objects.create(episode=first, date=D(2024, 6, 1), system="coughlin_shurnas", grade=4)  # after treatment
    b.assessment(first, "baseline", score=8)
    b.response(first, "baseline", "nprs", 6, D(2024, 3, 1))  # same day, later: the baseline of record
    b.assessment(first, "baseline", "faam-adl", score=40)
    b.assessment(first, "6m", score=5)  # pain: not enough alone; FAAM ADL makes an OARSI responder
    b.assessment(first, "6m", "faam-adl", score=75)
    b.assessment(first, "12m", status="cancelled", reason="Patient moved away on 2024-12-01")
    b.assessment(first, "3m", status="cancelled", reason="no longer in the protocol")  # window closed: never counts
    second = first.patient.episodes.create(condition="hallux_rigidus", body_site="first_mtp", side="left")
    second.procedures.create(date=D(2025, 1, 10), kind="prp", is_index=True)
    b.assessment(second, "baseline", score=5)
    b.assessment(second, "3m", score=2)
    b.procedure(second, date=D(2025, 10, 1), kind="cheilectomy")  # after the as-of day: not an event
    gone = b.episode(index_date=D(2024, 11, 1), status="withdrawn", status_date=D(2025, 2, 1))
    b.assessment(gone, "baseline", score=7)
    b.assessment(gone, "3m", score=5)
    b.assessment(gone, "6m")  # due after the withdrawal: excused
    stranger = b.episode(index_date=D(2025, 1, 1), consent=False)
    b.assessment(stranger, "baseline", score=9)
    b.assessment(stranger, "6m", score=1)
    return {"two_episodes": first.patient, "withdrawn": gone.patient, "stranger": stranger.patient}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_awkward_registry_report_is_recomputed(awkward_registry, clinic, tmp_path, fmt):
    facts.rebuild_all()  # the fixture writes some records straight through the ORM, which marks nothing stale
    report = selectors.cohort_report(CohortFilter(consented_only=True), clinic_ids={clinic.pk}, as_of=AS_OF,
                                     use_cache=False).document()
    research.write_dir(tmp_path / "out", [clinic.pk], fmt=fmt, as_of=AS_OF)
    expected = reported(report)
    assert expected["survival"]["events"] >= 2 and expected["cohort"]["episodes"] > 60
    assert_same(recompute(tmp_path / "out"), expected)


def test_days_share_one_anchor_per_patient_and_grade_is_at_treatment(awkward_registry, clinic, tmp_path):
    research.write_dir(tmp_path / "out", [clinic.pk], fmt="csv", as_of=AS_OF)
    _, t = load(tmp_path / "out")
    patient = awkward_registry["two_episodes"]
    me = research.pseudonym("patient", patient.pk)
    row = t["patients"].set_index("patient").loc[me]
    assert (row["anchor"], row["as_of_day"], row["index_year"]) == ("first_index", (AS_OF - D(2024, 3, 1)).days, 2024)
    episodes = t["episodes"][t["episodes"]["patient"] == me].set_index("episode")
    first, second = (research.pseudonym("episode", e.pk) for e in patient.episodes.order_by("pk"))
    assert episodes.loc[first, "index_day"] == 0
    assert episodes.loc[second, "index_day"] == (D(2025, 1, 10) - D(2024, 3, 1)).days  # the interval survives
    # a conversion after the as-of day is recorded (the report censors at the as-of day)
    assert episodes.loc[second, "conversion_day"] == (D(2025, 10, 1) - D(2024, 3, 1)).days > row["as_of_day"]
    # the grade of record at treatment, not the latest grade ever
    assert (episodes.loc[first, "grade"], episodes.loc[first, "grade_system"]) == (2, "coughlin_shurnas")
    assert sorted(t["grades"][t["grades"]["episode"] == first]["grade"]) == [2, 4]
    # the latest baseline of two on the same day is the one with the higher sequence
    mine = t["responses"][(t["responses"]["episode"] == first) & (t["responses"]["time_point"] == "baseline")
                          & (t["responses"]["instrument"] == "nprs")]
    assert list(mine.sort_values("sequence")["score"]) == [8.0, 6.0]
    # cancellations are codes; staff's text (with its date) never leaves
    cancelled = t["assessments"][t["assessments"]["episode"] == first].set_index("time_point")["cancelled"]
    assert (cancelled["12m"], cancelled["3m"]) == ("staff", "not_in_protocol")
    text = "".join(p.read_text() for p in (tmp_path / "out").iterdir())
    assert "moved away" not in text and "2024-12-01" not in text
    # censoring: the withdrawal's day; no patient without consent
    gone = t["patients"].set_index("patient").loc[research.pseudonym("patient", awkward_registry["withdrawn"].pk)]
    assert (gone["status"], gone["status_day"]) == ("withdrawn", (D(2025, 2, 1) - D(2024, 11, 1)).days)
    assert research.pseudonym("patient", awkward_registry["stranger"].pk) not in set(t["patients"]["patient"])
    assert len(t["patients"]) == Patient.objects.filter(clinic=clinic, consent_registry=True).count()
    # every assessment's response is in the responses table, and the last contact is the latest of its parts
    linked = t["assessments"]["response"].dropna()
    assert set(linked) <= set(t["responses"]["response"])
    assert len(linked) == Assessment.objects.filter(patient__consent_registry=True, response__isnull=False).count()


def test_last_contact_is_recomputable_from_its_parts(awkward_registry, clinic, tmp_path):
    research.write_dir(tmp_path / "out", [clinic.pk], fmt="parquet", as_of=AS_OF)
    _, t = load(tmp_path / "out")
    treated = t["episodes"][t["episodes"]["treated"]].set_index("episode")
    last_answer = t["responses"].groupby("patient")["day"].max()
    last_exam = t["exams"].groupby("episode")["day"].max()
    last_procedure = t["procedures"].groupby("episode")["day"].max()
    gone = t["patients"].set_index("patient")["status_day"]
    parts = pd.concat([treated["index_day"], treated["patient"].map(last_answer), last_exam.reindex(treated.index),
                       last_procedure.reindex(treated.index), treated["patient"].map(gone)], axis=1)
    assert (parts.max(axis=1).astype(int) == treated["last_contact_day"].astype(int)).all()
