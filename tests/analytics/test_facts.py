"""The analytics facts kept beside the records (analytics/facts.py): whatever is written, through whichever path,
the facts a report reads after a refresh are exactly those a rebuild from scratch computes."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orthoreg import events
from orthoreg.analytics import cohorts, facts, selectors
from orthoreg.analytics.filters import CohortFilter
from orthoreg.analytics.models import (
    BaselineFact,
    EpisodeFact,
    FactsState,
    OutcomeCell,
    OutcomeFact,
    OutcomeKindCell,
    StaleEpisode,
)
from orthoreg.followup import services as followup
from orthoreg.followup.models import Assessment, WorkerRun
from orthoreg.followup.services import worker_loop
from orthoreg.instruments import services as instruments
from orthoreg.instruments.models import Response
from orthoreg.registry import services as registry
from orthoreg.registry.models import Episode, Patient

D = dt.date
AS_OF = D(2025, 12, 1)


def snapshot() -> dict:
    def rows(model):
        names = [f.attname for f in model._meta.concrete_fields]
        return sorted(model.objects.values_list(*names), key=repr)

    kept = {m.__name__: rows(m) for m in (EpisodeFact, BaselineFact, OutcomeFact)}
    for model in facts.CELLS:
        assert not model.objects.filter(n__lt=0).exists() and not model.objects.filter(oarsi__lt=0).exists()
        cells = model.objects.filter(n__gt=0)  # counts that fell to 0 may stay: they add nothing
        kept[model.__name__] = sorted(cells.values_list(*model.KEY, "time_point_order", "n", "oarsi"), key=repr)
    return kept


def assert_facts_match_a_rebuild():
    facts.refresh()
    assert not StaleEpisode.objects.exists()
    kept = snapshot()
    assert_cells_are_a_group_by_of_the_facts()
    assert_clinic_cells_match_the_facts()
    facts.rebuild_all()
    assert snapshot() == kept
    assert_cells_are_a_group_by_of_the_facts()


def assert_cells_are_a_group_by_of_the_facts():
    """The counted cells are the outcome facts grouped by clinic (OutcomeCell), by clinic and index procedure
    (OutcomeKindCell) and cell, counted here in Python from every fact."""
    kinds = dict(EpisodeFact.objects.values_list("pk", "index_kind"))
    assert all(f.index_kind == kinds[f.episode_id] for f in OutcomeFact.objects.all())
    for model in (OutcomeCell, OutcomeKindCell):
        expected: dict[tuple, list[int]] = {}
        for f in OutcomeFact.objects.all():
            answered = f.answered
            key = (f.clinic_id, *([f.index_kind] if model is OutcomeKindCell else []), f.time_point, f.instrument,
                   answered, f.converted, (not answered) and f.excused,
                   dt.date(1, 1, 1) if answered else f.window_end,
                   f.score is not None, f.score or 0.0, f.base is not None, f.base or 0.0)
            counts = expected.setdefault(key, [0, 0, f.time_point_order])
            counts[0] += 1
            counts[1] += int(f.oarsi)
        cells = {tuple(c[:-3]): [c[-2], c[-1], c[-3]] for c in model.objects.filter(n__gt=0).values_list(
            *model.KEY, "time_point_order", "n", "oarsi")}
        assert not model.objects.filter(n=0, oarsi__gt=0).exists()
        assert cells == expected, model.__name__


def assert_clinic_cells_match_the_facts():
    """A report of whole clinics reads their counted cells; any narrower cohort reads the outcome facts. Both must
    give the same table (a filter that keeps everyone forces the second path)."""
    clinic_ids = list(EpisodeFact.objects.values_list("clinic_id", flat=True).distinct())
    everyone = CohortFilter(index_from=D(1900, 1, 1))
    assert not cohorts.clinics_only(everyone) and cohorts.clinics_only(CohortFilter())
    for as_of in (D(2025, 3, 1), AS_OF, D(2031, 1, 1)):
        facts.refresh()  # what the worker (or a page, once at its top) does before reading
        by_cells = selectors.cohort_report(CohortFilter(), clinic_ids=clinic_ids, as_of=as_of, use_cache=False).document()
        facts.refresh()  # what the worker (or a page, once at its top) does before reading
        by_facts = selectors.cohort_report(everyone, clinic_ids=clinic_ids, as_of=as_of, use_cache=False).document()
        assert by_cells["time_points"] == by_facts["time_points"]
        # one index procedure in whole clinics: its cells, against its outcome facts
        for kind in EpisodeFact.objects.values_list("index_kind", flat=True).distinct():
            one = CohortFilter(procedures=(kind,))
            assert cohorts.clinics_and_kind_only(one) and not cohorts.clinics_and_kind_only(
                one.replace(index_from=D(1900, 1, 1)))
            by_cells = selectors.cohort_report(one, clinic_ids=clinic_ids, as_of=as_of, use_cache=False).document()
            by_facts = selectors.cohort_report(one.replace(index_from=D(1900, 1, 1)), clinic_ids=clinic_ids,
                                               as_of=as_of, use_cache=False).document()
            assert by_cells["time_points"] == by_facts["time_points"]


def test_a_comparison_of_treatments_reads_the_counted_cells_not_the_outcome_facts(scheduled, builder):
    episodes, _ = scheduled
    other = builder.episode(index_date=D(2025, 2, 1), kind="prp", grade=2)
    followup.episode_schedule(episode=other)
    for e in (episodes[0], other):
        op_answer(builder, e)
    facts.refresh()
    clinic_ids = [builder.clinic.pk]
    bmc, prp = CohortFilter(procedures=("bmc",)), CohortFilter(procedures=("prp",))
    with CaptureQueriesContext(connection) as read:
        tables = selectors.outcome_cells([bmc, prp], clinic_ids=clinic_ids, as_of=AS_OF, disjoint=True)
    assert not any(OutcomeFact._meta.db_table in q["sql"] for q in read.captured_queries)
    assert all(OutcomeKindCell._meta.db_table in q["sql"] for q in read.captured_queries
               if "analytics_" in q["sql"])
    assert sum(c["n"] for c in tables[0]) > sum(c["n"] for c in tables[1]) > 0
    # a combination of treatments is not a cell: counted from its facts
    with CaptureQueriesContext(connection) as read:
        selectors.outcome_cells([CohortFilter(procedures=("bmc", "prp"))], clinic_ids=clinic_ids, as_of=AS_OF)
    assert any(OutcomeFact._meta.db_table in q["sql"] for q in read.captured_queries)
    assert_facts_match_a_rebuild()


def nprs(builder, episode, time_point, score, day):
    return builder.response(episode, time_point, "nprs", score, day)


# ------------------------------------------------------------------------------------------------ the operations

def op_answer(builder, episode):
    """Answer the first open assessment through the survey service."""
    a = episode.assessments.filter(status="scheduled", instrument="nprs").order_by("time_point_order").first()
    if a is None:
        return
    followup.assessment_answer(assessment=a, answers=[3], source=Response.Source.PATIENT_LINK,
                               completed_at=dt.datetime.combine(a.due_date, dt.time(9), tzinfo=dt.UTC))


def op_convert(builder, episode):
    index = episode.procedures.get(is_index=True)
    registry.procedure_record(episode=episode, date=index.date + dt.timedelta(days=120),
                              kind="first_mtp_arthrodesis")


def op_withdraw(builder, episode):
    index = episode.procedures.get(is_index=True)
    registry.patient_update(patient=episode.patient, status=Patient.Status.WITHDRAWN,
                            status_date=index.date + dt.timedelta(days=100))


def op_die(builder, episode):
    """The patient died (the competing event of conversion: EpisodeFact.died)."""
    index = episode.procedures.get(is_index=True)
    registry.patient_update(patient=episode.patient, status=Patient.Status.DECEASED,
                            status_date=index.date + dt.timedelta(days=200))


def op_status_corrected(builder, episode):
    """A death or withdrawal recorded by mistake, taken back."""
    registry.patient_update(patient=episode.patient, status=Patient.Status.ACTIVE, status_date=None)


def op_move_index(builder, episode):
    index = episode.procedures.get(is_index=True)
    registry.procedure_record(episode=episode, instance=index, date=index.date - dt.timedelta(days=10))


def op_change_index_kind(builder, episode):
    """The index procedure was another treatment: the episode's outcomes move to that treatment's cells."""
    index = episode.procedures.get(is_index=True)
    registry.procedure_record(episode=episode, instance=index, kind="prp" if index.kind != "prp" else "bmc")


def op_regrade(builder, episode):
    index = episode.procedures.get(is_index=True)
    registry.grade_record(episode=episode, system="coughlin_shurnas", date=index.date,
                          inputs={}, grade=3)


def op_delete_response(builder, episode):
    response = Response.objects.filter(episode=episode).order_by("-pk").first()
    if response is not None:
        instruments.response_delete(response=response)


def op_cancel_time_point(builder, episode):
    open_tp = episode.assessments.filter(status="scheduled").values_list("time_point", flat=True).first()
    if open_tp:
        followup.time_point_cancel(episode=episode, time_point=open_tp, reason="declined")


def op_exam(builder, episode):
    index = episode.procedures.get(is_index=True)
    builder.exam(episode, date=index.date + dt.timedelta(days=400))


def op_change_condition(builder, episode):
    registry.episode_update(episode=episode, condition="oa_primary", icd10_code="")


def op_delete_episode(builder, episode):
    registry.record_delete(episode)


def op_staff_baseline(builder, episode):
    index = episode.procedures.get(is_index=True)
    nprs(builder, episode, "baseline", 9, index.date - dt.timedelta(days=1))


def op_adverse_event(builder, episode):
    index = episode.procedures.get(is_index=True)
    builder.adverse_event(episode, date=index.date + dt.timedelta(days=2), serious=True)


def op_delete_adverse_event(builder, episode):
    from orthoreg.registry.models import AdverseEvent

    event = AdverseEvent.objects.filter(procedure__episode=episode).first()
    if event is None:
        op_adverse_event(builder, episode)
        facts.refresh()
        event = AdverseEvent.objects.get(procedure__episode=episode)
    registry.record_delete(event)


OPS = [op_adverse_event, op_delete_adverse_event, op_answer, op_convert, op_withdraw, op_die, op_status_corrected,
       op_move_index,
       op_change_index_kind, op_regrade, op_delete_response, op_cancel_time_point,
       op_exam, op_change_condition, op_delete_episode, op_staff_baseline]


@pytest.fixture
def scheduled(builder, default_protocols):
    """Three treated episodes with their protocol's schedule, a baseline answered and one not treated."""
    episodes = []
    for n in range(3):
        e = builder.episode(index_date=D(2025, 1, 1) + dt.timedelta(days=20 * n), grade=2)
        followup.episode_schedule(episode=e)
        episodes.append(e)
    untreated = Episode.objects.create(patient=episodes[0].patient, condition="oa_primary", body_site="knee",
                                       side="left")
    return episodes, untreated


