"""Outcome metrics of a cohort per time point and instrument, aggregated in the database.

The unit is one assessment (an instrument due at a time point of an episode), kept as an outcome fact (facts.py:
its answer, score, the baseline score of the same instrument and whether it meets OMERACT-OARSI).
`eligible_outcomes` applies the eligibility rule of definitions.py to a cohort's facts and marks whether the
episode had converted to surgery by the due date; `outcome_cells` aggregates it in one GROUP BY into a frequency
table that summaries.py turns into counts, means, SDs, medians and responder rates by exact arithmetic.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import BooleanField, Case, Count, F, Min, Q, QuerySet, Value, When

from orthoreg.instruments.definitions import DefinitionError, UnknownInstrument, available_codes, get_definition

from .models import OutcomeFact

EPS = 1e-9  # tolerance of threshold comparisons (0.2 x 15 is 3.0000000000000004 in floating point)


@dataclass(frozen=True)
class InstrumentInfo:
    code: str
    title: str
    better: str  # "higher" | "lower"
    minimum: float
    maximum: float
    mcid: float | None
    mcid_percent: float | None  # only where percent change is meaningful (NPRS: 30%)
    has_baseline: bool  # False for transition questions (global improvement) that have no baseline

    @property
    def higher_is_better(self) -> bool:
        return self.better == "higher"

    def to_100(self, points: float) -> float:
        """A difference on this scale expressed on a 0-100 scale."""
        return points * 100.0 / (self.maximum - self.minimum)


def instrument_infos() -> dict[str, InstrumentInfo]:
    infos = {}
    for code in available_codes():
        try:
            definition = get_definition(code)
        except (UnknownInstrument, DefinitionError):
            continue
        sub = definition.primary
        if sub is None:
            continue
        infos[code] = InstrumentInfo(
            code=code, title=definition.short_title, better=sub.better, minimum=sub.minimum, maximum=sub.maximum,
            mcid=sub.mcid, mcid_percent=sub.mcid_percent if sub.percent_change else None,
            has_baseline=sub.method != "signed_amount")
    return infos


# --------------------------------------------------------------------------------------------- the row set

def eligible_outcomes(members: QuerySet, *, as_of: dt.date, clinic_ids: list[int] | None = None) -> QuerySet:
    """The eligible assessments (definitions.py) of the cohort `members` (EpisodeFact rows) as outcome facts,
    annotated with `converted` (surgery after the index procedure, on or before the due date). With `clinic_ids`
    the cohort is every treated episode of those clinics and `members` is not joined."""
    rows = OutcomeFact.objects.all()
    rows = (rows.filter(clinic_id__in=clinic_ids) if clinic_ids is not None
            else rows.filter(episode_id__in=members.values("pk")))
    return (rows.filter(Q(window_end__lt=as_of) | Q(answered=True))
            .exclude(Q(answered=False) & Q(gone_date__lte=F("due_date")))
            .annotate(converted=Case(When(conversion_date__lte=F("due_date"), then=Value(True)),
                                     default=Value(False), output_field=BooleanField())))


def outcome_cells(rows: QuerySet) -> list[dict]:
    """The outcome table of the cohort as a frequency table, in one GROUP BY: how many eligible assessments there
    are of each (time point, instrument, answered, score, baseline score, converted), and how many of them are
    OMERACT-OARSI responders. Every count, mean, standard deviation, median and responder count of summaries.py is
    exact arithmetic on these cells (a few thousand rows whatever the number of patients): the database does the
    counting, nothing reads individual responses."""
    return list(rows.values("time_point", "instrument", "base", "converted", a=F("answered"), s=F("score"))
                .annotate(n=Count("pk"), order=Min("time_point_order"), oarsi=Count("pk", filter=Q(oarsi=True)))
                .order_by())
