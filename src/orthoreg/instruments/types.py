"""The types of an instrument definition (a questionnaire as data: its items, answer options, subscales and
licence) and the names of the FHIR extensions that carry them. Parsing the FHIR shape is in fhir.py; where
definitions live and how they are found, in definitions.py."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

EXT = "urn:orthoreg:fhir:"
EXT_INSTRUMENT = EXT + "instrument"
EXT_SUBSCALE = EXT + "subscale"
EXT_NOT_APPLICABLE = EXT + "not-applicable"
EXT_ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
EXT_MIN = "http://hl7.org/fhir/StructureDefinition/minValue"
EXT_MAX = "http://hl7.org/fhir/StructureDefinition/maxValue"
EXT_TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"

PLACEHOLDER_MARK = "licensed text not installed"

CODE_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
ITEM_TYPES = ("choice", "integer", "decimal")
BETTER = ("higher", "lower")

# Scoring methods (their arithmetic is in scoring.py). Each names its published rule.
METHODS = {
    "value": "the single item's value",
    "sum": "sum of the items",
    "mean": "mean of the answered items",
    "percent_of_answered_max": "sum / (maximum of the answered items) x 100",
    "inverted_percent_of_answered_max": "100 - sum / (maximum of the answered items) x 100 (= 100 - mean x 25 "
                                        "for items scored 0-4)",
    "signed_amount": "+amount, -amount or 0 by the direction item (1 better, -1 worse, 0 about the same)",
}



class DefinitionError(ValueError):
    """A definition or pack that does not hold together. `.errors` lists every problem found."""

    def __init__(self, errors: list[str], source: str = ""):
        self.errors = list(errors)
        self.source = source
        head = f"{source}: " if source else ""
        super().__init__(head + "; ".join(self.errors))


@dataclass(frozen=True)
class Option:
    code: str
    display: str
    value: float | None  # the ordinal value scored; None for the not-applicable option
    not_applicable: bool = False
    translations: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """"3 · Moderate" style label, or the display alone when it already is the value."""
        if self.value is None:
            return self.display
        number = format_number(self.value)
        return self.display if self.display.strip() == number else f"{number} · {self.display}"


@dataclass(frozen=True)
class Item:
    number: int  # 1-based position in the answer list
    link_id: str
    text: str
    type: str  # choice | integer | decimal
    required: bool
    subscales: tuple[str, ...]
    options: tuple[Option, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    prefix: str = ""
    translations: dict[str, str] = field(default_factory=dict)

    @property
    def scored_options(self) -> tuple[Option, ...]:
        return tuple(o for o in self.options if not o.not_applicable)

    @property
    def has_not_applicable(self) -> bool:
        return any(o.not_applicable for o in self.options)

    @property
    def low(self) -> float:
        if self.type == "choice":
            return min(o.value for o in self.scored_options)
        return self.minimum

    @property
    def high(self) -> float:
        if self.type == "choice":
            return max(o.value for o in self.scored_options)
        return self.maximum

    def text_for(self, language: str = "en") -> str:
        return self.translations.get(language, self.text)

    @property
    def is_placeholder(self) -> bool:
        return PLACEHOLDER_MARK in self.text

    def describe_allowed(self) -> str:
        """The allowed answers in words, for error messages and help text."""
        null = "empty/null for not applicable" if self.has_not_applicable else "empty/null if unanswered"
        if self.type == "choice":
            values = ", ".join(o.label.replace(" · ", " = ", 1) for o in self.scored_options)
            return f"one of {values} ({null})"
        kind = "a whole number" if self.type == "integer" else "a number"
        return f"{kind} from {format_number(self.minimum)} to {format_number(self.maximum)} ({null})"


@dataclass(frozen=True)
class Subscale:
    code: str
    title: str
    method: str
    items: tuple[int, ...]  # 0-based indexes into the answer list
    min_answered_percent: int
    minimum: float
    maximum: float
    better: str  # "higher" | "lower"
    mcid: float | None = None
    mcid_percent: float | None = None
    mcid_source: str = ""
    percent_change: bool = False
    primary: bool = False
    min_answered: int = 0  # the count of answered (not N/A) items needed; 0 = derived from the percent
    missing_rule_source: str = ""
    pass_value: float | None = None  # patient acceptable symptom state: an absolute score (None: none published)
    pass_source: str = ""
    pass_scope: tuple[tuple[str, str], ...] = ()  # (condition, site) pairs it was published for; () = any
    pass_verify: bool = False

    def __post_init__(self):
        if not self.min_answered:
            object.__setattr__(self, "min_answered", min_answered_for(self.min_answered_percent, len(self.items)))

    @property
    def higher_is_better(self) -> bool:
        return self.better == "higher"

    def describe_missing(self) -> str:
        """The missing-item rule in words: "at least 7 of its 8 items answered"."""
        total = len(self.items)
        if total == 1:
            return "its item answered"
        if self.min_answered >= total:
            return f"all {total} items answered"
        return f"at least {self.min_answered} of its {total} items answered"

    def describe_rule(self) -> str:
        rule = METHODS[self.method]
        if self.method in ("value", "signed_amount"):
            return rule
        if len(self.items) > 1:
            rule += f"; scored with {self.describe_missing()}"
        if self.missing_rule_source:
            rule += f" ({self.missing_rule_source})"
        return rule


@dataclass(frozen=True)
class Licence:
    name: str
    holder: str = ""
    redistributable: bool = False
    note: str = ""


@dataclass(frozen=True)
class Definition:
    code: str
    version: str
    title: str
    short_title: str
    description: str
    copyright: str
    licence: Licence
    scoring_source: str
    answer_guide: str
    items: tuple[Item, ...]
    subscales: tuple[Subscale, ...]
    origin: str  # "shipped" | "site"
    text_status: str  # "shipped" | "installed" | "not installed"
    resource: dict = field(repr=False, compare=False, default_factory=dict)
    pack_error: str = ""  # why an installed pack is being ignored
    status: str = "active"  # the Questionnaire's status; an imported definition is "draft" until reviewed

    @property
    def reviewed(self) -> bool:
        """A person has reviewed it (shipped definitions are; an import is a draft until someone does)."""
        return self.status != "draft"

    @property
    def text_installed(self) -> bool:
        return self.text_status != "not installed"

    @property
    def sendable(self) -> bool:
        """May be sent to patients: its item text is present, it has a scoring rule and a person has reviewed it."""
        return self.text_installed and bool(self.subscales) and self.reviewed

    @property
    def primary(self) -> Subscale | None:
        return next((s for s in self.subscales if s.primary), None)

    def subscale(self, code: str) -> Subscale:
        for s in self.subscales:
            if s.code == code:
                return s
        raise KeyError(code)

    @property
    def licence_status(self) -> str:
        if self.text_status == "shipped":
            return "text shipped" if self.licence.redistributable else "text shipped (site definition)"
        if self.text_status == "installed":
            return "licensed text installed"
        if self.pack_error:
            return "licensed text not installed (the installed pack is invalid)"
        return "licensed text not installed"


def format_number(value: float | None) -> str:
    if value is None:
        return "—"
    value = float(value)
    if value.is_integer():
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")



def min_answered_for(percent: int, total: int) -> int:
    """The smallest count of answered items that is at least `percent` % of `total` (50% of 5 -> 3)."""
    return max(1, math.ceil(percent * total / 100 - 1e-9))


