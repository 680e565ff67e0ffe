"""Invitations: planning, atomic claims, sending, reminders that stop, backoff, expiry; SMTP for real."""

import datetime as dt
import re
import socket

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from orthoreg.followup import services
from orthoreg.followup.models import AccessToken, Assessment, Invitation, WorkerRun
from orthoreg.registry import services as registry

LINK = re.compile(r"http://testserver/s/([A-Za-z0-9_-]{43})/(?!unsubscribe/)")  # the survey link, not unsubscribe


@pytest.fixture
def due_episode(episode, settings):
    """An episode whose 6-month time point is open today."""
    settings.BASE_URL = "http://testserver"
    registry.procedure_record(episode=episode, date=timezone.localdate() - dt.timedelta(days=183), kind="bmc",
                              is_index=True)
    return episode


def links(message) -> list[str]:
    return LINK.findall(message.body)


def test_worker_sends_one_email_per_open_time_point(due_episode):
    run = services.worker_pass(worker="t")
    assert run.sent == 1 and run.failures == 0
    [message] = mail.outbox
    assert message.to == ["dana@example.org"]
    assert len(links(message)) == 1
    invitation = Invitation.objects.get()
    assert invitation.time_point == "6m" and invitation.status == "sent" and invitation.sends == 1
    # the raw token is nowhere in the database, only its hash
    token = links(message)[0]
    assert not AccessToken.objects.filter(token_hash=token).exists()
    assert AccessToken.objects.filter(token_hash=services.hash_token(token)).exists()
    # a second pass sends nothing again
    again = services.worker_pass(worker="t")
    assert again.sent == 0 and again.reminders == 0 and len(mail.outbox) == 1


def test_no_invitation_without_consent_or_email(due_episode, clinic):
    patient = due_episode.patient
    registry.patient_update(patient=patient, consent_registry=False, consent_date=None, consent_version="")
    assert services.worker_pass().sent == 0
    clinic.invitations_require_consent = False
    clinic.save()
    registry.patient_update(patient=patient, email="")
    assert services.worker_pass().sent == 0
    registry.patient_update(patient=patient, email="dana@example.org")
    assert services.worker_pass().sent == 1


def test_reminders_then_stop_and_never_after_completion(due_episode):
    services.worker_pass()
    invitation = Invitation.objects.get()
    start = timezone.now()
    with time_machine.travel(start + dt.timedelta(days=invitation.reminder_after_days, minutes=1)):
        run = services.worker_pass()
        assert run.reminders == 1
    assert "Reminder" in mail.outbox[1].subject
    # answering everything stops the reminders
    for assessment in services.open_assessments(Invitation.objects.get()):
        answers = {"nprs": [3], "sane": [70], "global-improvement": None, "satisfaction": None}[assessment.instrument]
        if answers is None:
            from orthoreg.instruments.definitions import get_definition
            answers = [item.scored_options[0].value if item.type == "choice" else item.minimum
                       for item in get_definition(assessment.instrument).items]
        services.assessment_answer(assessment=assessment, answers=answers, source="patient_link")
    assert Invitation.objects.get().status == "completed"
    with time_machine.travel(start + dt.timedelta(days=30)):
        assert services.worker_pass().reminders == 0
    assert len(mail.outbox) == 2


def test_reminder_limit(due_episode):
    services.worker_pass()
    invitation = Invitation.objects.get()
    start = timezone.now()
    for n in range(1, 6):
        with time_machine.travel(start + dt.timedelta(days=invitation.reminder_after_days * n, minutes=n)):
            services.worker_pass()
    assert len(mail.outbox) == 1 + invitation.max_reminders


def test_claims_are_exclusive(due_episode, patient):
    services.invitations_plan()
    first = services.invitations_claim(limit=10, worker="a")
    second = services.invitations_claim(limit=10, worker="b")
    assert len(first) == 1 and second == []


def test_crashed_claim_is_taken_again_after_the_lease(due_episode):
    services.invitations_plan()
    [claimed] = services.invitations_claim(limit=10, worker="crashed")  # ... and never sent
    assert services.invitations_claim(limit=10, worker="b") == []
    with time_machine.travel(timezone.now() + services.LEASE + dt.timedelta(seconds=5)):
        [again] = services.invitations_claim(limit=10, worker="b")
        assert again.pk == claimed.pk
        services.invitations_send(invitations=[again])
    assert len(mail.outbox) == 1
    assert Invitation.objects.get().status == "sent"


def test_send_failure_is_recorded_and_retried_with_backoff(due_episode, settings):
    settings.EMAIL_BACKEND = "tests.followup.test_worker.BrokenBackend"
    run = services.worker_pass()
    assert run.failures == 1 and run.sent == 0
    invitation = Invitation.objects.get()
    assert invitation.status == "failed" and "refused" in invitation.last_error
    assert invitation.next_attempt_at > timezone.now()
    assert services.worker_pass().sent == 0  # not before the backoff
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    with time_machine.travel(invitation.next_attempt_at + dt.timedelta(seconds=1)):
        assert services.worker_pass().sent == 1
    assert WorkerRun.objects.filter(failures=1).exists()


