"""The one set of access functions used by pages, the API and exports alike.

A user sees the clinics they are a member of, with what their role there allows. Another clinic's
object answers 404 (never 403), so ids reveal nothing.

Scoping by clinic has one rule: every clinical model says where its patient is (`patient_path`, the ORM path
from the model to its Patient: "" for Patient itself, "episode__patient" for a grade, ...). Its clinic is that
patient's clinic; a model may say `clinic_path` outright (Clinic: "id"; a path through its patient names the
patient too). A model with a plain `patient` or `clinic` foreign key needs to declare nothing. `clinic_path_for` and `patient_of` read the declarations.

Each request gets one `RequestAccess` (built by AccessMiddleware): the users' roles, read once per request,
and the patients whose records the request reached, which the middleware logs as reads.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist
from django.db.models import Model, QuerySet
from django.http import Http404

from .models import Membership, Role

# What each capability needs.
CLINICAL = frozenset({Role.ADMIN, Role.CLINICIAN})  # clinical data, read and write
CONTACT = frozenset({Role.ADMIN, Role.CLINICIAN, Role.COORDINATOR})  # names, contact data, schedules
RESEARCH = frozenset({Role.ADMIN, Role.CLINICIAN, Role.RESEARCHER})  # cohort analytics, de-identified exports
AUDIT = frozenset({Role.ADMIN, Role.AUDITOR})
ANY = frozenset(Role.values)


# ---------------------------------------------------------------- the request's access object

@dataclass
class RequestAccess:
    """What one request knows about access: each user's (clinic id, role) pairs, read once, and the patients
    each user's reads reached (for the audit), and the patients the views audited themselves."""

    request: Any = None
    roles: dict[int, list[tuple[int, str]]] = field(default_factory=dict)
    touched: dict[int, set[int]] = field(default_factory=dict)  # user id -> patient ids
    users: dict[int, Any] = field(default_factory=dict)  # user id -> user, for the audit entries
    audited: set[int] = field(default_factory=set)  # patient ids the request's own audit entries name

    def unaudited_reads(self) -> Iterator[tuple[Any, int]]:
        """(user, patient id) of every read no audit entry of the request names yet, in patient order."""
        for user_id, patient_ids in self.touched.items():
            for patient_id in sorted(patient_ids - self.audited):
                yield self.users[user_id], patient_id


_current: contextvars.ContextVar[RequestAccess | None] = contextvars.ContextVar("orthoreg_access", default=None)


def current() -> RequestAccess | None:
    """The access object of the request being served (None outside a request: commands, the worker)."""
    return _current.get()


@contextmanager
def request_access(request=None) -> Iterator[RequestAccess]:
    """Serve one request (or one unit of work) with its own access object."""
    acc = RequestAccess(request=request)
    token = _current.set(acc)
    try:
        yield acc
    finally:
        _current.reset(token)


def _memberships(user) -> list[tuple[int, str]]:
    acc = current()
    if acc is not None and user.pk in acc.roles:
        return acc.roles[user.pk]
    pairs = list(Membership.objects.filter(user=user).values_list("clinic_id", "role"))
    if acc is not None:
        acc.roles[user.pk] = pairs
    return pairs


# ---------------------------------------------------------------- roles and clinics

