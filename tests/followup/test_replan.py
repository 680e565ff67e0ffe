"""A protocol save re-plans in bounded batches, each its own transaction, done by the worker and resumable; the
protocol page shows the progress; protocol_save takes cleaned data."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from orthoreg.followup import selectors, services
from orthoreg.followup.models import Assessment, Protocol, ReplanJob, WorkerRun
from orthoreg.registry import services as registry
from orthoreg.registry.models import Episode, Patient
from tests.conftest import login


@pytest.fixture
def toes(clinic):
    """Three treated hallux rigidus episodes and the clinic's own copy of the network protocol they follow."""
    episodes = []
    for i in range(3):
        patient = Patient.objects.create(clinic=clinic, mrn=f"R{i}", given_name="P", family_name=f"N{i}",
                                         birth_date=dt.date(1970, 1, 1))
        episode = Episode.objects.create(patient=patient, body_site="first_mtp", side="right",
                                         condition="hallux_rigidus")
        registry.procedure_record(episode=episode, date=timezone.localdate() - dt.timedelta(days=30), kind="bmc",
                                  is_index=True)
        episodes.append(episode)
    network = Protocol.objects.get(clinic=None, condition="hallux_rigidus")
    own = services.protocol_copy_for_clinic(protocol=network, clinic=clinic)
    return episodes, own


def _time_points(protocol, delete=()):
    return [{**{name: getattr(tp, name) for name in services.TIME_POINT_FIELDS}, "pk": tp.pk,
             "delete": tp.label in delete} for tp in protocol.time_points.all()]


def _sixty_months(status):
    """Episodes with a 60-month questionnaire in this status."""
    return Assessment.objects.filter(time_point="60m", status=status).values("episode").distinct().count()


def test_a_large_save_is_queued_and_the_worker_replans_it_in_batches(toes):
    episodes, own = toes
    protocol, job = services.protocol_save(protocol=own, fields={"name": "Ours"},
                                           time_points=_time_points(own, delete=("60m",)), replan_inline=2)
    assert protocol.name == "Ours" and not protocol.time_points.filter(label="60m").exists()
    assert (job.status, job.total, job.done) == ("pending", 3, 0)
    assert _sixty_months("scheduled") == 3  # the save itself re-planned nothing
    assert services.replan_step(batch=2, seconds=None) == 2
    job.refresh_from_db()
    assert (job.status, job.done, job.last_episode_id) == ("pending", 2, episodes[1].pk)
    assert _sixty_months("cancelled") == 2 and _sixty_months("scheduled") == 1
    run = services.worker_pass(worker="t")
    job.refresh_from_db()
    assert run.replanned == 1 and (job.status, job.done) == ("done", 3)
    assert _sixty_months("scheduled") == 0
    assert Assessment.objects.filter(time_point="24m", status="scheduled", protocol=own).values(
        "episode").distinct().count() == 3


def test_a_small_save_is_replanned_at_once(toes):
    _, own = toes
    _, job = services.protocol_save(protocol=own, fields={}, time_points=_time_points(own, delete=("60m",)))
    assert (job.status, job.done) == ("done", 3) and _sixty_months("cancelled") == 3


def test_a_failed_batch_rolls_back_alone_and_the_job_resumes_where_it_was(toes, monkeypatch):
    episodes, own = toes
    _, job = services.protocol_save(protocol=own, fields={}, time_points=_time_points(own, delete=("60m",)),
                                    replan_inline=0)
    assert services.replan_step(batch=2, seconds=None) == 2
    real = services.episode_schedule

    def crash(*, episode):
        real(episode=episode)
        raise RuntimeError("worker stopped")

    monkeypatch.setattr(services.schedule, "episode_schedule", crash)
    with pytest.raises(RuntimeError):
        services.replan_step(batch=2, seconds=None)
    job.refresh_from_db()
    assert (job.done, job.last_episode_id) == (2, episodes[1].pk)
    assert Assessment.objects.filter(episode=episodes[2], time_point="60m", status="scheduled").exists()
    monkeypatch.setattr(services.schedule, "episode_schedule", real)
    assert services.replan_run() == 1
    job.refresh_from_db()
    assert (job.status, job.done) == ("done", 3) and _sixty_months("scheduled") == 0


def test_a_new_save_supersedes_an_unfinished_replan(toes):
    _, own = toes
    _, first = services.protocol_save(protocol=own, fields={}, time_points=_time_points(own), replan_inline=0)
    _, second = services.protocol_save(protocol=own, fields={}, time_points=_time_points(own, delete=("60m",)),
                                       replan_inline=0)
    first.refresh_from_db()
    assert first.status == "superseded" and second.status == "pending"
    assert services.replan_run() == 3
    assert list(ReplanJob.objects.filter(status="pending")) == [] and _sixty_months("cancelled") == 3


