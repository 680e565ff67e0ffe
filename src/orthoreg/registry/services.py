"""Every write of the registry: validate the whole record, save it in one transaction, audit it.

Each function is keyword-only, raises django.core.exceptions.ValidationError (a dict of field ->
messages) on bad input and then stores nothing.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction

from orthoreg import events
from orthoreg.accounts.models import AuditEvent
from orthoreg.accounts.services import audit_record

from . import grading
from .coding import ProcedureKind
from .models import AdverseEvent, Clinic, Episode, Exam, Grade, Note, Patient, Procedure

M = TypeVar("M", bound=models.Model)


def _apply(instance: models.Model, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        setattr(instance, name, value)


def _touched(instance: models.Model, *, deleting: bool = False) -> tuple[list[int], list[int]]:
    """The episodes and patients whose derived data (the analytics facts) a write of this record changes."""
    if isinstance(instance, Patient):
        # Deleted, its episodes can no longer be found from it: name them while they are still there.
        return (list(instance.episodes.values_list("pk", flat=True)) if deleting else []), [instance.pk]
    if isinstance(instance, Episode):
        # Its responses go with it: the patient's last contact, which every episode of the patient reads, may move.
        return [instance.pk], [instance.patient_id] if deleting else []
    if isinstance(instance, (Procedure, Grade, Exam)):
        return [instance.episode_id], []
    if isinstance(instance, AdverseEvent):
        return [Procedure.objects.filter(pk=instance.procedure_id).values_list("episode_id", flat=True).first()], []
    return [], []  # clinics and notes: no report reads them


def _save(instance: M, *, action: str, request=None, actor=None, detail: str = "") -> M:
    """Validate, save and audit one record inside the caller's transaction (what reads it is told: records_changed)."""
    instance.full_clean()
    try:
        with transaction.atomic():
            instance.save()
    except IntegrityError as exc:  # a race past clean(): report it as a validation error, store nothing
        raise ValidationError(f"This record conflicts with one saved meanwhile: {exc}") from exc
    audit_record(request=request, user=actor, action=action, obj=instance, detail=detail)
    episode_ids, patient_ids = _touched(instance)
    events.records_changed_send(episode_ids=episode_ids, patient_ids=patient_ids)
    return instance


@transaction.atomic
def record_create(model: type[M], *, request=None, actor=None, **fields) -> M:
    return _save(model(**fields), action=AuditEvent.Action.CREATE, request=request, actor=actor)


@transaction.atomic
def record_update(instance: M, *, request=None, actor=None, **fields) -> M:
    changed = sorted(name for name, value in fields.items() if getattr(instance, name) != value)
    _apply(instance, fields)
    return _save(instance, action=AuditEvent.Action.UPDATE, request=request, actor=actor,
                 detail=f"changed: {', '.join(changed)}" if changed else "no change")


@transaction.atomic
def record_delete(instance: models.Model, *, request=None, actor=None) -> None:
    audit_record(request=request, user=actor, action=AuditEvent.Action.DELETE, obj=instance, detail=str(instance))
    episode_ids, patient_ids = _touched(instance, deleting=True)
    instance.delete()
    events.records_changed_send(episode_ids=episode_ids, patient_ids=patient_ids)


def clinic_create(*, code: str, name: str, actor=None, **fields) -> Clinic:
    return record_create(Clinic, actor=actor, code=code, name=name, **fields)


def clinic_update(*, clinic: Clinic, actor=None, **fields) -> Clinic:
    """Rename a clinic or change its options (time zone, consent rule for invitations, public outcomes)."""
    return record_update(clinic, actor=actor, **fields)


def patient_create(*, clinic: Clinic, request=None, actor=None, **fields) -> Patient:
    return record_create(Patient, request=request, actor=actor, clinic=clinic, **fields)


