"""Who gets a follow-up invitation, written once. An (episode, time point) is invited when something of it can be
answered from the link (a scheduled assessment of a sendable instrument) whose window is open today, it has no
invitation yet, and every patient-level rule below holds. services.invitations_plan selects with each rule's ORM
condition (on Assessment rows); the worklist (selectors.no_invitation_reason) explains a missing invitation with
its Python twin and its words. tests/followup/test_rules.py checks that the two agree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import Exists, OuterRef, Q

from orthoreg.registry.models import Patient

from .models import Assessment, Unsubscription


@dataclass(frozen=True)
class InvitationRule:
    name: str
    words: str  # why there is no invitation when the rule does not hold, for the coordinator
    allows: Callable[[], Q | Exists | Any]  # ORM, on Assessment rows: the rule holds
    holds: Callable[[Patient, Unsubscription | None], bool]  # Python: the rule holds for this patient and episode


PATIENT_RULES: tuple[InvitationRule, ...] = (
    InvitationRule("subscribed", "Unsubscribed from emails",
                   lambda: ~Exists(Unsubscription.objects.filter(episode_id=OuterRef("episode_id"))),
                   lambda patient, unsubscription: unsubscription is None),
    InvitationRule("active", "The patient is no longer followed up",
                   lambda: Q(patient__status=Patient.Status.ACTIVE),
                   lambda patient, unsubscription: patient.status == Patient.Status.ACTIVE),
    InvitationRule("email", "No email address",
                   lambda: ~Q(patient__email=""),
                   lambda patient, unsubscription: bool(patient.email)),
    InvitationRule("consent", "No registry consent recorded",
                   lambda: ~Q(patient__clinic__invitations_require_consent=True, patient__consent_registry=False),
                   lambda patient, unsubscription: not (patient.clinic.invitations_require_consent
                                                        and not patient.consent_registry)),
)


def invitable(qs, *, today: dt.date):
    """ORM: the pending sendable assessments (qs) an invitation may be planned for today."""
    qs = qs.filter(window_start__lte=today, window_end__gte=today)
    for rule in PATIENT_RULES:
        qs = qs.filter(rule.allows())
    return qs


def first_broken_rule(patient: Patient, unsubscription: Unsubscription | None) -> InvitationRule | None:
    """Python: the first patient-level rule that keeps this episode from being invited (None: all hold)."""
    return next((rule for rule in PATIENT_RULES if not rule.holds(patient, unsubscription)), None)


def window_opens_later(assessments: list[Assessment], today: dt.date) -> dt.date | None:
    """Python twin of the window condition: the day the earliest window opens, when that is after today."""
    opens = min((a.window_start for a in assessments), default=None)
    return opens if opens is not None and opens > today else None