def test_bad_time_points_save_nothing(toes):
    _, own = toes
    rows = _time_points(own)
    rows[0]["instruments"] = ["no-such-instrument"]
    with pytest.raises(services.ValidationError):
        services.protocol_save(protocol=own, fields={"name": "Changed"}, time_points=rows)
    own.refresh_from_db()
    assert own.name != "Changed" and not ReplanJob.objects.exists()


def test_the_edit_page_leaves_a_large_replan_to_the_worker_and_the_list_shows_progress(toes, coordinator,
                                                                                       monkeypatch):
    from tests.followup.test_scheduling import edit_page_data

    _, own = toes
    monkeypatch.setattr(services.protocols, "REPLAN_INLINE", 1)
    client = login(coordinator)
    saved = client.post(reverse("followup:protocol_edit", args=[own.pk]),
                        edit_page_data(client, own, delete=("60m",)), follow=True)
    page = saved.content.decode()
    assert "Re-planning 3 episodes in the background" in page
    assert "No worker has run recently" in page  # nothing says it will happen soon when no worker runs
    assert "0 of 3 episodes (0%) re-planned by the worker" in page
    assert _sixty_months("scheduled") == 3
    services.worker_pass(worker="t", interval=60)
    page = client.get(reverse("followup:protocol_list")).content.decode()
    assert "re-planned by the worker" not in page and _sixty_months("cancelled") == 3


def test_the_worker_eta_is_only_promised_while_a_worker_runs(db):
    now = timezone.now()
    assert selectors.next_worker_pass(now) is None
    assert selectors.worker_eta_text(now=now).startswith("No worker has run recently")
    WorkerRun.objects.create(worker="once", started_at=now, finished_at=now, interval=None)  # a single pass
    assert selectors.next_worker_pass(now) is None
    WorkerRun.objects.create(worker="loop", started_at=now - dt.timedelta(seconds=20),
                             finished_at=now - dt.timedelta(seconds=10), interval=15)
    assert selectors.worker_eta_text(now=now) == "The worker will send it within a minute."
    later = now + dt.timedelta(minutes=5)  # that worker is overdue: it stopped
    assert selectors.next_worker_pass(later) is None
    WorkerRun.objects.create(worker="slow", started_at=now, finished_at=now, interval=600)
    assert selectors.worker_eta_text(now=later) == "The worker will send it within about 6 minutes."


def test_resend_message_says_when_it_will_go_out(coordinator, index_procedure, settings):
    from orthoreg.followup.models import Invitation

    registry.procedure_record(episode=index_procedure.episode, instance=index_procedure,
                              date=timezone.localdate() - dt.timedelta(days=183))
    services.worker_pass(worker="t")  # a single pass: no worker is running afterwards
    invitation = Invitation.objects.get()
    client = login(coordinator)
    page = client.post(reverse("followup:invitation_resend", args=[invitation.pk]), follow=True).content.decode()
    assert "within a minute" not in page and "No worker has run recently" in page
    services.worker_pass(worker="loop", interval=15)
    services.invitation_resend(invitation=Invitation.objects.get())
    page = client.post(reverse("followup:invitation_resend", args=[invitation.pk]), follow=True).content.decode()
    assert "The worker will send it within a minute." in page


def test_the_worker_command_shows_replanning_progress(toes, capsys):
    from django.core.management import call_command

    _, own = toes
    services.protocol_save(protocol=own, fields={}, time_points=_time_points(own, delete=("60m",)), replan_inline=0)
    call_command("worker", "--once")
    out = capsys.readouterr().out
    assert f"Re-planning after the protocol '{own}' was saved: 3 of 3 episodes (100%)" in out
    assert "3 episodes re-planned" in out and _sixty_months("cancelled") == 3


def test_swapping_two_time_point_labels_is_a_message_not_a_500(toes, coordinator):
    from tests.followup.test_scheduling import edit_page_data

    _, own = toes
    client = login(coordinator)
    data = edit_page_data(client, own)
    labels = {data[f"tp-{i}-label"]: i for i in range(int(data["tp-TOTAL_FORMS"])) if f"tp-{i}-label" in data}
    data[f"tp-{labels['3m']}-label"], data[f"tp-{labels['6m']}-label"] = "6m", "3m"
    page = client.post(reverse("followup:protocol_edit", args=[own.pk]), data)
    assert page.status_code == 400 and "Time point" in page.content.decode()
    assert set(own.time_points.values_list("label", flat=True)) >= {"3m", "6m"} and not ReplanJob.objects.exists()
