"""Outcome metrics of a cohort per time point and instrument, aggregated in the database.

The unit is one assessment (an instrument due at a time point of an episode): `eligible_assessments` applies the
eligibility rule of definitions.py in SQL on the materialized cohort (cohorts.materialized) and annotates each row
with its score, the baseline score of the same instrument, the improvement (direction-aware) and whether the episode
had converted to surgery by the due date. Two queries then aggregate it, whatever the size of the cohort:

1. `outcome_cells`: one GROUP BY giving the frequency table of (time point, instrument, answered, score, baseline,
   converted); summaries.py turns it into counts, means, SDs, medians and responder rates by exact arithmetic;
2. `oarsi_successes`: OMERACT-OARSI responders per time point, joining the function and global answers of the
   same episode and time point (only for the rows whose pain alone does not decide).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import reduce
from operator import or_

from django.db.models import (
    BooleanField,
    Case,
    Count,
    F,
    FilteredRelation,
    FloatField,
    IntegerField,
    Min,
    Q,
    QuerySet,
    Value,
    When,
)

from orthoreg.followup.models import Assessment
from orthoreg.followup.services import REPLANNABLE
from orthoreg.instruments.definitions import DefinitionError, UnknownInstrument, available_codes, get_definition

from . import definitions as defs

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

SCORED = Q(response__valid=True, response__score__isnull=False)
HAS_BASE = Q(base__isnull=False)
ANSWERED = Q(response__isnull=False)
CONVERTED = Q(converted=True)


def _improvement(infos: dict[str, InstrumentInfo]):
    """Score change in the better direction: positive = better, whatever the scale's direction."""
    higher = [c for c, i in infos.items() if i.higher_is_better]
    return Case(When(instrument__in=higher, then=F("response__score") - F("base")),
                default=F("base") - F("response__score"), output_field=FloatField())


def _room(infos: dict[str, InstrumentInfo]):
    """Distance from the baseline score to the best end of the scale (the most a patient could improve)."""
    whens = [When(instrument=c, then=(Value(i.maximum) - F("base")) if i.higher_is_better
                  else (F("base") - Value(i.minimum))) for c, i in infos.items()]
    return Case(*whens, default=Value(None), output_field=FloatField())


def eligible_assessments(members: QuerySet, *, as_of: dt.date, infos: dict[str, InstrumentInfo]) -> QuerySet:
    """The eligible assessments of the cohort's episodes (see definitions.py), joined to the materialized cohort
    (cohorts.materialized) and annotated with `base` (the baseline score of the same instrument, for scored answers
    after baseline: the episode's latest valid baseline response) and `converted` (surgery after the index
    procedure, on or before the due date)."""
    with_baseline = [c for c, i in infos.items() if i.has_baseline]
    member = "episode__cohort_member__"
    return (Assessment.objects
            .filter(**{f"{member}index_date__isnull": False})
            .filter(Q(window_end__lt=as_of) | ANSWERED)
            .exclude(status=Assessment.Status.CANCELLED, cancelled_reason__in=REPLANNABLE)
            .exclude(Q(response__isnull=True) & Q(**{f"{member}gone_date__lte": F("due_date")}))
            .annotate(bl=FilteredRelation("episode__baseline_scores", condition=Q(
                episode__baseline_scores__instrument=F("instrument"))))
            .annotate(
                base=Case(When(SCORED & Q(instrument__in=with_baseline) & ~Q(time_point="baseline"),
                               then=F("bl__score")), default=Value(None), output_field=FloatField()),
                converted=Case(When(Q(**{f"{member}conversion_date__lte": F("due_date")}), then=Value(True)),
                               default=Value(False), output_field=BooleanField()))
            .annotate(improvement=_improvement(infos), room=_room(infos)))


def outcome_cells(rows: QuerySet) -> list[dict]:
    """The outcome table of the cohort as a frequency table, in one GROUP BY: how many eligible assessments there
    are of each (time point, instrument, answered, score, baseline score, converted). Every count, mean, standard
    deviation, median and responder count of summaries.py is exact arithmetic on these cells (a few thousand rows
    whatever the number of patients): the database does the counting, nothing reads individual responses."""
    score = Case(When(SCORED, then=F("response__score")), default=Value(None), output_field=FloatField())
    answered = Case(When(ANSWERED, then=Value(True)), default=Value(False), output_field=BooleanField())
    return list(rows.annotate(a=answered, s=score)
                .values("time_point", "instrument", "a", "s", "base", "converted")
                .annotate(n=Count("id"), order=Min("time_point_order"))
                .order_by())


