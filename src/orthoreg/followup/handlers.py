"""What follow-up does when the layers below it tell it something (orthoreg/events.py lists every event)."""

from __future__ import annotations

from orthoreg.registry.coding import SURGICAL_KINDS

from .services import answers, schedule


def on_procedure_recorded(*, procedure, created, was_index, previous_date) -> None:
    """An index procedure recorded or moved, or a later surgery (a conversion), re-plans the episode."""
    if procedure.is_index or was_index or procedure.kind in SURGICAL_KINDS:
        schedule.episode_schedule(episode=procedure.episode)


def on_patient_status_changed(*, patient, previous_status) -> None:
    schedule.patient_schedule(patient=patient)


def on_response_recorded(*, responses) -> None:
    """Responses recorded anywhere (the link, staff entry, the patient page, an import) complete their
    assessments. records_changed for their episodes is responses_store's to send (it does, right after this event,
    in the same transaction): sent here too it would queue the same episodes for analytics twice."""
    answers.responses_link(responses=responses, announce=False)


HANDLERS = {
    "procedure_recorded": on_procedure_recorded,
    "patient_status_changed": on_patient_status_changed,
    "response_recorded": on_response_recorded,
}
