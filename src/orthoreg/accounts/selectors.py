"""Reads of the accounts app."""

from __future__ import annotations

import datetime as dt

from django.db.models import Q, QuerySet

from . import access
from .models import AuditEvent, Membership


def audit_events(*, user, username: str = "", action: str = "", patient: int | None = None,
                 since: dt.date | None = None, until: dt.date | None = None) -> QuerySet[AuditEvent]:
    """Audit entries an auditor may read: events about patients of their clinics, and events of their
    clinics' users (logins, exports)."""
    clinic_ids = access.clinic_ids(user, access.AUDIT)
    members = Membership.objects.filter(clinic_id__in=clinic_ids).values("user_id")
    # Events about their clinics' patients, events of their clinics' users, and anonymous events
    # (failed logins) that belong to no clinic.
    scope = Q(patient__clinic_id__in=clinic_ids) | Q(patient__isnull=True, user_id__in=members) \
        | Q(patient__isnull=True, user__isnull=True)
    qs = AuditEvent.objects.filter(scope) if clinic_ids else AuditEvent.objects.none()
    if username:
        qs = qs.filter(username__iexact=username)
    if action:
        qs = qs.filter(action=action)
    if patient:
        qs = qs.filter(patient_id=patient)
    if since:
        qs = qs.filter(at__date__gte=since)
    if until:
        qs = qs.filter(at__date__lte=until)
    return qs.order_by("-at", "-id")
