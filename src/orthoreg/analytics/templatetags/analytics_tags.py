"""{% load analytics_tags %}{% clinic_glance %}: the user's clinics' outcomes at a glance (for the home page).

Shows nothing for users without the research capability. The numbers come from the cached cohort report of all
treated episodes of the user's clinics (analytics.selectors.cohort_report), the same cohort as the cohort page
with no filter: for a researcher, patients with registry consent only, under the same disclosure rules.
"""

from __future__ import annotations

from django import template
from django.urls import reverse

from orthoreg.accounts import access

from .. import definitions as defs
from .. import disclosure
from ..filters import CohortFilter, CohortFilterError
from ..selectors import cohort_report

register = template.Library()


def glance(user) -> dict | None:
    ids = access.clinic_ids(user, access.RESEARCH)
    if not ids:
        return None
    from orthoreg.registry.models import Clinic

    f = CohortFilter(consented_only=access.research_needs_consent(user))  # a researcher: consented patients only
    try:
        disclosure.check(f, None, clinic_ids=ids, user=user)
    except CohortFilterError as exc:
        return {"withheld": " ".join(m for msgs in exc.errors.values() for m in msgs),
                "url": reverse("reports:cohort")}
    report = cohort_report(f, clinic_ids=ids)
    head = report["headline"]
    twelve = next((a for a in report["survival"]["at"] if a["months"] == 12), None)
    return {
        "consented_only": f.consented_only,
        "clinics": list(Clinic.objects.filter(pk__in=ids).order_by("name").values_list("name", flat=True)),
        "treated": report["cohort"]["episodes"], "headline": head,
        "pain_50": head["responders"].get(defs.PAIN_50.code) if head else None,
        "survival_12": twelve, "serious": report["adverse_events"]["serious"],
        "follow_up_days": report["survival"]["median_follow_up_days"],
        "url": reverse("reports:cohort") + "?show=1",
    }


@register.inclusion_tag("analytics/_clinic_glance.html", takes_context=True)
def clinic_glance(context):
    request = context.get("request")
    user = getattr(request, "user", None) or context.get("user")
    return {"glance": glance(user) if user is not None else None}
