"""What analytics does when clinical records are written (orthoreg/events.py lists every event): the episodes
touched are queued, and the next refresh rebuilds their facts (facts.py)."""

from __future__ import annotations

from . import facts


def on_records_changed(*, episode_ids, patient_ids) -> None:
    facts.mark_episodes(episode_ids)
    facts.mark_patients(patient_ids)


HANDLERS = {"records_changed": on_records_changed}
