"""The clinical rules the registry's reports, schedules and pages rely on, each written once: the ORM expression
(for queries that aggregate in the database) beside its Python twin (for one episode already in memory).
tests/registry/test_rules.py checks that each pair agrees.

- conversion to surgery: an episode's first surgical procedure dated after its index procedure, other than the
  index itself (after a surgical index, e.g. a cheilectomy, a later fusion is the second procedure that counts as
  its failure); ties on the date go to the procedure recorded first.
- grade at treatment: the latest grade dated no later than GRADE_GRACE_DAYS after the index procedure (a joint
  graded from the pre-procedure radiographs a week later still describes the joint that was treated); ties on
  the date go to the grade recorded last.
- combination window: a further procedure is part of the treatment when it is dated within
  COMBINATION_WINDOW_DAYS of the index date, before or after (a cohort's `within_days` may widen or narrow it).
- time points: the follow-up time points after an index procedure that the default protocols schedule and the
  reports know by name (TIME_POINTS); a site's protocol may add others (any code TIME_POINT_RE accepts).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db.models import Exists, F, Min, OuterRef, Subquery
from django.db.models.functions import Abs

from .coding import SURGICAL_KINDS
from .db import DaysBetween
from .models import Grade, Procedure

# ------------------------------------------------------------------------------------------ conversion to surgery


def conversion_date_subquery(index_date: str = "index_date") -> Subquery:
    """ORM: the date of the conversion of the episode OuterRef("pk") whose index date is OuterRef(index_date)."""
    return Subquery(
        Procedure.objects.filter(episode=OuterRef("pk"), kind__in=SURGICAL_KINDS, is_index=False,
                                 date__gt=OuterRef(index_date))
        .order_by()
        .values("episode")
        .annotate(first=Min("date"))
        .values("first")[:1]
    )


def conversion_of(procedures: Iterable[Procedure]) -> Procedure | None:
    """Python: the conversion among one episode's procedures (None without an index procedure or a conversion)."""
    procs = list(procedures)
    index = next((p for p in procs if p.is_index), None)
    if index is None:
        return None
    later = [p for p in procs if p.kind in SURGICAL_KINDS and p.date > index.date and not p.is_index]
    return min(later, key=lambda p: (p.date, p.pk)) if later else None


# ------------------------------------------------------------------------------------------ grade at treatment

GRADE_GRACE_DAYS = 30


def grade_at_treatment_subquery(index_date: str = "index_date", value: str = "grade") -> Subquery:
    """ORM: the grade of record at the index procedure of the episode OuterRef("pk") (index date OuterRef(index_date));
    its `value`: the grade, or another field of that record (its system)."""
    return Subquery(
        Grade.objects.filter(episode=OuterRef("pk"))
        .annotate(after_index=DaysBetween(F("date"), OuterRef(index_date)))
        .filter(after_index__lte=GRADE_GRACE_DAYS)
        .order_by("-date", "-id").values(value)[:1])


def grade_at_treatment(grades: Iterable[Grade], index_date: dt.date) -> Grade | None:
    """Python: the grade (the record) at treatment among one episode's grades."""
    before = [g for g in grades if (g.date - index_date).days <= GRADE_GRACE_DAYS]
    return max(before, key=lambda g: (g.date, g.pk)) if before else None


# ------------------------------------------------------------------------------------------ combination window

COMBINATION_WINDOW_DAYS = 30


def combined_with_index(kind: str, within_days: int = COMBINATION_WINDOW_DAYS) -> Exists:
    """ORM: the episode OuterRef("pk") (index date OuterRef("index_date")) had a further procedure of `kind`, other
    than its index procedure, within `within_days` of the index date."""
    return Exists(Procedure.objects.filter(episode=OuterRef("pk"), kind=kind, is_index=False)
                  .annotate(gap=Abs(DaysBetween(F("date"), OuterRef("index_date"))))
                  .filter(gap__lte=within_days))


def in_combination_window(day: dt.date, index_date: dt.date, within_days: int = COMBINATION_WINDOW_DAYS) -> bool:
    """Python: a procedure on `day` is part of the treatment indexed on `index_date`."""
    return abs((day - index_date).days) <= within_days


def combined_kinds(procedures: Iterable[Procedure], within_days: int = COMBINATION_WINDOW_DAYS) -> list[Procedure]:
    """Python: the further procedures (not the index one) of one episode within the window of its index date."""
    procs = list(procedures)
    index = next((p for p in procs if p.is_index), None)
    if index is None:
        return []
    return [p for p in procs if not p.is_index and in_combination_window(p.date, index.date, within_days)]


# ------------------------------------------------------------------------------------------ time points

TIME_POINT_RE = re.compile(r"^(baseline|\d{1,3}[dwmy])$")


@dataclass(frozen=True)
class StandardTimePoint:
    code: str
    months: int
    days: int


# The time points of the default protocols, in order: baseline, then weeks and months after the index procedure.
TIME_POINTS: tuple[StandardTimePoint, ...] = (
    StandardTimePoint("baseline", 0, 0), StandardTimePoint("6w", 0, 42), StandardTimePoint("3m", 3, 0),
    StandardTimePoint("6m", 6, 0), StandardTimePoint("12m", 12, 0), StandardTimePoint("24m", 24, 0),
    StandardTimePoint("36m", 36, 0), StandardTimePoint("48m", 48, 0), StandardTimePoint("60m", 60, 0),
)
TIME_POINT_CODES: tuple[str, ...] = tuple(tp.code for tp in TIME_POINTS)
FOLLOW_UP_CODES: tuple[str, ...] = tuple(c for c in TIME_POINT_CODES if c != "baseline")  # after treatment


def time_point_label(time_point: str) -> str:
    """"baseline" -> "Baseline", "6w" -> "6 weeks", "12m" -> "12 months", "1y" -> "1 year"; "—" for none."""
    if time_point == "baseline":
        return "Baseline"
    match = re.fullmatch(r"(\d{1,3})([dwmy])", time_point or "")
    if not match:
        return time_point or "—"
    n, unit = int(match[1]), {"d": "day", "w": "week", "m": "month", "y": "year"}[match[2]]
    return f"{n} {unit}{'' if n == 1 else 's'}"


def time_point_choices(codes: Sequence[str] = TIME_POINT_CODES) -> list[tuple[str, str]]:
    return [(c, time_point_label(c)) for c in codes]
