"""Who gets an invitation (followup/rules.py): the ORM condition invitations_plan selects with and the Python twin
the worklist explains a missing invitation with agree, in every combination of the patient-level rules."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from orthoreg.followup import rules, selectors
from orthoreg.followup.models import Assessment, Unsubscription
from orthoreg.registry.models import Clinic, Patient

TODAY = dt.date(2025, 6, 1)


@pytest.mark.django_db
def test_the_invitation_rules_agree_in_sql_and_python(patient, episode):
    assessment = Assessment.objects.create(
        patient=patient, episode=episode, time_point="6m", time_point_order=3, instrument="nprs",
        due_date=TODAY, window_start=TODAY - dt.timedelta(days=5), window_end=TODAY + dt.timedelta(days=5))
    for email, requires, consent, status, unsubscribed in itertools.product(
            ("", "p@example.org"), (False, True), (False, True), ("active", "withdrawn"), (False, True)):
        Clinic.objects.filter(pk=patient.clinic_id).update(invitations_require_consent=requires)
        Patient.objects.filter(pk=patient.pk).update(email=email, consent_registry=consent, status=status)
        Unsubscription.objects.filter(episode=episode).delete()
        if unsubscribed:
            Unsubscription.objects.create(episode=episode, patient=patient)
        fresh = Patient.objects.select_related("clinic").get(pk=patient.pk)
        unsubscription = Unsubscription.objects.filter(episode=episode).first()
        in_sql = rules.invitable(selectors.pending_sendable(pk=assessment.pk), today=TODAY).exists()
        broken = rules.first_broken_rule(fresh, unsubscription)
        assert in_sql == (broken is None), (email, requires, consent, status, unsubscribed, broken)
        # each rule on its own, too
        for rule in rules.PATIENT_RULES:
            alone = Assessment.objects.filter(pk=assessment.pk).filter(rule.allows()).exists()
            assert alone == rule.holds(fresh, unsubscription), rule.name


@pytest.mark.django_db
def test_the_window_rule_agrees(patient, episode):
    for start, end in ((-5, 5), (1, 9), (-9, -1), (0, 0)):
        a = Assessment.objects.create(
            patient=patient, episode=episode, time_point=f"{start + 20}m", time_point_order=3, instrument="nprs",
            due_date=TODAY, window_start=TODAY + dt.timedelta(days=start), window_end=TODAY + dt.timedelta(days=end))
        Patient.objects.filter(pk=patient.pk).update(email="p@example.org")
        in_sql = rules.invitable(Assessment.objects.filter(pk=a.pk), today=TODAY).exists()
        opens_later = rules.window_opens_later([a], TODAY) is not None
        assert in_sql == (not opens_later and a.window_end >= TODAY)
