"""{% load report_tags %}: numbers as reports print them: rates with their denominators and intervals, small cells."""

from __future__ import annotations

from django import template

from orthoreg.analytics import definitions as defs
from orthoreg.analytics.report_types import DifferenceRow, InstrumentRow, LossRow, Rate, ResponderRate, Summary
from orthoreg.instruments.types import format_number

register = template.Library()

SMALL_CELL = 5  # public pages: counts below this are shown as "<5"


@register.filter
def pct(value, digits: int = 0) -> str:
    """0.4444 -> "44%"; None -> "—"."""
    if value is None or value == "":
        return "—"
    return f"{float(value) * 100:.{int(digits)}f}%"


@register.filter
def num(value, digits: int = 1) -> str:
    if value is None or value == "":
        return "—"
    return format_number(round(float(value), int(digits)))


@register.simple_tag
def ci(low, high, percent: bool = False, digits: int = 1) -> str:
    """"(95% CI 30–67%)" or "(95% CI 2.1–3.4)"; "" when there is no interval."""
    if low is None or high is None:
        return ""
    if percent:
        return f"(95% CI {percent_range(low, high)})"
    return f"(95% CI {num(low, digits)} to {num(high, digits)})"


def percent_range(low, high) -> str:
    """0.3, 0.667 -> "30–67%": the one way reports print the interval of a rate or a survival."""
    return f"{float(low) * 100:.0f}–{float(high) * 100:.0f}%"


@register.simple_tag
def percent_ci(value, low, high) -> str:
    """A proportion that is not a count of responders (Kaplan-Meier survival), in the rates' format:
    "95% (95% CI 80–99%)"."""
    text = pct(value)
    interval = ci(low, high, True)
    return f"{text} {interval}" if interval else text


@register.simple_tag
def ci_diff(low, high, percent: bool = False) -> str:
    """The interval of a difference, whose ends may be negative: "(95% CI −39% to +18%)"."""
    if low is None or high is None:
        return ""
    if percent:
        return f"(95% CI {signed(low, True)} to {signed(high, True)})"
    return f"(95% CI {signed(low)} to {signed(high)})"


@register.filter
def signed(value, percent: bool = False) -> str:
    """+41% / −0.3: a difference with its sign."""
    if value is None:
        return "—"
    v = float(value) * (100 if percent else 1)
    text = f"{abs(v):.0f}%" if percent else num(abs(v))
    if text in ("0%", "0"):
        return text
    return ("+" if v > 0 else "−") + text


@register.filter
def diff_rows(differences: list[DifferenceRow]) -> list[DifferenceRow]:
    """The rows of a differences table worth a line: adverse events, and questionnaire rows with a rate shown or a
    mean change; each row's responders limited as in shown_responders."""
    rows = []
    for row in differences or []:
        if not row.instrument:
            rows.append(row)
            continue
        shown = shown_responders(row)
        if shown or row.mean_change:
            rows.append(row.model_copy(update={"responders": shown}))
    return rows


@register.filter
def months(days) -> str:
    if days is None:
        return "—"
    return f"{float(days) / (365.25 / 12):.1f} months"


@register.filter
def definition_title(code: str) -> str:
    definition = defs.DEFINITIONS.get(code)
    return definition.title if definition else code


@register.filter
def get(mapping, key):
    if mapping is None:
        return None
    return mapping.get(key) if hasattr(mapping, "get") else getattr(mapping, key, None)


def shown_responders(row: InstrumentRow | DifferenceRow) -> dict:
    """The responder rates a table shows for a row: all but "no conversion", which is the same for every
    questionnaire of a time point and is shown once, on the pain row."""
    return {code: r for code, r in row.responders.items()
            if code != defs.NO_CONVERSION.code or row.instrument == defs.PAIN_INSTRUMENT}


register.filter("shown_responders", shown_responders)


@register.filter
def publishable(rate: Rate | ResponderRate | None) -> bool:
    """A rate may be shown publicly when neither its successes nor its failures are a small cell."""
    if not rate or rate.rate is None or rate.numerator is None:
        return False
    return rate.numerator >= SMALL_CELL and rate.denominator - rate.numerator >= SMALL_CELL


@register.inclusion_tag("reports/_rate.html")
def rate(r: Rate | ResponderRate | None, worst: bool = True):
    return {"r": r, "worst": worst}


@register.inclusion_tag("reports/_summary_stat.html")
def summary_stat(s: Summary | None, digits: int = 1):
    return {"s": s, "digits": digits}


GROUP_NAMES = {"responders": "Responders", "non_responders": "Non-responders", "followed": "Followed (answered)",
               "lost": "Lost (did not answer)"}
VARIABLE_NAMES = {"age": "age", "grade": "grade", "baseline": "baseline pain"}


@register.filter
def pretty_group(name: str) -> str:
    return GROUP_NAMES.get(name, name)


@register.filter
def split(text: str) -> list[str]:
    return text.split()


@register.filter
def loss_sentence(row: LossRow) -> str:
    """Whether the lost differ from the followed, and responders from non-responders, in plain words."""
    parts = []
    for pairs, a, b in ((row.lost_vs_followed, "the lost", "the followed"),
                        (row.responders_vs_non_responders, "responders", "non-responders")):
        differs = [VARIABLE_NAMES[v] + f" ({signed(x.difference)}, 95% CI {num(x.ci_low)} to {num(x.ci_high)})"
                   for v, x in pairs.items() if x.differs]
        compared = [v for v, x in pairs.items() if not x.too_few]
        if not compared:
            parts.append(f"{a.capitalize()} and {b}: too few to compare.")
        elif differs:
            parts.append(f"{a.capitalize()} differ from {b} in " + "; ".join(differs) + ".")
        else:
            parts.append(f"{a.capitalize()} and {b}: no clear difference in "
                         + ", ".join(VARIABLE_NAMES[v] for v in compared) + ".")
    return " ".join(parts)
