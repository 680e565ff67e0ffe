"""Survival free of conversion to surgery: one (days, converted) pair per episode of a cohort.

Time zero is the index date. The event is the conversion (registry.selectors.conversion_date_subquery). Episodes
without one are censored at the last contact: the latest of the patient's last questionnaire response, the episode's
last exam and procedure, and the date of death or withdrawal; never after the as-of date, never before the index
date (facts.episode_rows). A conversion dated after the as-of date is not an event of the report: that episode is
event-free at the as-of date and censored there.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import (
    BooleanField,
    Case,
    Count,
    DateField,
    F,
    IntegerField,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Greatest, Least

from orthoreg.registry.db import DaysBetween

from . import stats


def with_end(members: QuerySet, *, as_of: dt.date) -> QuerySet:
    """The cohort's EpisodeFact rows annotated with `days` (index date to conversion or censoring) and `converted`,
    as of a day (the rule of survival_pairs)."""
    day = Value(as_of, output_field=DateField())
    last_contact = Greatest(F("index_date"), Least(F("contact"), day), output_field=DateField())
    by_as_of = Q(conversion_date__isnull=False, conversion_date__lte=day)
    end = Case(When(by_as_of, then=F("conversion_date")), default=last_contact, output_field=DateField())
    return members.annotate(days=DaysBetween(end, F("index_date")),
                            converted=Case(When(by_as_of, then=Value(True)), default=Value(False),
                                           output_field=BooleanField()))


def survival_pairs(members: QuerySet, *, as_of: dt.date) -> list[tuple[int, bool]]:
    """(days from the index date to conversion or censoring, converted) for every episode of the cohort
    (EpisodeFact rows) as of a day, counted per distinct pair in the database (a few thousand rows leave it
    whatever the size of the cohort)."""
    day = Value(as_of, output_field=DateField())
    last_contact = Greatest(F("index_date"), Least(F("contact"), day), output_field=DateField())
    by_as_of = Q(conversion_date__isnull=False, conversion_date__lte=day)
    end = Case(When(by_as_of, then=F("conversion_date")), default=last_contact, output_field=DateField())
    rows = (members.annotate(days=DaysBetween(end, F("index_date")),
                             converted=Case(When(by_as_of, then=Value(True)),
                                            default=Value(False), output_field=BooleanField()))
            .values_list("days", "converted").annotate(n=Count("pk")).order_by())
    return [(max(0, days), bool(converted)) for days, converted, n in rows for _ in range(n)]


def competing_rows(members: QuerySet, *, as_of: dt.date) -> list[tuple[int, int, int]]:
    """(days, status, count) of the cohort for the cumulative incidence of conversion with death as the competing
    event (stats.aalen_johansen): status 1 = converted (on or before the as-of date), 2 = died without conversion (on
    or before the as-of date; the date of death is the patient's status date), 0 = censored at the last contact
    (withdrawal and loss to follow-up stay censoring). One GROUP BY in the database."""
    day = Value(as_of, output_field=DateField())
    last_contact = Greatest(F("index_date"), Least(F("contact"), day), output_field=DateField())
    converted = Q(conversion_date__isnull=False, conversion_date__lte=day)
    died = Q(died=True, gone_date__isnull=False, gone_date__lte=day)
    end = Case(When(converted, then=F("conversion_date")), When(died, then=F("gone_date")), default=last_contact,
               output_field=DateField())
    status = Case(When(converted, then=Value(1)), When(died, then=Value(2)), default=Value(0),
                  output_field=IntegerField())
    rows = (members.annotate(days=DaysBetween(end, F("index_date")), status=status)
            .values_list("days", "status").annotate(n=Count("pk")).order_by())
    return [(max(0, days), int(st), n) for days, st, n in rows]


def kaplan_meier(pairs: list[tuple[int, bool]]) -> stats.KaplanMeier:
    return stats.kaplan_meier([d for d, _ in pairs], [e for _, e in pairs])
