"""Every domain event of orthoreg in one table: what happened, its payload, who sends it and who listens.

A consequence that runs DOWN the layers is a direct call (followup's assessment_answer calls instruments'
response_record; a service writes its own audit entry). One that runs UP (a registry write re-plans follow-up,
a response completes its assessment, any write of the clinical records makes the analytics facts stale) is an
event here, because the lower app must not import the higher one.

| event                   | payload                                  | sent by                                  | listeners |
|-------------------------|------------------------------------------|------------------------------------------|-----------|
| procedure_recorded      | changes (a list of ProcedureChange:      | registry.services.procedures_store       | followup  |
|                         | procedure, created, was_index, prev. day)|                                          |           |
| patient_status_changed  | patient, previous_status                 | registry.services.patient_update         | followup  |
| response_recorded       | responses (a list, one transaction's)    | instruments.services.responses_store     | followup  |
| records_changed         | episode_ids, patient_ids                 | registry.services (every record write),  | analytics |
|                         |                                          | instruments.services.response_record,    |           |
|                         |                                          | followup.services (assessment writes),   |           |
|                         |                                          | bulk loads (synthetic data)              |           |
| worker_passed           | run (the WorkerRun, or None if it failed)| followup.services.worker_loop            | analytics |

- procedure_recorded: procedures were created or changed (one event for all the procedures one transaction
  stored). followup re-plans, once each, the episodes where one is (or was) the index procedure, or is a later
  surgery (a conversion stops the schedule).
- patient_status_changed: a patient died, withdrew or came back. followup re-plans every episode of the patient.
- response_recorded: responses were stored, however they came (the patient's link, staff entry, the patient page,
  an import: one event for all the responses one transaction stored). followup completes the matching scheduled
  assessments and, when nothing of their time point is left, the invitations.
- records_changed: clinical records were written (saved, deleted or bulk-loaded): these episodes, and every
  episode of these patients, have derived data that is now stale. analytics queues their facts for rebuilding.
  A write path sends it once per transaction with every episode and patient it touched; a bulk load sends it
  once for the batch.
- worker_passed: a pass of the follow-up worker ended (sent outside any transaction). analytics brings its facts up
  to date, so a user's request never waits on that bookkeeping.

Every event but worker_passed is sent inside the sender's transaction: what a listener writes commits or rolls back with it.

Wiring, one way for every app: a listening app has a module `<app>/handlers.py` with `HANDLERS`, a dict of event
name -> function taking the payload as keyword arguments, and its `AppConfig.ready()` calls
`events.connect_app(self)`. connect_app refuses a handler for an event that does not list the app, and an app
listed for an event without a handler for it (tests/core/test_events.py checks the table against what is
connected). Django's own framework signals are not domain events: accounts connects the login signals (audit)
and database set-up hooks, imaging the deletion of an image's row (its files leave storage, whichever way the row
went), each explicitly in its `ready()`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import import_module

import django.dispatch
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class ProcedureChange:
    """What procedure_recorded says of each procedure: created or changed, and whether it was the index procedure
    before (and on which day)."""
    procedure: object
    created: bool
    was_index: bool
    previous_date: object


@dataclass(eq=False)
class Event:
    name: str
    payload: tuple[str, ...]
    sent_by: tuple[str, ...]
    listeners: tuple[str, ...]  # app labels
    signal: django.dispatch.Signal = field(default_factory=django.dispatch.Signal, repr=False)

    def send(self, **payload) -> None:
        """Tell every listener, synchronously, inside the caller's transaction."""
        if set(payload) != set(self.payload):
            raise TypeError(f"event {self.name} carries {', '.join(self.payload)}; got {', '.join(sorted(payload))}")
        self.signal.send(sender=Event, **payload)

    def uid(self, app_label: str) -> str:
        return f"orthoreg-event:{self.name}:{app_label}"

    def connected_apps(self) -> set[str]:
        """The app labels whose handler is connected to this event now."""
        prefix = f"orthoreg-event:{self.name}:"
        return {key[0][len(prefix):] for key, *_ in self.signal.receivers
                if isinstance(key[0], str) and key[0].startswith(prefix)}


procedure_recorded = Event(
    "procedure_recorded", ("changes",),
    sent_by=("registry.services.procedures_store",), listeners=("followup",))
patient_status_changed = Event(
    "patient_status_changed", ("patient", "previous_status"),
    sent_by=("registry.services.patient_update",), listeners=("followup",))
response_recorded = Event(
    "response_recorded", ("responses",),
    sent_by=("instruments.services.responses_store",), listeners=("followup",))
records_changed = Event(
    "records_changed", ("episode_ids", "patient_ids"),
    sent_by=("registry.services", "instruments.services.responses_store", "followup.services",
             "registry.synth"),
    listeners=("analytics",))
worker_passed = Event(
    "worker_passed", ("run",),
    sent_by=("followup.services.worker_loop",), listeners=("analytics",))

EVENTS: dict[str, Event] = {e.name: e for e in (procedure_recorded, patient_status_changed, response_recorded,
                                                 records_changed, worker_passed)}


def records_changed_send(*, episode_ids: Iterable[int | None] = (), patient_ids: Iterable[int | None] = ()) -> None:
    """Send records_changed for these episodes and patients (None and repeats dropped); nothing when both are empty."""
    episodes = sorted({int(i) for i in episode_ids if i is not None})
    patients = sorted({int(i) for i in patient_ids if i is not None})
    if episodes or patients:
        records_changed.send(episode_ids=episodes, patient_ids=patients)


def listeners_of(app_label: str) -> list[Event]:
    return [e for e in EVENTS.values() if app_label in e.listeners]


def connect(app_label: str, handlers: Mapping[str, Callable]) -> None:
    """Connect an app's handlers to the events that list it, exactly those (see the module's docstring)."""
    declared = {e.name for e in listeners_of(app_label)}
    unknown = sorted(set(handlers) - declared)
    missing = sorted(declared - set(handlers))
    if unknown or missing:
        raise ImproperlyConfigured(
            f"{app_label}.handlers does not match orthoreg/events.py: "
            + "; ".join([*(f"{n} does not list {app_label} as a listener" for n in unknown),
                         *(f"no handler for {n}, which lists {app_label}" for n in missing)]))
    for name, handler in handlers.items():
        EVENTS[name].signal.connect(_receiver(handler), dispatch_uid=EVENTS[name].uid(app_label), weak=False)


def connect_app(app_config) -> None:
    """What a listening app's ready() calls: connect the HANDLERS of its handlers module."""
    connect(app_config.label, import_module(f"{app_config.name}.handlers").HANDLERS)


def _receiver(handler: Callable) -> Callable:
    def receive(signal, sender, **payload):
        return handler(**payload)

    receive.handler = handler  # type: ignore[attr-defined]
    return receive