@pytest.mark.parametrize("op", OPS, ids=[o.__name__ for o in OPS])
def test_each_write_path_keeps_the_facts_exact(scheduled, builder, op):
    episodes, _ = scheduled
    op_answer(builder, episodes[0])
    assert_facts_match_a_rebuild()
    op(builder, episodes[0])
    assert StaleEpisode.objects.exists(), f"{op.__name__} queued nothing"
    assert_facts_match_a_rebuild()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 2)), min_size=1, max_size=8))
def test_any_sequence_of_writes_keeps_the_facts_exact(scheduled, builder, steps):
    episodes, _ = scheduled
    for op, which in steps:
        episode = Episode.objects.filter(pk=episodes[which].pk).first()
        if episode is None:
            continue
        op(builder, episode)
    assert_facts_match_a_rebuild()


def test_only_treated_episodes_have_facts_and_the_schedule_shows_in_them(scheduled):
    episodes, untreated = scheduled
    facts.refresh()
    assert set(EpisodeFact.objects.values_list("pk", flat=True)) == {e.pk for e in episodes}
    assert not OutcomeFact.objects.filter(episode=untreated).exists()
    for e in episodes:
        assert OutcomeFact.objects.filter(episode=e).count() == Assessment.objects.filter(episode=e).count() > 0


