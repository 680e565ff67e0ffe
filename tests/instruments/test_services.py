"""response_record: validates, scores, stores with an audit entry; invalid answers store nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from orthoreg.accounts.models import AuditEvent
from orthoreg.instruments.models import Response
from orthoreg.instruments.scoring import score
from orthoreg.instruments.services import response_build, response_record, time_point_label

pytestmark = pytest.mark.django_db


def test_records_scores_and_audits(patient, episode, clinician):
    r = response_record(patient=patient, episode=episode, instrument="nprs", answers=[7], time_point="baseline",
                        entered_by=clinician)
    r.refresh_from_db()
    assert (r.score, r.scores, r.valid, r.invalid_reason) == (7.0, {"pain": 7.0}, True, "")
    assert (r.instrument, r.instrument_version, r.source, r.entered_by) == ("nprs", "1.0.0", "staff", clinician)
    audit = AuditEvent.objects.get(object_type="response")
    assert (audit.action, audit.patient_id, audit.object_id, audit.user) == ("create", patient.pk, str(r.pk),
                                                                            clinician)
    assert r.history.count() == 1


def test_invalid_answers_store_nothing(patient, episode):
    with pytest.raises(ValidationError) as info:
        response_record(patient=patient, episode=episode, instrument="faam-sports", answers=[4, 4, 9, 4, "x", 4, 4, 4])
    assert info.value.message_dict == {
        "item_3": ["Item 3: 9 is not an answer to this item: expected one of 0, 1, 2, 3, 4 "
                   "(empty/null for not applicable)"],
        "item_5": ["Item 5: expected one of 0, 1, 2, 3, 4 (empty/null for not applicable); got text 'x'"],
    }
    assert not Response.objects.exists() and not AuditEvent.objects.filter(object_type="response").exists()


def test_unknown_instrument_and_other_checks(patient, episode, other_patient):
    with pytest.raises(ValidationError) as info:
        response_record(patient=patient, episode=episode, instrument="nope", answers=[1])
    assert "Unknown instrument" in info.value.message_dict["instrument"][0]
    other_episode = other_patient.episodes.create(body_site="knee", side="left", condition="oa_primary")
    with pytest.raises(ValidationError) as info:
        response_record(patient=patient, episode=other_episode, instrument="nprs", answers=[3], time_point="soon",
                        source="fax", completed_at=timezone.now() + dt.timedelta(days=2))
    assert set(info.value.message_dict) == {"episode", "time_point", "source", "completed_at"}
    with pytest.raises(ValidationError, match="before the patient's birth date"):
        response_record(patient=patient, episode=None, instrument="nprs", answers=[3],
                        completed_at=timezone.make_aware(dt.datetime(1980, 1, 1)))
    assert not Response.objects.exists()


def test_not_scorable_answers_are_kept_without_a_score(patient, episode):
    r = response_record(patient=patient, episode=episode, instrument="faam-adl", answers=[None] * 21,
                        time_point="6m", source="patient_link")
    assert not r.valid and r.score is None and r.scores == {}
    assert "0 of 21 items answered" in r.invalid_reason


def test_answers_are_normalised(patient, episode):
    r = response_record(patient=patient, episode=episode, instrument="sane", answers=[80.0])
    assert r.answers == [80] and isinstance(r.answers[0], int)


def test_bulk_create_with_scores_from_the_scorer(patient, episode):
    """The synthetic-data generator's path: score() then bulk_create, no save() logic needed."""
    result = score("nprs", [4])
    Response.objects.bulk_create([
        Response(patient=patient, episode=episode, instrument="nprs", instrument_version="1.0.0", answers=[4],
                 scores=result.scores, score=result.primary, valid=result.valid, invalid_reason=result.reason,
                 completed_at=timezone.now(), source=Response.Source.IMPORT, time_point="3m")
        for _ in range(3)])
    assert Response.objects.filter(score=4.0, time_point="3m").count() == 3


def test_response_build_is_unsaved(patient, episode):
    r = response_build(patient=patient, episode=episode, instrument="nprs", answers=[5])
    assert r.pk is None and r.score == 5.0


def test_time_point_labels():
    assert time_point_label("6m") == "6 months" and time_point_label("1m") == "1 month"
    assert time_point_label("2y") == "2 years" and time_point_label("") == "—"


def test_response_recorded_is_sent_inside_the_transaction(patient, episode):
    """A listener's failure undoes the response: what listens (follow-up) stays in step with what is stored."""
    from orthoreg.events import response_recorded

    seen = []

    def listener(sender, responses, **kwargs):
        seen.extend(r.pk for r in responses)
        raise RuntimeError("listener failed")

    response_recorded.signal.connect(listener, dispatch_uid="test-listener")
    try:
        with pytest.raises(RuntimeError):
            response_record(patient=patient, episode=episode, instrument="nprs", answers=[3], time_point="3m")
    finally:
        response_recorded.signal.disconnect(dispatch_uid="test-listener")
    assert len(seen) == 1 and seen[0] is not None
    assert not Response.objects.exists()
    with pytest.raises(ValidationError):
        response_record(patient=patient, episode=episode, instrument="nprs", answers=[11])
    assert len(seen) == 1  # nothing stored, nothing sent
