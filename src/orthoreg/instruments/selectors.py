"""Reads of the instruments app: responses of an episode and each instrument's trajectory."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import QuerySet

from orthoreg.formats import format_date
from orthoreg.registry.rules import time_point_label

from .definitions import UnknownInstrument, available_codes, get_definition
from .models import Response
from .types import Definition, DefinitionError, Subscale, format_number


def episode_responses(episode, instrument: str | None = None) -> QuerySet[Response]:
    qs = Response.objects.filter(episode=episode).select_related("entered_by")
    if instrument:
        qs = qs.filter(instrument=instrument)
    return qs.order_by("completed_at", "id")


@dataclass(frozen=True)
class Point:
    when: dt.datetime
    value: float
    time_point: str = ""

    @property
    def label(self) -> str:
        return time_point_label(self.time_point) if self.time_point else f"{format_date(self.when)}"


@dataclass
class Trajectory:
    """One instrument's primary score over time for one episode: what the chart and the words need.
    Plain data, so reports can draw it without the database."""

    code: str
    title: str  # e.g. "Pain"
    subscale: Subscale
    points: list[Point] = field(default_factory=list)
    unscored: int = 0  # responses recorded without a score

    @property
    def baseline(self) -> Point | None:
        if not self.points or self.subscale.method == "signed_amount":
            return None
        return next((p for p in self.points if p.time_point == "baseline"), self.points[0])

    @property
    def latest(self) -> Point | None:
        return self.points[-1] if self.points else None

    @property
    def improvement(self) -> float | None:
        """Latest minus baseline, positive when better (whatever the scale's direction)."""
        base, last = self.baseline, self.latest
        if base is None or last is None or base is last:
            return None
        diff = last.value - base.value
        return diff if self.subscale.higher_is_better else -diff

    @property
    def percent_better(self) -> float | None:
        """Improvement as a percent of the baseline's distance from the best end of the scale."""
        improvement, base = self.improvement, self.baseline
        if improvement is None:
            return None
        room = (self.subscale.maximum - base.value) if self.subscale.higher_is_better else \
            (base.value - self.subscale.minimum)
        return improvement / room * 100 if room > 0 else None

    @property
    def beyond_mcid(self) -> bool | None:
        """Whether the improvement (or worsening) reaches the minimal clinically important difference."""
        improvement = self.improvement
        sub = self.subscale
        if improvement is None or (sub.mcid is None and sub.mcid_percent is None):
            return None
        reached = sub.mcid is not None and abs(improvement) >= sub.mcid
        if sub.mcid_percent is not None and sub.percent_change:
            percent = self.percent_better
            reached = reached or (percent is not None and abs(percent) >= sub.mcid_percent)
        return reached

    @property
    def mcid_verdict(self) -> str | None:
        """"improved" or "worsened" by at least the MCID, "within" it, or None when there is no MCID."""
        reached = self.beyond_mcid
        if reached is None:
            return None
        if not reached:
            return "within"
        return "improved" if self.improvement > 0 else "worsened"

    @property
    def words(self) -> str:
        """The change in words, e.g. "Pain 7 → 3, 57% better"."""
        last = self.latest
        if last is None:
            return f"{self.title}: no score yet"
        if self.subscale.method == "signed_amount":
            v = last.value
            said = "about the same" if v == 0 else f"{format_number(abs(v))}% {'better' if v > 0 else 'worse'}"
            return f"{self.title}: {said} at {last.label.lower()}"
        base = self.baseline
        if base is last:
            return f"{self.title} {format_number(last.value)} at {last.label.lower()}"
        head = f"{self.title} {format_number(base.value)} → {format_number(last.value)}"
        improvement = self.improvement
        if abs(improvement) < 0.005:
            return f"{head}, no change"
        direction = "better" if improvement > 0 else "worse"
        if self.subscale.percent_change and self.percent_better is not None:
            return f"{head}, {format_number(round(abs(self.percent_better)))}% {direction}"
        points = format_number(round(abs(improvement), 2))
        return f"{head}, {points} point{'' if points == '1' else 's'} {direction}"

    @property
    def alt_text(self) -> str:
        series = ", ".join(f"{p.label} {format_number(p.value)}" for p in self.points)
        return f"{self.title} over time: {series or 'no scores'}."


def trajectory_of(definition: Definition, responses, subscale: str | None = None) -> Trajectory:
    """The trajectory of one subscale (the primary one by default) from responses in time order."""
    sub = definition.subscale(subscale) if subscale else definition.primary
    title = definition.short_title if sub.primary or len(definition.subscales) == 1 else \
        f"{definition.short_title} {sub.title.lower()}"
    traj = Trajectory(code=definition.code, title=title, subscale=sub)
    for r in responses:
        value = (r.scores or {}).get(sub.code)
        if value is None:
            traj.unscored += 1
        else:
            traj.points.append(Point(when=r.completed_at, value=float(value), time_point=r.time_point))
    return traj


def episode_trajectories(episode) -> list[Trajectory]:
    """One trajectory (primary subscale) per instrument answered in the episode, in the usual order."""
    by_code: dict[str, list[Response]] = {}
    for r in episode_responses(episode):
        by_code.setdefault(r.instrument, []).append(r)
    out = []
    for code, responses in by_code.items():
        try:
            definition = get_definition(code)
        except (UnknownInstrument, DefinitionError):
            continue
        if definition.primary is not None:
            out.append(trajectory_of(definition, responses))
    order = {code: n for n, code in enumerate(available_codes())}
    return sorted(out, key=lambda t: (order.get(t.code, len(order)), t.code))