def oarsi_successes(rows: QuerySet, infos: dict[str, InstrumentInfo]) -> dict[str, int]:
    """OMERACT-OARSI responders per time point among the pain (NPRS) rows that are evaluable and not converted,
    except those whose pain alone improved enough ("high" improvement): summaries.py counts those from the outcome
    cells, so this query joins the other domains only for the rows that need them.

    Pain comes from the NPRS row itself; function from a regional function score answered at the same time point
    with a baseline of the same instrument; patient global from SANE. A domain that was not answered counts as not
    improved. Counted DISTINCT on the assessment, so several answers of a domain never count a patient twice."""
    pain = infos.get(defs.OARSI_PAIN)
    if pain is None:
        return {}
    t = defs.oarsi_thresholds()
    qs = (rows.filter(instrument=pain.code).filter(SCORED & HAS_BASE & ~CONVERTED)
          .exclude(_domain_met(Q(), "improvement", "room", pain, t["high_relative"], t["high_absolute"])))
    success = Q(pk__in=[])
    moderate = [_domain_met(Q(), "improvement", "room", pain, t["moderate_relative"], t["moderate_absolute"])]
    domains = [("fn", [infos[c] for c in defs.OARSI_FUNCTION if c in infos], True)]
    if defs.OARSI_GLOBAL in infos:
        domains.append(("gl", [infos[defs.OARSI_GLOBAL]], False))
    for prefix, members, counts_high in domains:
        if not members:
            continue
        codes = [m.code for m in members]
        qs = qs.annotate(**{
            f"{prefix}_t": FilteredRelation("episode__responses", condition=Q(
                episode__responses__time_point=F("time_point"), episode__responses__valid=True,
                episode__responses__score__isnull=False, episode__responses__instrument__in=codes)),
            f"{prefix}_b": FilteredRelation("episode__baseline_scores", condition=Q(
                episode__baseline_scores__instrument__in=codes))})
        same = Q(**{f"{prefix}_t__instrument": F(f"{prefix}_b__instrument")})
        imp, room = [], []
        for m in members:
            later, before = F(f"{prefix}_t__score"), F(f"{prefix}_b__score")
            imp.append(When(**{f"{prefix}_t__instrument": m.code},
                            then=(later - before) if m.higher_is_better else (before - later)))
            room.append(When(**{f"{prefix}_t__instrument": m.code},
                             then=(Value(m.maximum) - before) if m.higher_is_better else (before - Value(m.minimum))))
        qs = qs.annotate(**{f"{prefix}_imp": Case(*imp, output_field=FloatField()),
                            f"{prefix}_room": Case(*room, output_field=FloatField())})
        for m in members:
            is_m = same & Q(**{f"{prefix}_t__instrument": m.code})
            if counts_high:
                success |= _domain_met(is_m, f"{prefix}_imp", f"{prefix}_room", m, t["high_relative"],
                                       t["high_absolute"])
        moderate.append(reduce(or_, [
            _domain_met(same & Q(**{f"{prefix}_t__instrument": m.code}), f"{prefix}_imp", f"{prefix}_room", m,
                        t["moderate_relative"], t["moderate_absolute"]) for m in members]))
    flags = [Case(When(q, then=Value(1)), default=Value(0), output_field=IntegerField()) for q in moderate]
    qs = qs.annotate(moderate_domains=reduce(lambda a, b: a + b, flags))
    success |= Q(moderate_domains__gte=2)
    return dict(qs.values("time_point").annotate(n=Count("id", distinct=True, filter=success))
                .values_list("time_point", "n").order_by())


def _domain_met(where: Q, improvement: str, room: str, info: InstrumentInfo, relative: float, absolute: float) -> Q:
    """An OARSI domain improved: by at least `relative` of the room to improve and `absolute` points on 0-100."""
    return where & Q(**{f"{room}__gt": 0}) & Q(**{f"{improvement}__gte": F(room) * relative - EPS}) & \
        Q(**{f"{improvement}__gte": absolute / info.to_100(1) - EPS})
