"""Every write of the registry: validate the whole record, save it in one transaction, audit it.

Each function is keyword-only, raises django.core.exceptions.ValidationError (a dict of field ->
messages) on bad input and then stores nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, models, transaction

from orthoreg import bulkinsert, events
from orthoreg.accounts.models import AuditEvent
from orthoreg.accounts.services import audit_record, audit_record_bulk

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
        if AdverseEvent.procedure.is_cached(instance):
            return [instance.procedure.episode_id], []
        return [Procedure.objects.filter(pk=instance.procedure_id).values_list("episode_id", flat=True).first()], []
    return [], []  # clinics and notes: no report reads them


@dataclass
class Pending:
    """A record validated by record_build and not yet stored: records_store stores many together."""
    instance: Any
    action: str
    detail: str = ""
    was_index: bool = False  # a procedure: was it the index procedure before this change, and on which day
    previous_date: Any = None


# Models whose clean() enforces every one of their Meta.constraints (and says which record is in the way).
CLEAN_CHECKS_CONSTRAINTS = (Patient, Procedure)


def record_build(model: type[models.Model], *, instance: models.Model | None = None, **fields: Any) -> Pending:
    """A new record (or instance with these fields changed), validated whole (full_clean), not saved yet.
    Raises ValidationError."""
    if instance is None:
        pending = Pending(model(**fields), AuditEvent.Action.CREATE)
    else:
        changed = sorted(name for name, value in fields.items() if getattr(instance, name) != value)
        _apply(instance, fields)
        pending = Pending(instance, AuditEvent.Action.UPDATE,
                          detail=f"changed: {', '.join(changed)}" if changed else "no change")
    # Patient.clean() refuses a used MRN and Procedure.clean() a second index procedure of an episode, with
    # their own messages: Django's check of the same constraints would only ask the database again (the
    # constraints themselves stay in the database).
    _full_clean(pending.instance, validate_constraints=model not in CLEAN_CHECKS_CONSTRAINTS)
    return pending


def _full_clean(instance: models.Model, *, validate_constraints: bool) -> None:
    """Django's full_clean (the same checks, errors and messages), except that a foreign key whose record is
    attached to the instance and was read from or stored in the database is not looked up again: Django asks the
    database whether each foreign key's record exists (a query per key; an import of 667 records ran about 1,000),
    and the database's own constraint still refuses one deleted meanwhile (records_store: "conflicts with one saved
    meanwhile"). A key with limited choices is always looked up."""
    known = set()
    for field in instance._meta.concrete_fields:
        if not isinstance(field, models.ForeignKey) or field.remote_field.parent_link or field.get_limit_choices_to() \
                or not field.is_cached(instance):
            continue
        related = field.get_cached_value(instance)
        if related is not None and related.pk is not None and not related._state.adding \
                and getattr(instance, field.attname) == related.pk:
            known.add(field.name)
    errors: dict = {}
    try:
        instance.full_clean(exclude=known, validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        errors = exc.update_error_dict(errors)
    failed = {name for name in errors if name != NON_FIELD_ERRORS}  # (as full_clean: only fields that passed)
    try:
        instance.validate_unique(exclude=failed)
    except ValidationError as exc:
        errors = exc.update_error_dict(errors)
    if validate_constraints:
        try:
            instance.validate_constraints(exclude=failed)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def records_store(pending: list[Pending], *, request=None, actor=None) -> list:
    """Store records built by record_build, in one transaction: new ones inserted together per model with their
    history rows, changed ones saved, one audit entry each, records_changed once for everything they touch. The
    bulk twin of record_create and record_update (an import's chunk), which store their one record through it."""
    if not pending:
        return []
    history_user = getattr(request, "user", None) if request is not None else actor
    if not getattr(history_user, "is_authenticated", False):
        history_user = None
    new: dict[type, list] = {}
    try:
        with transaction.atomic():
            for p in pending:
                if p.action == AuditEvent.Action.CREATE:
                    new.setdefault(type(p.instance), []).append(p.instance)
                else:
                    p.instance.save()
            for model, objs in new.items():
                for obj in objs:
                    derive = getattr(obj, "derive_fields", None)  # what save() derives (initials, ICD-10, category)
                    if derive is not None:
                        derive()
                bulkinsert.insert_objects(model, objs)
                bulkinsert.history_insert(model, objs, default_user=history_user, default_change_reason=None)
    except IntegrityError as exc:  # a race past clean(): report it as a validation error, store nothing
        raise ValidationError(f"This record conflicts with one saved meanwhile: {exc}") from exc
    for action in (AuditEvent.Action.CREATE, AuditEvent.Action.UPDATE):
        entries = [(p.instance, None, p.detail) for p in pending if p.action == action]
        if entries:
            audit_record_bulk(request=request, user=actor, action=action, entries=entries)
    episode_ids: list[int] = []
    patient_ids: list[int] = []
    for p in pending:
        episodes, patients = _touched(p.instance)
        episode_ids.extend(episodes)
        patient_ids.extend(patients)
    events.records_changed_send(episode_ids=episode_ids, patient_ids=patient_ids)
    return [p.instance for p in pending]


@transaction.atomic
def record_create(model: type[M], *, request=None, actor=None, **fields) -> M:
    return records_store([record_build(model, **fields)], request=request, actor=actor)[0]


@transaction.atomic
def record_update(instance: M, *, request=None, actor=None, **fields) -> M:
    return records_store([record_build(type(instance), instance=instance, **fields)], request=request,
                         actor=actor)[0]


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


def procedure_build(*, episode: Episode | None = None, instance: Procedure | None = None, **fields) -> Pending:
    """A procedure created (or instance changed), validated, not stored yet: procedures_store stores it."""
    previous_date = instance.date if instance is not None and instance.is_index else None
    was_index = bool(instance is not None and instance.is_index)
    pending = record_build(Procedure, instance=instance, **({"episode": episode} if instance is None else {}),
                           **fields)
    pending.was_index, pending.previous_date = was_index, previous_date
    return pending


@transaction.atomic
def procedures_store(pending: list[Pending], *, request=None, actor=None) -> list[Procedure]:
    """Store procedures built by procedure_build together (records_store), then tell follow-up once
    (procedure_recorded with every change): each episode they touch is re-planned once. The bulk twin of
    procedure_record."""
    stored = records_store(pending, request=request, actor=actor)
    if pending:
        events.procedure_recorded.send(changes=[
            events.ProcedureChange(procedure=p.instance, created=p.action == AuditEvent.Action.CREATE,
                                   was_index=p.was_index, previous_date=p.previous_date) for p in pending])
    return stored


@transaction.atomic
def procedure_record(*, episode: Episode, request=None, actor=None, instance: Procedure | None = None,
                     **fields) -> Procedure:
    """Create (or update, with instance=) a procedure; an index procedure change re-plans follow-up."""
    return procedures_store([procedure_build(episode=episode, instance=instance, **fields)], request=request,
                            actor=actor)[0]


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
