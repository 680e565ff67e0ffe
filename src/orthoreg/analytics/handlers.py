"""What analytics does when clinical records are written (orthoreg/events.py lists every event): the episodes
touched are queued, and the worker rebuilds their facts after each of its passes (facts.py)."""

from __future__ import annotations

from . import facts


def on_records_changed(*, episode_ids, patient_ids) -> None:
    facts.mark_episodes(episode_ids)
    facts.mark_patients(patient_ids)


def on_worker_passed(*, run) -> None:
    facts.refresh()  # the worker, not a user's request, brings the facts up to date


HANDLERS = {"records_changed": on_records_changed, "worker_passed": on_worker_passed}
