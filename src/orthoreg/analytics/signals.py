"""Keep the analytics facts in step: every save or delete of a record a report reads queues the episodes it
touches (facts.mark_*); the worker rebuilds them after each pass (facts.py). Bulk writes that send no signals call facts.mark_* or
send followup.services.assessments_changed themselves."""

from django.db.models.signals import post_delete, post_save

from orthoreg.followup.models import Assessment
from orthoreg.followup.services import assessments_changed, worker_passed
from orthoreg.instruments.models import Response
from orthoreg.registry.models import AdverseEvent, Episode, Exam, Grade, Patient, Procedure

from . import facts


def _episode_record(sender, instance, **kwargs):
    facts.mark_episodes([instance.episode_id])


def _episode(sender, instance, **kwargs):
    facts.mark_episodes([instance.pk])


def _patient_record(sender, instance, **kwargs):
    # A response is the patient's last contact for every episode; its own episode's outcomes change too.
    facts.mark_patients([instance.patient_id])
    facts.mark_episodes([instance.episode_id])


def _adverse_event(sender, instance, **kwargs):
    facts.mark_episodes(Procedure.objects.filter(pk=instance.procedure_id).values_list("episode_id", flat=True))


def _patient(sender, instance, **kwargs):
    facts.mark_patients([instance.pk])


def _assessments(sender, episode_ids, **kwargs):
    facts.mark_episodes(episode_ids)


def _worker_passed(sender, **kwargs):
    facts.refresh()  # the worker, not a user's request, brings the facts up to date


def connect() -> None:
    for model in (Assessment, Procedure, Grade, Exam):
        post_save.connect(_episode_record, sender=model, dispatch_uid=f"analytics-{model.__name__}-save")
        post_delete.connect(_episode_record, sender=model, dispatch_uid=f"analytics-{model.__name__}-delete")
    post_save.connect(_episode, sender=Episode, dispatch_uid="analytics-episode-save")
    post_delete.connect(_episode, sender=Episode, dispatch_uid="analytics-episode-delete")
    post_save.connect(_patient_record, sender=Response, dispatch_uid="analytics-response-save")
    post_delete.connect(_patient_record, sender=Response, dispatch_uid="analytics-response-delete")
    post_save.connect(_adverse_event, sender=AdverseEvent, dispatch_uid="analytics-adverse-event-save")
    post_delete.connect(_adverse_event, sender=AdverseEvent, dispatch_uid="analytics-adverse-event-delete")
    post_save.connect(_patient, sender=Patient, dispatch_uid="analytics-patient-save")
    assessments_changed.connect(_assessments, dispatch_uid="analytics-assessments-changed")
    worker_passed.connect(_worker_passed, dispatch_uid="analytics-worker-passed")