class BrokenBackend:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("connection refused by the mail server")


def test_invitations_expire_with_the_window(due_episode):
    services.worker_pass()
    invitation = Invitation.objects.get()
    with time_machine.travel(invitation.expires_at + dt.timedelta(minutes=1)):
        run = services.worker_pass()
        assert run.expired >= 1
    invitation.refresh_from_db()
    assert invitation.status == "expired"
    missed = Assessment.objects.filter(episode=due_episode, time_point="6m")
    with time_machine.travel(invitation.expires_at + dt.timedelta(days=1)):
        assert {a.display_status for a in missed} == {"missed"}


def test_resend_issues_a_new_link(due_episode):
    services.worker_pass()
    invitation = Invitation.objects.get()
    services.invitation_resend(invitation=invitation)
    assert services.worker_pass().reminders == 1
    assert links(mail.outbox[0]) != links(mail.outbox[1])
    assert invitation.tokens.count() == 2


def test_smtp_delivery_to_a_local_server(due_episode, settings):
    """A real SMTP conversation with a server the test starts (aiosmtpd)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    received = []

    class Collect(Message):
        def handle_message(self, message):
            received.append(message)

    with socket.socket() as probe:  # a free port on the loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Collect(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        run = services.worker_pass()
    finally:
        controller.stop()
    assert run.sent == 1
    assert len(received) == 1
    assert received[0]["To"] == "dana@example.org"
    assert "/s/" in received[0].get_payload()


def test_smtp_server_down_is_shown_not_lost(due_episode, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    run = services.worker_pass()
    assert run.failures == 1
    assert Invitation.objects.get().status == "failed"


# ------------------------------------------------------------------------------------------ stopping, re-planning

@pytest.fixture
def six_weeks_sent(episode, settings):
    """The 6-week invitation went out; the time point was due three days ago and its window is still open."""
    settings.BASE_URL = "http://testserver"
    registry.procedure_record(episode=episode, date=timezone.localdate() - dt.timedelta(days=45), kind="bmc",
                              is_index=True)
    assert services.worker_pass().sent == 1
    invitation = Invitation.objects.get()
    assert invitation.time_point == "6w"
    return invitation


@pytest.mark.parametrize("status", ["deceased", "withdrawn"])
def test_death_or_withdrawal_stops_an_invitation_already_sent(six_weeks_sent, status):
    patient = six_weeks_sent.patient
    token = links(mail.outbox[0])[0]
    registry.patient_update(patient=patient, status=status, status_date=timezone.localdate())
    six_weeks = Assessment.objects.filter(episode=six_weeks_sent.episode, time_point="6w")
    assert {a.status for a in six_weeks} == {"cancelled"}
    assert all(status in a.cancelled_reason for a in six_weeks)
    assert not Assessment.objects.filter(episode=six_weeks_sent.episode, status="scheduled",
                                         window_end__gte=timezone.localdate()).exists()
    six_weeks_sent.refresh_from_db()
    assert six_weeks_sent.status == "cancelled" and status in six_weeks_sent.cancelled_reason
    assert not six_weeks_sent.tokens.filter(revoked=False).exists()
    with pytest.raises(services.LinkError):
        services.invitation_for_token(token)
    with time_machine.travel(timezone.now() + dt.timedelta(days=six_weeks_sent.reminder_after_days, minutes=1)):
        assert services.worker_pass().reminders == 0
    assert len(mail.outbox) == 1


def test_no_reminder_to_an_inactive_patient_whatever_the_invitation_says(six_weeks_sent):
    """The claim itself asks for an active patient (a status written without the re-planning signal)."""
    from orthoreg.registry.models import Patient

    Patient.objects.filter(pk=six_weeks_sent.patient_id).update(status="deceased",
                                                               status_date=timezone.localdate())
    later = timezone.now() + dt.timedelta(days=six_weeks_sent.reminder_after_days, minutes=1)
    assert services.invitations_claim(limit=10, worker="t", now=later) == []
    with time_machine.travel(later):
        assert services.worker_pass().reminders == 0
    assert len(mail.outbox) == 1


def test_moving_the_index_date_replans_an_unsent_invitation(due_episode):
    services.invitations_plan()
    invitation = Invitation.objects.get()
    assert invitation.time_point == "6m" and invitation.sends == 0
    index = due_episode.procedures.get(is_index=True)
    # Ten days later: the 6-month window is still open today but closes ten days later.
    registry.procedure_record(episode=due_episode, instance=index, date=index.date + dt.timedelta(days=10))
    window_end = Assessment.objects.filter(episode=due_episode, time_point="6m").first().window_end
    assert services.worker_pass().sent == 1
    invitation = Invitation.objects.get()
    assert timezone.localtime(invitation.expires_at).date() == window_end + dt.timedelta(days=1)


def test_moving_the_index_date_past_today_leaves_nothing_to_claim(due_episode):
    services.invitations_plan()
    index = due_episode.procedures.get(is_index=True)
    # Sixty days later: the 6-month window opens in about a month.
    registry.procedure_record(episode=due_episode, instance=index, date=index.date + dt.timedelta(days=60))
    assert not Assessment.objects.filter(episode=due_episode, status="scheduled",
                                         window_start__lte=timezone.localdate(),
                                         window_end__gte=timezone.localdate()).exists()
    assert services.invitations_claim(limit=10, worker="t") == []
    assert services.worker_pass().sent == 0 and not Invitation.objects.exists()


# ------------------------------------------------------------------------------------------ the email

def test_subject_and_body_are_plain_text(due_episode, clinic):
    clinic.name = "Lakeside Sports & Spine"
    clinic.save()
    services.worker_pass()
    [message] = mail.outbox
    assert message.subject.startswith("Lakeside Sports & Spine:")
    assert "&amp;" not in message.subject and "&amp;" not in message.body
    assert "Lakeside Sports & Spine" in message.body


# ------------------------------------------------------------------------------------------ licensed instruments

def _add_to_time_point(label: str, *codes: str, only: bool = False) -> None:
    from orthoreg.followup.models import Protocol

    protocol = Protocol.objects.get(clinic=None, condition="hallux_rigidus")
    tp = protocol.time_points.get(label=label)
    tp.instruments = list(codes) if only else [*tp.instruments, *codes]
    tp.save()


def test_licensed_instrument_without_its_text_is_not_counted_nor_awaited(episode, settings):
    from orthoreg.instruments.definitions import get_definition

    assert not get_definition("faam-adl").sendable
    settings.BASE_URL = "http://testserver"
    _add_to_time_point("6m", "faam-adl")
    registry.procedure_record(episode=episode, date=timezone.localdate() - dt.timedelta(days=183), kind="bmc",
                              is_index=True)
    assert Assessment.objects.filter(episode=episode, time_point="6m").count() == 5
    services.worker_pass()
    [message] = mail.outbox
    assert "(4 short questionnaires)" in message.body
    invitation = Invitation.objects.get()
    assert [a.instrument for a in services.open_assessments(invitation)] == [
        "nprs", "sane", "global-improvement", "satisfaction"]
    from django.test import Client

    page = Client().get(f"/s/{links(message)[0]}/")
    assert "Questionnaire 1 of 4" in page.content.decode()
    for assessment in services.open_assessments(invitation):
        answers = [item.scored_options[0].value if item.type == "choice" else item.minimum
                   for item in get_definition(assessment.instrument).items]
        services.assessment_answer(assessment=assessment, answers=answers, source="patient_link")
    invitation.refresh_from_db()
    assert invitation.status == "completed"  # the FAAM left for staff does not keep reminders going
    assert Assessment.objects.get(episode=episode, time_point="6m", instrument="faam-adl").status == "scheduled"


def test_time_point_of_only_unsendable_instruments_gets_no_email(episode):
    _add_to_time_point("6m", "faam-adl", "faam-sports", only=True)
    registry.procedure_record(episode=episode, date=timezone.localdate() - dt.timedelta(days=183), kind="bmc",
                              is_index=True)
    assert Assessment.objects.filter(episode=episode, time_point="6m", status="scheduled").count() == 2
    run = services.worker_pass()
    assert run.invitations_created == 0 and run.sent == 0
    assert not Invitation.objects.exists() and mail.outbox == []


def test_a_stale_invitation_with_nothing_sendable_is_closed_not_sent(episode):
    """One planned before (or while) its questionnaires were answered or became unsendable is never emailed."""
    _add_to_time_point("6m", "faam-adl", only=True)
    registry.procedure_record(episode=episode, date=timezone.localdate() - dt.timedelta(days=183), kind="bmc",
                              is_index=True)
    a = Assessment.objects.get(episode=episode, time_point="6m")
    Invitation.objects.create(patient=episode.patient, episode=episode, time_point="6m", email="dana@example.org",
                              expires_at=timezone.now() + dt.timedelta(days=20))
    assert a.status == "scheduled"
    run = services.worker_pass()
    assert run.sent == 0 and mail.outbox == []
    assert Invitation.objects.get().status == "cancelled"


def test_a_claim_taken_over_after_its_lease_is_not_sent_by_its_first_holder(due_episode):
    services.invitations_plan()
    [slow] = services.invitations_claim(limit=10, worker="slow")
    with time_machine.travel(timezone.now() + services.LEASE + dt.timedelta(seconds=5)):
        [taken] = services.invitations_claim(limit=10, worker="other")
        services.invitations_send(invitations=[taken])
    assert services.invitations_send(invitations=[slow]).sent == 0  # the slow worker wakes up: nothing doubled
    assert len(mail.outbox) == 1 and Invitation.objects.get().sends == 1
