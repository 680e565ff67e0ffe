"""Writes of the accounts app: users, memberships and audit entries."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from .access import note_audited, patient_of
from .models import AuditEvent, Membership, Role

__all__ = ["audit_record", "audit_record_bulk", "client_ip", "membership_set", "patient_of", "user_create"]


def client_ip(request) -> str | None:
    """The address the request came from. Behind one reverse proxy (ORTHOREG_BEHIND_PROXY) that is the last
    X-Forwarded-For entry, the one the proxy itself appended; earlier entries are the client's own claims."""
    if request is None:
        return None
    address = request.META.get("REMOTE_ADDR") or None
    if settings.BEHIND_PROXY:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if hops:
            address = hops[-1]
    try:
        return str(ipaddress.ip_address(address)) if address else None
    except ValueError:
        return None


def audit_record(*, request=None, user=None, action: str, obj=None, patient=None, detail: str = "") -> AuditEvent:
    """Append one entry to the audit log. The patient is inferred from the object where it can be."""
    return audit_record_bulk(request=request, user=user, action=action, entries=[(obj, patient, detail)])[0]


def audit_record_bulk(*, request=None, user=None, action: str, entries: Iterable[tuple]) -> list[AuditEvent]:
    """Append one entry per (object, patient or None, detail) to the audit log in one insert (a bulk import writes
    one entry per record it wrote). The patient is inferred from the object where it is not given."""
    if user is None and request is not None:
        user = getattr(request, "user", None)
    if user is not None and not getattr(user, "is_authenticated", False):
        user = None
    ip_address = client_ip(request)
    user_id = _stored_id(user, "user")
    username = getattr(user, "username", "") or ""
    rows = []
    for obj, patient, detail in entries:
        if patient is None and obj is not None:
            patient = patient_of(obj)
        note_audited(request, patient)
        # (the user and patient by their ids: given as records, Django would ask the database router about each
        # of them, for every entry)
        rows.append(AuditEvent(
            user_id=user_id,
            username=username,
            ip_address=ip_address,
            action=action,
            patient_id=_stored_id(patient, "patient"),
            object_type=obj._meta.model_name if obj is not None else "",
            object_id=str(obj.pk) if obj is not None and obj.pk is not None else "",
            detail=detail[:500],
        ))
    if not rows:
        return []
    return AuditEvent.objects.bulk_create(rows, batch_size=500)


def _stored_id(record, name: str):
    """The id of an entry's user or patient; one never stored is refused, as Django refuses an unsaved related
    record."""
    if record is None:
        return None
    if record.pk is None:
        raise ValueError(f"bulk_create() prohibited to prevent data loss due to unsaved related object '{name}'.")
    return record.pk


@transaction.atomic
def user_create(*, username: str, password: str, clinics: Iterable = (), role: str = Role.CLINICIAN,
                email: str = "", validate: bool = True, actor=None):
    """Create a user with a role in each named clinic (Clinic objects). Raises ValidationError."""
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}; choose one of {', '.join(Role.values)}."})
    User = get_user_model()
    user = User(username=username, email=email, is_staff=(role == Role.ADMIN), is_superuser=False)
    if validate:
        validate_password(password, user)
    user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    for clinic in clinics:
        Membership.objects.create(user=user, clinic=clinic, role=role)
    audit_record(user=actor, action=AuditEvent.Action.CREATE, obj=user, detail=f"user {username} as {role}")
    return user


@transaction.atomic
def membership_set(*, user, clinic, role: str) -> Membership:
    membership, _ = Membership.objects.update_or_create(user=user, clinic=clinic, defaults={"role": role})
    return membership
