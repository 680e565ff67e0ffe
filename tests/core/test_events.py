"""The table of domain events (orthoreg/events.py) is what is wired: every declared listener is connected, nothing
else is, every payload is the declared one, and the services send what the table says."""

from __future__ import annotations

import datetime as dt

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured

from orthoreg import events
from orthoreg.registry import services as registry


def test_every_declared_listener_is_connected_and_nothing_else():
    for event in events.EVENTS.values():
        assert event.connected_apps() == set(event.listeners), event.name
        # no receiver connected by any other means (a stray .connect without the table)
        assert len(event.signal.receivers) == len(event.listeners), event.name


def test_each_listening_app_has_exactly_the_handlers_the_table_names():
    listening = {label for e in events.EVENTS.values() for label in e.listeners}
    for label in listening:
        config = apps.get_app_config(label)
        handlers = __import__(f"{config.name}.handlers", fromlist=["HANDLERS"]).HANDLERS
        assert set(handlers) == {e.name for e in events.listeners_of(label)}, label
        for name, handler in handlers.items():
            connected = [r for key, r, *_ in events.EVENTS[name].signal.receivers
                         if key[0] == events.EVENTS[name].uid(label)]
            assert [r.handler for r in connected] == [handler], (label, name)


def test_an_app_whose_handlers_disagree_with_the_table_is_refused():
    with pytest.raises(ImproperlyConfigured, match="records_changed does not list followup"):
        events.connect("followup", {"records_changed": lambda **kw: None})
    with pytest.raises(ImproperlyConfigured, match="no handler for records_changed, which lists analytics"):
        events.connect("analytics", {})


def test_a_payload_other_than_the_declared_one_is_refused():
    with pytest.raises(TypeError, match="records_changed carries episode_ids, patient_ids"):
        events.records_changed.send(episode_ids=[1])


@pytest.fixture
def sent():
    """Every event sent during the test, as (name, payload)."""
    seen = []
    for event in events.EVENTS.values():
        def hook(signal, sender, _name=event.name, **payload):
            seen.append((_name, payload))
        event.signal.connect(hook, dispatch_uid="test-events-sent", weak=False)
    yield seen
    for event in events.EVENTS.values():
        event.signal.disconnect(dispatch_uid="test-events-sent")


@pytest.mark.django_db
def test_the_services_send_what_the_table_says(sent, patient, episode):
    procedure = registry.procedure_record(episode=episode, date=dt.date(2025, 3, 1), kind="bmc", is_index=True)
    # (a listener's own writes, e.g. follow-up re-planning, send theirs while the event is being delivered)
    assert sent[0] == ("records_changed", {"episode_ids": [episode.pk], "patient_ids": []})
    assert ("procedure_recorded", {"changes": [events.ProcedureChange(procedure=procedure, created=True,
                                                                      was_index=False, previous_date=None)]}) in sent
    sent.clear()
    registry.patient_update(patient=patient, status="withdrawn", status_date=dt.date(2025, 6, 1))
    assert sent[0] == ("records_changed", {"episode_ids": [], "patient_ids": [patient.pk]})
    assert ("patient_status_changed", {"patient": patient, "previous_status": "active"}) in sent
    sent.clear()
    registry.note_record(episode=episode, date=dt.date(2025, 6, 2), text="called")
    assert sent == []  # no report reads notes


@pytest.mark.django_db
def test_deleting_a_patient_names_its_episodes_for_analytics(sent, patient, episode):
    ids = {"episode_ids": [episode.pk], "patient_ids": [patient.pk]}
    registry.record_delete(patient)
    assert sent == [("records_changed", ids)]