def test_refresh_costs_the_same_queries_for_one_or_many_episodes(builder, django_assert_num_queries):
    facts.refresh()
    counts = []
    for n in (1, 7):
        for _ in range(n):
            e = builder.episode(index_date=D(2025, 1, 1), grade=2)
            builder.assessment(e, "baseline", score=7)
            builder.assessment(e, "6m", score=3)
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as ctx:
            assert facts.refresh() == n
        counts.append(len(ctx))
    assert counts[0] == counts[1]
    with django_assert_num_queries(2):  # nothing queued: the rules stamp and the queue
        assert facts.refresh() == 0


def test_a_failed_rebuild_loses_nothing_from_the_queue(builder, monkeypatch):
    facts.refresh()
    e = builder.episode(index_date=D(2025, 1, 1))
    queued = set(StaleEpisode.objects.values_list("episode_id", flat=True))
    assert e.pk in queued

    def broken(ids, **kwargs):
        EpisodeFact.objects.filter(episode_id__in=ids).delete()
        raise RuntimeError("disk full")

    monkeypatch.setattr(facts, "rebuild", broken)
    with pytest.raises(RuntimeError):
        facts.refresh()
    assert set(StaleEpisode.objects.values_list("episode_id", flat=True)) == queued
    monkeypatch.undo()
    assert facts.refresh() == len(queued)
    assert EpisodeFact.objects.filter(pk=e.pk).exists()


