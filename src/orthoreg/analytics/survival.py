"""Survival free of conversion to surgery: one (days, converted) pair per episode of the materialized cohort.

Time zero is the index date. The event is the conversion (registry.selectors.conversion_date_subquery). Episodes
without one are censored at the last contact: the latest of the patient's last questionnaire response, the episode's
last exam and procedure, and the date of death or withdrawal; never after the as-of date, never before the index
date (cohorts.member_rows).
"""

from __future__ import annotations

from django.db.models import DateField, F, QuerySet
from django.db.models.functions import Coalesce

from . import stats
from .db import DaysBetween


def survival_pairs(members: QuerySet) -> list[tuple[int, bool]]:
    """(days from the index date to conversion or censoring, converted) for every episode of the cohort.
    Only these two columns leave the database."""
    end = Coalesce(F("conversion_date"), F("last_contact"), output_field=DateField())
    rows = members.annotate(days=DaysBetween(end, F("index_date"))).values_list("days", "conversion_date")
    return [(max(0, days), converted is not None) for days, converted in rows.order_by()]


def kaplan_meier(pairs: list[tuple[int, bool]]) -> stats.KaplanMeier:
    return stats.kaplan_meier([d for d, _ in pairs], [e for _, e in pairs])
