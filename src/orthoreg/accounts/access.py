"""The one set of access functions used by pages, the API and exports alike.

A user sees the clinics they are a member of, with what their role there allows. Another clinic's
object answers 404 (never 403), so ids reveal nothing.
"""

from __future__ import annotations

from django.db.models import Model, QuerySet
from django.http import Http404

from .models import Membership, Role

# What each capability needs.
CLINICAL = frozenset({Role.ADMIN, Role.CLINICIAN})  # clinical data, read and write
CONTACT = frozenset({Role.ADMIN, Role.CLINICIAN, Role.COORDINATOR})  # names, contact data, schedules
RESEARCH = frozenset({Role.ADMIN, Role.CLINICIAN, Role.RESEARCHER})  # cohort analytics, de-identified exports
AUDIT = frozenset({Role.ADMIN, Role.AUDITOR})
ANY = frozenset(Role.values)


def clinic_ids(user, capability=CLINICAL) -> set[int]:
    """The ids of the clinics where the user's role grants the capability."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return set()
    cache = user.__dict__.setdefault("_orthoreg_roles", None)
    if cache is None:
        cache = list(Membership.objects.filter(user=user).values_list("clinic_id", "role"))
        user.__dict__["_orthoreg_roles"] = cache
    if user.is_superuser:
        from orthoreg.registry.models import Clinic

        return set(Clinic.objects.values_list("id", flat=True))
    return {clinic_id for clinic_id, role in cache if role in capability}


def roles(user) -> set[str]:
    if not getattr(user, "is_authenticated", False):
        return set()
    if user.is_superuser:
        return set(Role.values)
    clinic_ids(user, ANY)  # fills the cache
    return {role for _, role in user.__dict__["_orthoreg_roles"]}


def has_capability(user, capability) -> bool:
    return bool(clinic_ids(user, capability))


def research_needs_consent(user) -> bool:
    """Cohort figures for someone who is not the patients' clinician count consented patients only: a
    researcher (in any of the clinics they analyse) sees no patient who has not agreed to the registry."""
    return bool(clinic_ids(user, RESEARCH) - clinic_ids(user, CLINICAL))


def scope(queryset: QuerySet, user, capability=CLINICAL, clinic_path: str = "clinic") -> QuerySet:
    """Restrict a queryset to the clinics where the user has the capability."""
    return queryset.filter(**{f"{clinic_path}__in": clinic_ids(user, capability)})


CLINIC_PATHS = {
    "Clinic": "id",
    "Patient": "clinic",
    "Episode": "patient__clinic",
    "Grade": "episode__patient__clinic",
    "Procedure": "episode__patient__clinic",
    "Exam": "episode__patient__clinic",
    "Note": "episode__patient__clinic",
    "AdverseEvent": "procedure__episode__patient__clinic",
}


def clinic_path_for(model: type[Model]) -> str:
    path = getattr(model, "clinic_path", None) or CLINIC_PATHS.get(model.__name__)
    if path is None:
        raise LookupError(f"No clinic path is declared for {model.__name__}")
    return path


def access_object(user, model: type[Model], pk, capability=CLINICAL, queryset: QuerySet | None = None):
    """Fetch one object the user may reach, or raise Http404."""
    qs = queryset if queryset is not None else model._default_manager.all()
    qs = scope(qs, user, capability, clinic_path_for(model))
    try:
        obj = qs.get(pk=pk)
    except (model.DoesNotExist, ValueError, TypeError):
        raise Http404(f"No {model._meta.verbose_name} found") from None
    touch(user, obj)
    return obj


def touch(user, obj) -> None:
    """Remember which patient's record this request reached; AuditReadsMiddleware logs the read."""
    from .services import patient_of

    patient = patient_of(obj)
    if patient is not None and getattr(user, "is_authenticated", False):
        user.__dict__.setdefault("_orthoreg_touched", set()).add(patient.pk)


def access_patient(user, pk, capability=CLINICAL):
    from orthoreg.registry.models import Patient

    return access_object(user, Patient, pk, capability, Patient.objects.select_related("clinic"))


def access_episode(user, pk, capability=CLINICAL):
    from orthoreg.registry.models import Episode

    return access_object(user, Episode, pk, capability, Episode.objects.select_related("patient__clinic"))