def test_a_change_of_rules_rebuilds_every_fact(builder, settings):
    e = builder.episode(index_date=D(2025, 1, 1))
    builder.assessment(e, "baseline", score=8)
    builder.assessment(e, "6m", score=5)  # 37.5% better: an OARSI responder only if "high" starts at 35%
    facts.refresh()
    assert not OutcomeFact.objects.filter(oarsi=True).exists()
    settings.ORTHOREG_ANALYTICS_OARSI = {"high_relative": 0.35}
    assert facts.refresh() == 1
    assert OutcomeFact.objects.filter(oarsi=True, time_point="6m").count() == 1
    assert OutcomeCell.objects.get(time_point="6m", answered=True).oarsi == 1
    assert_facts_match_a_rebuild()


def test_facts_of_other_rules_are_replaced_not_subtracted(builder):
    """Facts written under other rules (an upgrade) never reached today's clinic counts: they are forgotten."""
    e = builder.episode(index_date=D(2025, 1, 1))
    builder.assessment(e, "baseline", score=8)
    facts.refresh()
    OutcomeCell.objects.all().delete()
    FactsState.objects.update(value="rules of an older version")
    assert facts.refresh() == 1
    assert OutcomeCell.objects.get().n == 1
    assert_facts_match_a_rebuild()


@pytest.mark.usefixtures("estimates_at_any_n")
def test_without_a_worker_a_report_page_brings_the_facts_up_to_date_at_its_top(builder, clinic):
    e = builder.episode(index_date=D(2025, 1, 1))
    builder.assessment(e, "baseline", score=8)
    assert facts.ensure_current() == 1
    first = selectors.cohort_report(CohortFilter(), clinic_ids={clinic.pk}, as_of=AS_OF, use_cache=False).document()
    assert [t["time_point"] for t in first["time_points"]] == ["baseline"]
    builder.assessment(e, "6m", score=2)
    assert facts.ensure_current() == 1
    again = selectors.cohort_report(CohortFilter(), clinic_ids={clinic.pk}, as_of=AS_OF, use_cache=False).document()
    six = next(t for t in again["time_points"] if t["time_point"] == "6m")["instruments"][0]
    assert six["responders"]["pain_50"]["numerator"] == 1


@pytest.mark.usefixtures("estimates_at_any_n")
def test_with_a_worker_running_the_worker_refreshes_and_a_report_says_when_its_facts_are_from(builder, clinic):
    e = builder.episode(index_date=D(2025, 1, 1))
    builder.assessment(e, "baseline", score=8)
    facts.refresh()
    assert facts.freshness().current
    WorkerRun.objects.create(worker="elsewhere", interval=60, finished_at=timezone.now())  # a worker loop runs
    before = timezone.now()
    builder.assessment(e, "6m", score=2)
    version = facts.version()
    assert facts.ensure_current() == 0  # the request reads what the worker produced: it does not wait
    waiting = facts.freshness()
    assert waiting.pending == 1 and not waiting.current and waiting.as_of >= before
    stale = selectors.cohort_report(CohortFilter(), clinic_ids={clinic.pk}, as_of=AS_OF, use_cache=False).document()
    assert [t["time_point"] for t in stale["time_points"]] == ["baseline"]
    worker_loop(name="test", interval=0, stop=threading.Event(), once=True)  # a pass, then the bookkeeping
    assert facts.freshness().current and facts.version() != version
    fresh = selectors.cohort_report(CohortFilter(), clinic_ids={clinic.pk}, as_of=AS_OF, use_cache=False).document()
    assert "6m" in [t["time_point"] for t in fresh["time_points"]]


