"""{% load analytics_tags %}{% clinic_glance glance %}: the user's clinics' outcomes at a glance (the home page).

Presents only: the view prepares `glance` (analytics.selectors.clinic_glance; None shows nothing).
"""

from __future__ import annotations

from django import template

register = template.Library()


@register.inclusion_tag("analytics/_clinic_glance.html")
def clinic_glance(glance: dict | None):
    return {"glance": glance}
