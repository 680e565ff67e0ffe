"""Schedule arithmetic and protocol choice. Pure functions, except protocol_for which reads protocols."""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

from orthoreg.registry import rules

from .models import Protocol, TimePoint


def add_months(day: dt.date, months: int) -> dt.date:
    """Calendar months later (or earlier); the day is clamped to the month's end (31 Jan + 1 month = 28/29 Feb)."""
    years, month0 = divmod(day.month - 1 + months, 12)
    year, month = day.year + years, month0 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class PlannedAssessment:
    time_point: str
    order: int
    instrument: str
    due_date: dt.date
    window_start: dt.date
    window_end: dt.date


@dataclass(frozen=True)
class TimePointSpec:
    """What the planner needs of a time point (a TimePoint row or a plain spec)."""

    label: str
    offset_months: int
    offset_days: int
    window_before_days: int
    window_after_days: int
    instruments: tuple[str, ...]
    order: int = 0

    @classmethod
    def of(cls, tp) -> TimePointSpec:
        return cls(tp.label, tp.offset_months, tp.offset_days, tp.window_before_days, tp.window_after_days,
                   tuple(tp.instruments), tp.order)


def due_date(index_date: dt.date, spec: TimePointSpec) -> dt.date:
    return add_months(index_date, spec.offset_months) + dt.timedelta(days=spec.offset_days)


def plan(index_date: dt.date, specs) -> list[PlannedAssessment]:
    """Every (time point, instrument) of a protocol with its due date and window."""
    planned = []
    for spec in specs:
        due = due_date(index_date, spec)
        for code in spec.instruments:
            planned.append(PlannedAssessment(
                time_point=spec.label, order=spec.order, instrument=code, due_date=due,
                window_start=due - dt.timedelta(days=spec.window_before_days),
                window_end=due + dt.timedelta(days=spec.window_after_days)))
    return planned


def protocol_for(*, clinic_id: int, condition: str, body_site: str, procedure_kind: str, protocols=None):
    """The most specific active protocol that fits (clinic's own > network default; kind, site > any)."""
    candidates = protocols if protocols is not None else Protocol.objects.filter(active=True, condition=condition)
    fitting = [p for p in candidates
               if p.active and p.condition == condition
               and p.clinic_id in (None, clinic_id)
               and p.body_site in ("", body_site)
               and p.procedure_kind in ("", procedure_kind)]
    if not fitting:
        return None
    return max(fitting, key=lambda p: (p.specificity(), -p.pk))


# The default protocols (data migration and tests): free instruments only, so everything can be sent.
# A site adds licensed instruments (FAAM, FAOS, KOOS, ...) once their instrument pack is installed.
DEFAULT_WINDOWS = {
    # time point (registry.rules.TIME_POINTS: its offset): window before, window after, instruments
    "baseline": (30, 0, ("nprs", "sane")),
    "6w": (7, 14, ("nprs", "global-improvement")),
    "3m": (14, 28, ("nprs", "sane", "global-improvement")),
    "6m": (28, 42, ("nprs", "sane", "global-improvement", "satisfaction")),
    "12m": (30, 60, ("nprs", "sane", "global-improvement", "satisfaction")),
    "24m": (30, 60, ("nprs", "sane", "global-improvement")),
    "36m": (30, 60, ("nprs", "global-improvement")),
    "48m": (30, 60, ("nprs", "global-improvement")),
    "60m": (30, 60, ("nprs", "global-improvement")),
}
# label, months, days, window before, window after, instruments
DEFAULT_TIME_POINTS = [(tp.code, tp.months, tp.days, *DEFAULT_WINDOWS[tp.code]) for tp in rules.TIME_POINTS]
DEFAULT_PROTOCOLS = [
    # name, condition, body site
    ("Foot and ankle: hallux rigidus", "hallux_rigidus", "first_mtp"),
    ("Foot and ankle: osteoarthritis", "oa_primary", "ankle"),
    ("Knee osteoarthritis", "oa_primary", "knee"),
    ("Hip osteoarthritis", "oa_primary", "hip"),
    ("Low back pain", "low_back_pain", "lumbar_spine"),
]


def default_specs() -> list[TimePointSpec]:
    return [TimePointSpec(label, months, days, before, after, instruments, order)
            for order, (label, months, days, before, after, instruments) in enumerate(DEFAULT_TIME_POINTS)]


def install_default_protocols(protocol_model=None, time_point_model=None) -> int:
    """Create the default protocols that are missing (the data migration passes its historical models)."""
    if protocol_model is None:
        protocol_model, time_point_model = Protocol, TimePoint
    created = 0
    for name, condition, site in DEFAULT_PROTOCOLS:
        if protocol_model.objects.filter(clinic=None, condition=condition, body_site=site, procedure_kind="").exists():
            continue
        protocol = protocol_model.objects.create(name=name, condition=condition, body_site=site)
        time_point_model.objects.bulk_create([
            time_point_model(protocol=protocol, label=label, offset_months=months, offset_days=days,
                             window_before_days=before, window_after_days=after, instruments=list(instruments),
                             order=order)
            for order, (label, months, days, before, after, instruments) in enumerate(DEFAULT_TIME_POINTS)])
        created += 1
    return created
