"""What follow-up does when the layers below it tell it something (orthoreg/events.py lists every event)."""

from __future__ import annotations

from orthoreg.registry.coding import SURGICAL_KINDS

from .services import answers, schedule


def on_procedure_recorded(*, changes) -> None:
    """An index procedure recorded or moved, or a later surgery (a conversion), re-plans its episode: every
    episode the changes touch once, together."""
    relevant = [c.procedure for c in changes
                if c.procedure.is_index or c.was_index or c.procedure.kind in SURGICAL_KINDS]
    schedule.episodes_schedule(episodes=[p.episode for p in relevant], recorded=relevant)


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
