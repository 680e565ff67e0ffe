"""Reads of the site app: what the home page shows."""

from __future__ import annotations

from django.db.models import Count
from django.urls import reverse

from orthoreg.accounts import access
from orthoreg.accounts.models import Membership, Role
from orthoreg.registry.coding import Condition
from orthoreg.registry.models import Clinic, Episode, Patient, Procedure
from orthoreg.registry.selectors import episodes_with_outcome_dates

# What each role may do, as its home page says it: (what it is for, [(link text, url name)]).
ROLE_DUTIES = {
    "admin": ("Run the clinic in orthoreg: everything a clinician, coordinator, researcher and auditor can do, and "
              "manage the clinic's users and follow-up protocols.",
              [("Find a patient", "registry:patient_list"), ("Follow-up worklist", "followup:worklist"),
               ("Protocols", "followup:protocol_list"), ("Cohort outcomes", "reports:cohort"),
               ("Audit log", "accounts:audit_log")]),
    "clinician": ("Record and read your patients' care: conditions, grades, procedures, radiographs, scores and "
                  "case reports; see the outcomes of the clinic's cohorts.",
                  [("Find a patient", "registry:patient_list"), ("Cohort outcomes", "reports:cohort")]),
    "coordinator": ("Keep follow-up going: the worklist of questionnaires due, invitations, reminders and the "
                    "patients' contact details. No clinical records.",
                    [("Follow-up worklist", "followup:worklist"), ("Find a patient", "registry:patient_list")]),
    "researcher": ("Analyse outcomes of patients who gave registry consent: cohort reports, comparisons and the "
                   "de-identified research export. Aggregates only: no names, no single patients, nothing from "
                   "fewer than 5 patients, treatment dates in whole months.",
                   [("Cohort outcomes", "reports:cohort"), ("Research export", "interop:research_export")]),
    "auditor": ("Review who read, changed or exported patient data, in the audit log. No clinical records and no "
                "outcome figures.",
                [("Audit log", "accounts:audit_log")]),
}


def home_roles(user) -> list[dict]:
    """The user's roles with their clinics and what each lets them do (the home page); [] without a clinic role."""
    if user.is_superuser:
        clinics_by_role = {Role.ADMIN.value: list(Clinic.objects.order_by("name").values_list("name", flat=True))}
    else:
        clinics_by_role = {}
        for role, name in (Membership.objects.filter(user=user).order_by("clinic__name")
                           .values_list("role", "clinic__name")):
            clinics_by_role.setdefault(role, []).append(name)
    out = []
    for role in Role.values:  # in the order of the roles
        if role not in clinics_by_role:
            continue
        text, links = ROLE_DUTIES[role]
        out.append({"role": role, "label": Role(role).label, "clinics": clinics_by_role[role], "text": text,
                    "links": [(label, reverse(name)) for label, name in links]})
    return out


def clinic_summary(user) -> dict:
    """Counts for the home page, aggregated in the database."""
    patients = access.scope(Patient.objects.all(), user, access.CONTACT)
    episodes = access.scope(Episode.objects.all(), user, access.CONTACT)
    by_condition = [{"condition": Condition(row["condition"]).label, "n": row["n"]}
                    for row in episodes.values("condition").annotate(n=Count("id")).order_by("-n")]
    converted = episodes_with_outcome_dates(episodes).filter(conversion_date__isnull=False).count()  # type: ignore[misc]
    with_index = episodes.filter(procedures__is_index=True).count()
    return {
        "patients": patients.count(),
        "active": patients.filter(status=Patient.Status.ACTIVE).count(),
        "episodes": episodes.count(),
        "by_condition": by_condition,
        "treated": with_index,
        "converted": converted,
        "recent_procedures": access.scope(Procedure.objects.select_related("episode__patient"), user,
                                          access.CLINICAL)
        .order_by("-date", "-id")[:8],
    }