def clinic_ids(user, capability=CLINICAL) -> set[int]:
    """The ids of the clinics where the user's role grants the capability."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return set()
    pairs = _memberships(user)
    if user.is_superuser:
        return set(Membership.clinic.field.related_model._default_manager.values_list("id", flat=True))  # type: ignore[union-attr]
    return {clinic_id for clinic_id, role in pairs if role in capability}


def roles(user) -> set[str]:
    if not getattr(user, "is_authenticated", False):
        return set()
    if user.is_superuser:
        return set(Role.values)
    return {role for _, role in _memberships(user)}


def has_capability(user, capability) -> bool:
    return bool(clinic_ids(user, capability))


def research_needs_consent(user) -> bool:
    """Cohort figures for someone who is not the patients' clinician count consented patients only: a
    researcher (in any of the clinics they analyse) sees no patient who has not agreed to the registry."""
    return bool(clinic_ids(user, RESEARCH) - clinic_ids(user, CLINICAL))


# ---------------------------------------------------------------- where each model's clinic and patient are

def _has_field(model: type[Model], name: str) -> bool:
    try:
        model._meta.get_field(name)
    except (FieldDoesNotExist, AttributeError):  # not a model
        return False
    return True


def patient_path_for(model: type[Model]) -> str:
    """The ORM path from the model to its patient ("" for the patient itself); LookupError when it has none."""
    path = getattr(model, "patient_path", None)
    clinic_path = getattr(model, "clinic_path", None)
    if path is None and _has_field(model, "patient"):
        path = "patient"
    elif path is None and clinic_path and clinic_path.endswith("patient__clinic"):  # its clinic is its patient's
        path = clinic_path.removesuffix("__clinic")
    if path is None:
        raise LookupError(f"{model.__name__} declares no patient_path")
    return path


def clinic_path_for(model: type[Model]) -> str:
    """The ORM path from the model to its clinic: declared, else its patient's clinic, else its own clinic."""
    path = getattr(model, "clinic_path", None)
    if path is not None:
        return path
    try:
        patient = patient_path_for(model)
    except LookupError:
        if _has_field(model, "clinic"):
            return "clinic"
        raise LookupError(f"No clinic path is declared for {model.__name__}") from None
    return f"{patient}__clinic" if patient else "clinic"


def patient_of(obj):
    """The patient whose record the object is part of (None for objects of no patient)."""
    if obj is None:
        return None
    try:
        path = patient_path_for(obj.__class__)  # __class__: a lazy request.user answers with the user's class
    except LookupError:
        return None
    target = obj
    for step in path.split("__") if path else ():
        target = getattr(target, step, None)
        if target is None:
            return None
    return target


# ---------------------------------------------------------------- scoped reads

def scope(queryset: QuerySet, user, capability=CLINICAL, clinic_path: str | None = None) -> QuerySet:
    """Restrict a queryset to the clinics where the user has the capability (the path from the model's
    declarations unless given)."""
    path = clinic_path if clinic_path is not None else clinic_path_for(queryset.model)
    return queryset.filter(**{f"{path}__in": clinic_ids(user, capability)})


def access_object(user, model: type[Model], pk, capability=CLINICAL, queryset: QuerySet | None = None):
    """Fetch one object the user may reach, or raise Http404."""
    qs = queryset if queryset is not None else model._default_manager.all()
    qs = scope(qs, user, capability, clinic_path_for(model))
    try:
        obj = qs.get(pk=pk)
    except (ObjectDoesNotExist, ValueError, TypeError):
        raise Http404(f"No {model._meta.verbose_name} found") from None
    touch(user, obj)
    return obj


def touch(user, obj) -> None:
    """Remember which patient's record this request reached; AccessMiddleware logs the read."""
    acc = current()
    patient = patient_of(obj)
    if acc is not None and patient is not None and getattr(user, "is_authenticated", False):
        acc.users[user.pk] = user
        acc.touched.setdefault(user.pk, set()).add(patient.pk)


def note_audited(request, patient) -> None:
    """The request's own audit entry names the patient: the middleware does not log the read again."""
    acc = current()
    if acc is not None and patient is not None and request is not None and acc.request is request:
        acc.audited.add(patient.pk)


# The registry's models, looked up by name: the registry sits above accounts and may not be imported here.
def access_patient(user, pk, capability=CLINICAL):
    patient_model = apps.get_model("registry", "Patient")
    return access_object(user, patient_model, pk, capability, patient_model.objects.select_related("clinic"))


def access_episode(user, pk, capability=CLINICAL):
    episode_model = apps.get_model("registry", "Episode")
    return access_object(user, episode_model, pk, capability, episode_model.objects.select_related("patient__clinic"))