@transaction.atomic
def patient_update(*, patient: Patient, request=None, actor=None, **fields) -> Patient:
    previous_status = patient.status
    patient = record_update(patient, request=request, actor=actor, **fields)
    if patient.status != previous_status:
        events.patient_status_changed.send(patient=patient, previous_status=previous_status)
    return patient


def episode_create(*, patient: Patient, request=None, actor=None, **fields) -> Episode:
    return record_create(Episode, request=request, actor=actor, patient=patient, **fields)


def episode_update(*, episode: Episode, request=None, actor=None, **fields) -> Episode:
    return record_update(episode, request=request, actor=actor, **fields)


def grade_record(*, episode: Episode, system: str, date, inputs: dict, grade: int | None = None,
                 notes: str = "", request=None, actor=None, instance: Grade | None = None) -> Grade:
    """Store a grade: the calculator's suggestion and flags beside the clinician's grade of record.

    When the clinician gives no grade, the suggestion becomes the grade of record.
    """
    if (system == Grade.System.COUGHLIN_SHURNAS and not inputs.get("prior_cheilectomy") and date is not None
            and episode.procedures.filter(kind=ProcedureKind.CHEILECTOMY, date__lte=date).exists()):
        inputs = {**inputs, "prior_cheilectomy": True}  # the record says so: the osteophyte criteria have changed
    try:
        suggestion = grading.suggest(system, inputs)
    except grading.GradeInputError as exc:
        # On the input's own form field (dorsiflexion, loss, ...); a form without that field shows it on top.
        raise ValidationError({exc.field: exc.message}) from exc
    if grade is None:
        if suggestion.grade is None:
            raise ValidationError({"grade": "Give the grade of record (the calculator has too little to suggest one)."})
        grade = suggestion.grade
    fields = dict(episode=episode, system=system, date=date, inputs=inputs, suggested_grade=suggestion.grade,
                  discordant=suggestion.discordant, flags=suggestion.flags, grade=grade, notes=notes,
                  graded_by=actor if getattr(actor, "is_authenticated", False) else None)
    if suggestion.grade is not None and grade != suggestion.grade:
        fields["flags"] = [*suggestion.flags,
                           f"Grade of record ({grade}) differs from the suggestion ({suggestion.grade})."]
    if instance is None:
        return record_create(Grade, request=request, actor=actor, **fields)
    return record_update(instance, request=request, actor=actor, **fields)


@transaction.atomic
def procedure_record(*, episode: Episode, request=None, actor=None, instance: Procedure | None = None,
                     **fields) -> Procedure:
    """Create (or update, with instance=) a procedure; an index procedure change re-plans follow-up."""
    previous_date = instance.date if instance is not None and instance.is_index else None
    was_index = bool(instance is not None and instance.is_index)
    if instance is None:
        procedure = record_create(Procedure, request=request, actor=actor, episode=episode, **fields)
    else:
        procedure = record_update(instance, request=request, actor=actor, **fields)
    events.procedure_recorded.send(procedure=procedure, created=instance is None, was_index=was_index,
                                   previous_date=previous_date)
    return procedure


def exam_record(*, episode: Episode, request=None, actor=None, instance: Exam | None = None, **fields) -> Exam:
    if instance is None:
        return record_create(Exam, request=request, actor=actor, episode=episode, **fields)
    return record_update(instance, request=request, actor=actor, **fields)


def adverse_event_record(*, procedure: Procedure, request=None, actor=None, instance: AdverseEvent | None = None,
                         **fields) -> AdverseEvent:
    if instance is None:
        return record_create(AdverseEvent, request=request, actor=actor, procedure=procedure, **fields)
    return record_update(instance, request=request, actor=actor, **fields)


def note_record(*, episode: Episode, request=None, actor=None, instance: Note | None = None, **fields) -> Note:
    if instance is None:
        return record_create(Note, request=request, actor=actor, episode=episode, **fields)
    return record_update(instance, request=request, actor=actor, **fields)