def test_after_an_upgrade_the_report_says_its_facts_follow_old_rules_until_the_worker_begins(builder, clinic,
                                                                                            monkeypatch):
    """Between an upgrade that changes the rules (RULES_VERSION) and the worker's next pass, the facts are those of
    the old rules (a new table may even be empty): the report must not call them current."""
    e = builder.episode(index_date=D(2025, 1, 1))
    builder.assessment(e, "baseline", score=8)
    facts.refresh()
    assert facts.freshness().current
    WorkerRun.objects.create(worker="elsewhere", interval=60, finished_at=timezone.now())  # a worker loop runs
    monkeypatch.setattr(facts, "RULES_VERSION", facts.RULES_VERSION + 1)  # the upgrade
    assert facts.ensure_current() == 0  # the request does not rebuild: the worker will
    upgraded = facts.freshness()
    assert upgraded.rules_changed and not upgraded.current and upgraded.pending == 1
    worker_loop(name="test", interval=0, stop=threading.Event(), once=True)
    assert facts.freshness().current


def test_reads_never_refresh(builder, clinic, django_assert_num_queries):
    e = builder.episode(index_date=D(2025, 1, 1))
    builder.assessment(e, "baseline", score=8)
    cohorts.cohort_episodes(CohortFilter(), clinic_ids={clinic.pk}).count()
    assert facts.pending() == 1  # still queued: selecting a cohort is a read
    with django_assert_num_queries(1):
        selectors.data_stamp()  # the cache check: one look-up, whatever the size of the registry


def test_analytics_command_reports_and_rebuilds(builder, capsys):
    e = builder.episode(index_date=D(2025, 1, 1))
    builder.assessment(e, "baseline", score=8)
    call_command("analytics", "status")
    status = json.loads(capsys.readouterr().out)
    assert status["pending"] >= 1 and status["action"] == "status"
    call_command("analytics", "refresh", "--no-progress")
    done = json.loads(capsys.readouterr().out)
    assert done["pending"] == 0 and done["treated_episodes"] == 1 and done["outcomes"] == 1
    OutcomeFact.objects.all().delete()  # damaged by hand: a rebuild recomputes it
    call_command("analytics", "rebuild", "--no-progress")
    rebuilt = json.loads(capsys.readouterr().out)
    assert rebuilt["outcomes"] == 1 and rebuilt["episodes_rebuilt"] == 1


def test_assessments_planned_in_bulk_reach_the_facts(scheduled):
    """A re-plan (e.g. after a protocol gains a time point) bulk-creates assessments: no post_save is sent."""
    episodes, _ = scheduled
    e = episodes[1]
    last = e.assessments.order_by("-time_point_order").values_list("time_point", flat=True).first()
    e.assessments.filter(time_point=last).delete()
    events.records_changed_send(episode_ids=[e.pk])  # deleted by hand: say so, as a bulk path does
    facts.refresh()
    assert not OutcomeFact.objects.filter(episode=e, time_point=last).exists()
    assert followup.episode_schedule(episode=e).created > 0
    assert_facts_match_a_rebuild()
    assert OutcomeFact.objects.filter(episode=e, time_point=last).exists()


def test_a_rebuild_interrupted_midway_finishes_on_the_next_refresh(builder, monkeypatch):
    """A full rebuild recounts the clinic cells once the queue is empty; if it stops halfway (a crash, a killed
    command) the next refresh takes up the rest and still recounts."""
    for n in range(5):
        e = builder.episode(index_date=D(2025, 1, 1) + dt.timedelta(days=n))
        builder.assessment(e, "baseline", score=8)
        builder.assessment(e, "6m", score=n)
    facts.refresh()
    kept = snapshot()
    monkeypatch.setattr(facts, "CHUNK", 2)
    calls = []

    def stop_after_two_chunks(n):
        calls.append(n)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        facts.rebuild_all(progress=stop_after_two_chunks)
    assert StaleEpisode.objects.count() == 1 and FactsState.objects.filter(name="cells").exists()
    assert facts.refresh() == 1
    assert not FactsState.objects.filter(name="cells").exists()
    assert snapshot() == kept


def test_a_death_is_a_fact_of_the_patients_episodes(scheduled, builder):
    """EpisodeFact.died (what the competing-risk rows read) follows the patient's status both ways."""
    from orthoreg.analytics.models import EpisodeFact

    episodes, _ = scheduled
    facts.refresh()
    assert not EpisodeFact.objects.get(pk=episodes[0].pk).died
    op_die(builder, episodes[0])
    facts.refresh()
    fact = EpisodeFact.objects.get(pk=episodes[0].pk)
    assert fact.died and fact.gone_date is not None
    op_status_corrected(builder, episodes[0])
    facts.refresh()
    assert not EpisodeFact.objects.get(pk=episodes[0].pk).died
