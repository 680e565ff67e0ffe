"""Instrument definitions: questionnaires as data.

Every instrument is a FHIR R4 Questionnaire (JSON) with our own extensions carrying what scoring needs:

* root extension ``urn:orthoreg:fhir:instrument``: shortTitle, scoringSource, textStatus ("shipped" or
  "placeholder"), answerGuide, licence (name, holder, redistributable, note);
* one root extension ``urn:orthoreg:fhir:subscale`` per subscale: code, title, method, the missing-item rule as
  the manual states it (minAnswered, a count of answered items, where the manual gives a count; else
  minAnsweredPercent), missingRuleSource (where that rule is published), minimum, maximum, betterWhen ("higher"/"lower"), mcid, mcidPercent, mcidSource, percentChange, primary; and where a patient acceptable symptom
  state is published: pass (an absolute score), passSource, passScope (the condition@site pairs it was published
  for, comma-separated, e.g. "oa_primary@knee"; empty = any) and passVerify (the value is not the primary source's
  own instrument or was not checked against it);
* on each item, ``urn:orthoreg:fhir:subscale`` (valueCode, repeatable) naming the subscales it counts in, and
  the standard minValue / maxValue extensions for numeric items;
* on each answer option, the standard ordinalValue extension (the number scored) or
  ``urn:orthoreg:fhir:not-applicable`` for the option recorded as null;
* display text in other languages with the standard translation extension on ``_text`` / ``_display``.

Three places hold definitions:

* shipped: ``definitions/<code>.json`` in this package (our own wording whole; licensed instruments as
  structure and scoring only, with placeholder item text);
* site definitions: ``<DATA_DIR>/instruments/<code>.json`` (e.g. imported from a REDCap data dictionary);
* instrument packs: ``<DATA_DIR>/instrument-packs/<code>.json``, the licensed text a site installs for a
  shipped instrument. A pack supplies text only; structure and scoring always come from the definition.

Both data-directory folders are plain files so they survive restarts; several machines serving one registry
need a shared data directory (or the same files installed on each).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings

log = logging.getLogger(__name__)

EXT = "urn:orthoreg:fhir:"
EXT_INSTRUMENT = EXT + "instrument"
EXT_SUBSCALE = EXT + "subscale"
EXT_NOT_APPLICABLE = EXT + "not-applicable"
EXT_ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
EXT_MIN = "http://hl7.org/fhir/StructureDefinition/minValue"
EXT_MAX = "http://hl7.org/fhir/StructureDefinition/maxValue"
EXT_TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"

PLACEHOLDER_MARK = "licensed text not installed"
SHIPPED_DIR = Path(__file__).resolve().parent
# The order instruments are listed in; site definitions follow, by code.
SHIPPED_ORDER = ("nprs", "sane", "global-improvement", "satisfaction", "faam-adl", "faam-sports", "lefs", "faos",
                 "moxfq", "koos")
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


class UnknownInstrument(LookupError):
    def __init__(self, code: str):
        self.code = code
        known = ", ".join(sorted(available_codes()))
        super().__init__(f"Unknown instrument {code!r}. Known instruments: {known}.")


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


# --- reading the FHIR shape -------------------------------------------------------------------------------

def _value(ext: dict) -> Any:
    for key, value in ext.items():
        if key.startswith("value"):
            return value
    return None


def _extensions(obj: dict, url: str) -> list[dict]:
    return [e for e in obj.get("extension", []) or [] if isinstance(e, dict) and e.get("url") == url]


def _ext_value(obj: dict, url: str, default=None):
    found = _extensions(obj, url)
    return _value(found[0]) if found else default


def _complex(ext: dict) -> dict[str, Any]:
    """A complex extension's parts as {name: value}; nested complex parts as dicts."""
    parts: dict[str, Any] = {}
    for part in ext.get("extension", []) or []:
        if not isinstance(part, dict) or "url" not in part:
            continue
        parts[part["url"]] = _complex(part) if "extension" in part else _value(part)
    return parts


def _translations(element: dict | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for ext in _extensions(element or {}, EXT_TRANSLATION):
        parts = _complex(ext)
        if parts.get("lang") and parts.get("content"):
            out[str(parts["lang"])] = str(parts["content"])
    return out


def flat_items(items: list | None) -> list[dict]:
    """Questionnaire items in answer order; groups are flattened, display items skipped."""
    out: list[dict] = []
    for it in items or []:
        if not isinstance(it, dict):
            out.append(it)
            continue
        if it.get("type") == "group":
            out.extend(flat_items(it.get("item")))
        elif it.get("type") != "display":
            out.append(it)
    return out


def _number(value, what: str, errors: list[str]) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        errors.append(f"{what} must be a number, not {value!r}")
        return None
    return float(value)


def _parse_options(raw: dict, label: str, errors: list[str]) -> tuple[Option, ...]:
    options: list[Option] = []
    for k, opt in enumerate(raw.get("answerOption") or [], start=1):
        coding = opt.get("valueCoding") if isinstance(opt, dict) else None
        if not isinstance(coding, dict) or not coding.get("code"):
            errors.append(f"{label}: answer option {k} needs a valueCoding with a code")
            continue
        na = bool(_ext_value(opt, EXT_NOT_APPLICABLE, False))
        value = None
        if not na:
            raw_value = _ext_value(opt, EXT_ORDINAL)
            if raw_value is None:
                errors.append(f"{label}: answer option {coding['code']!r} has no ordinalValue")
                continue
            value = _number(raw_value, f"{label}: ordinal value of option {coding['code']!r}", errors)
            if value is None:
                continue
        options.append(Option(code=str(coding["code"]), display=str(coding.get("display") or coding["code"]),
                              value=value, not_applicable=na,
                              translations=_translations(coding.get("_display"))))
    return tuple(options)


def _parse_item(number: int, raw: dict, errors: list[str]) -> Item | None:
    if not isinstance(raw, dict):
        errors.append(f"item {number}: must be an object")
        return None
    link_id = str(raw.get("linkId") or "")
    label = f"item {number}" + (f" ({link_id})" if link_id else "")
    if not link_id:
        errors.append(f"{label}: linkId is missing")
    type_ = raw.get("type")
    if type_ not in ITEM_TYPES:
        errors.append(f"{label}: type {type_!r} cannot be scored (use one of {', '.join(ITEM_TYPES)})")
        return None
    text = str(raw.get("text") or "").strip()
    if not text:
        errors.append(f"{label}: text is missing")
    subscales = tuple(str(_value(e)) for e in _extensions(raw, EXT_SUBSCALE))
    options = _parse_options(raw, label, errors) if type_ == "choice" else ()
    minimum = maximum = None
    if type_ == "choice":
        if not any(not o.not_applicable for o in options):
            errors.append(f"{label}: a choice item needs answer options with ordinal values")
        codes = [o.code for o in options]
        if len(set(codes)) != len(codes):
            errors.append(f"{label}: answer option codes repeat")
        values = [o.value for o in options if not o.not_applicable]
        if len(set(values)) != len(values):
            errors.append(f"{label}: two answer options have the same ordinal value")
    else:
        if raw.get("answerOption"):
            errors.append(f"{label}: a {type_} item has no answer options")
        minimum = _ext_value(raw, EXT_MIN)
        maximum = _ext_value(raw, EXT_MAX)
        if minimum is None or maximum is None:
            errors.append(f"{label}: a {type_} item needs minValue and maxValue extensions")
            return None
        minimum = _number(minimum, f"{label}: minValue", errors)
        maximum = _number(maximum, f"{label}: maxValue", errors)
        if minimum is None or maximum is None:
            return None
        if minimum >= maximum:
            errors.append(f"{label}: minValue must be below maxValue")
    return Item(number=number, link_id=link_id, text=text, type=type_, required=bool(raw.get("required", False)),
                subscales=subscales, options=options, minimum=minimum, maximum=maximum,
                prefix=str(raw.get("prefix") or ""), translations=_translations(raw.get("_text")))


def min_answered_for(percent: int, total: int) -> int:
    """The smallest count of answered items that is at least `percent` % of `total` (50% of 5 -> 3)."""
    return max(1, math.ceil(percent * total / 100 - 1e-9))


def _expected_range(method: str, items: list[Item]) -> tuple[float, float] | None:
    if method == "value":
        return items[0].low, items[0].high
    if method == "sum":
        return sum(i.low for i in items), sum(i.high for i in items)
    if method == "mean":
        return min(i.low for i in items), max(i.high for i in items)
    if method in ("percent_of_answered_max", "inverted_percent_of_answered_max"):
        return 0.0, 100.0
    if method == "signed_amount":
        return -items[1].high, items[1].high
    return None


def _parse_subscale(ext: dict, items: list[Item], errors: list[str]) -> Subscale | None:
    parts = _complex(ext)
    code = str(parts.get("code") or "")
    label = f"subscale {code!r}" if code else "a subscale"
    if not code:
        errors.append("a subscale has no code")
        return None
    method = parts.get("method")
    if method not in METHODS:
        errors.append(f"{label}: unknown method {method!r} (use one of {', '.join(METHODS)})")
        return None
    members = [i for i in items if code in i.subscales]
    if not members:
        errors.append(f"{label}: no item counts in it")
        return None
    count = parts.get("minAnswered")
    if count is not None and "minAnsweredPercent" in parts:
        errors.append(f"{label}: give the missing-item rule once, as minAnswered (a count) or minAnsweredPercent")
        return None
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= len(members):
            errors.append(f"{label}: minAnswered must be a whole number from 1 to {len(members)} (its items)")
            return None
        min_answered = math.floor(count * 100 / len(members))
    else:
        min_answered = parts.get("minAnsweredPercent", 100)
        if isinstance(min_answered, bool) or not isinstance(min_answered, int) or not 1 <= min_answered <= 100:
            errors.append(f"{label}: minAnsweredPercent must be a whole number from 1 to 100")
            return None
        count = min_answered_for(min_answered, len(members))
    better = parts.get("betterWhen")
    if better not in BETTER:
        errors.append(f"{label}: betterWhen must be 'higher' or 'lower'")
        return None
    if method == "value" and len(members) != 1:
        errors.append(f"{label}: method 'value' scores exactly one item, not {len(members)}")
        return None
    if method == "sum" and count != len(members):
        errors.append(f"{label}: a sum needs every item answered (minAnsweredPercent 100); missing answers "
                      "would lower it")
        return None
    if method == "signed_amount":
        if len(members) != 2 or members[0].type != "choice" or members[1].type == "choice":
            errors.append(f"{label}: method 'signed_amount' needs a direction choice item followed by a number item")
            return None
        if {o.value for o in members[0].scored_options} - {-1.0, 0.0, 1.0}:
            errors.append(f"{label}: the direction item's ordinal values must be 1 (better), 0 (same), -1 (worse)")
            return None
        if members[1].minimum < 0:
            errors.append(f"{label}: the amount item cannot go below 0")
            return None
    if method in ("percent_of_answered_max", "inverted_percent_of_answered_max") and \
            any(i.high <= i.low for i in members):
        errors.append(f"{label}: every item needs a range to be scored as a percent")
        return None
    minimum = _number(parts.get("minimum"), f"{label}: minimum", errors)
    maximum = _number(parts.get("maximum"), f"{label}: maximum", errors)
    if minimum is None or maximum is None:
        return None
    expected = _expected_range(method, members)
    if expected and (abs(expected[0] - minimum) > 1e-9 or abs(expected[1] - maximum) > 1e-9):
        errors.append(f"{label}: declared range {format_number(minimum)} to {format_number(maximum)} does not match "
                      f"its items and method ({format_number(expected[0])} to {format_number(expected[1])})")
        return None
    optional = {}
    for key, name in (("mcid", "mcid"), ("mcidPercent", "mcid_percent"), ("pass", "pass_value")):
        if parts.get(key) is not None:
            optional[name] = _number(parts[key], f"{label}: {key}", errors)
    if parts.get("pass") is not None:
        if not str(parts.get("passSource") or "").strip():
            errors.append(f"{label}: a pass value needs its passSource (where it was published)")
            return None
        scope = []
        for pair in filter(None, (p.strip() for p in str(parts.get("passScope") or "").split(","))):
            condition, at, site = pair.partition("@")
            if not at or not condition or not site:
                errors.append(f"{label}: passScope {pair!r} is not condition@site")
                return None
            scope.append((condition, site))
        optional.update(pass_source=str(parts["passSource"]), pass_scope=tuple(scope),
                        pass_verify=bool(parts.get("passVerify", False)))
    return Subscale(code=code, title=str(parts.get("title") or code), method=method,
                    items=tuple(i.number - 1 for i in members), min_answered_percent=min_answered,
                    minimum=minimum, maximum=maximum, better=better, mcid_source=str(parts.get("mcidSource") or ""),
                    percent_change=bool(parts.get("percentChange", False)), primary=bool(parts.get("primary", False)),
                    min_answered=count, missing_rule_source=str(parts.get("missingRuleSource") or ""), **optional)


def parse_definition(resource: dict, *, origin: str = "site", source: str = "") -> Definition:
    """Build and check a Definition from Questionnaire JSON. Raises DefinitionError listing every problem."""
    errors: list[str] = []
    if not isinstance(resource, dict) or resource.get("resourceType") != "Questionnaire":
        raise DefinitionError(["not a FHIR Questionnaire (resourceType must be 'Questionnaire')"], source)
    code = str(resource.get("id") or "")
    if not CODE_RE.match(code):
        errors.append(f"id {code!r} must be 1-40 lower-case letters, digits or hyphens (it is the instrument code)")
    version = str(resource.get("version") or "")
    if not version or len(version) > 16:
        errors.append("version must be given, at most 16 characters")
    raw_items = flat_items(resource.get("item"))
    if not raw_items:
        errors.append("it has no items")
    items = [i for n, raw in enumerate(raw_items, start=1) if (i := _parse_item(n, raw, errors)) is not None]
    link_ids = [i.link_id for i in items]
    for dup in sorted({x for x in link_ids if link_ids.count(x) > 1}):
        errors.append(f"linkId {dup!r} is used by more than one item")
    meta = next(iter(_extensions(resource, EXT_INSTRUMENT)), {})
    meta = _complex(meta) if meta else {}
    subscales = [s for ext in _extensions(resource, EXT_SUBSCALE)
                 if (s := _parse_subscale(ext, items, errors)) is not None]
    codes = [s.code for s in subscales]
    for dup in sorted({x for x in codes if codes.count(x) > 1}):
        errors.append(f"subscale {dup!r} is defined twice")
    known = set(codes)
    for it in items:
        for name in it.subscales:
            if name not in known:
                errors.append(f"item {it.number} ({it.link_id}): counts in subscale {name!r}, which is not defined")
    if subscales and sum(s.primary for s in subscales) != 1:
        errors.append("exactly one subscale must be marked primary")
    if errors:
        raise DefinitionError(errors, source or code)
    licence = meta.get("licence") if isinstance(meta.get("licence"), dict) else {}
    text_status = "shipped" if meta.get("textStatus", "shipped") == "shipped" else "not installed"
    if text_status == "shipped" and any(i.is_placeholder for i in items):
        text_status = "not installed"
    return Definition(
        code=code, version=version, title=str(resource.get("title") or code),
        short_title=str(meta.get("shortTitle") or resource.get("title") or code),
        description=str(resource.get("description") or ""), copyright=str(resource.get("copyright") or ""),
        licence=Licence(name=str(licence.get("name") or "not stated"), holder=str(licence.get("holder") or ""),
                        redistributable=bool(licence.get("redistributable", False)),
                        note=str(licence.get("note") or "")),
        scoring_source=str(meta.get("scoringSource") or ""), answer_guide=str(meta.get("answerGuide") or ""),
        items=tuple(items), subscales=tuple(subscales), origin=origin, text_status=text_status, resource=resource,
        status=str(resource.get("status") or "active"))


# --- instrument packs (licensed text for a shipped structure) -------------------------------------------------

def check_pack(pack: dict, definition: Definition) -> list[str]:
    """Every way a pack fails to match the definition's structure; empty when it fits."""
    if not isinstance(pack, dict) or pack.get("resourceType") != "Questionnaire":
        return ["not a FHIR Questionnaire (resourceType must be 'Questionnaire')"]
    errors: list[str] = []
    if pack.get("id") != definition.code:
        errors.append(f"id is {pack.get('id')!r}; a pack for {definition.code} must have id {definition.code!r}")
    items = flat_items(pack.get("item"))
    if len(items) != len(definition.items):
        errors.append(f"it has {len(items)} items; {definition.code} has {len(definition.items)}")
    for expected, raw in zip(definition.items, items):
        label = f"item {expected.number} ({expected.link_id})"
        if not isinstance(raw, dict):
            errors.append(f"{label}: must be an object")
            continue
        if raw.get("linkId") != expected.link_id:
            errors.append(f"{label}: linkId is {raw.get('linkId')!r}, expected {expected.link_id!r}")
        if raw.get("type") != expected.type:
            errors.append(f"{label}: type is {raw.get('type')!r}, expected {expected.type!r}")
        text = str(raw.get("text") or "").strip()
        if not text:
            errors.append(f"{label}: text is missing")
        elif PLACEHOLDER_MARK in text:
            errors.append(f"{label}: still has the placeholder text")
        if expected.type == "choice":
            option_errors: list[str] = []
            options = _parse_options(raw, label, option_errors)
            errors.extend(option_errors)
            got = {(o.code, o.value, o.not_applicable) for o in options}
            want = {(o.code, o.value, o.not_applicable) for o in expected.options}
            if not option_errors and got != want:
                def show(s):
                    return ", ".join(f"{c}={'N/A' if na else format_number(v)}" for c, v, na in sorted(
                        s, key=lambda t: (t[2], t[1] if t[1] is not None else 0)))
                errors.append(f"{label}: answer options are [{show(got)}], expected [{show(want)}]")
            for o in options:
                if PLACEHOLDER_MARK in o.display:
                    errors.append(f"{label}: option {o.code!r} still has the placeholder text")
    return errors


def apply_pack(definition: Definition, pack: dict) -> Definition:
    """The definition with the pack's text (title, copyright, item and option text, translations)."""
    by_link = {raw["linkId"]: raw for raw in flat_items(pack.get("item")) if isinstance(raw, dict)}
    items = []
    for it in definition.items:
        raw = by_link[it.link_id]
        displays = {str(o["valueCoding"]["code"]): o["valueCoding"] for o in raw.get("answerOption") or []}
        options = tuple(
            Option(code=o.code, display=str(displays[o.code].get("display") or o.display), value=o.value,
                   not_applicable=o.not_applicable, translations=_translations(displays[o.code].get("_display")))
            for o in it.options)
        items.append(Item(number=it.number, link_id=it.link_id, text=str(raw["text"]).strip(), type=it.type,
                          required=it.required, subscales=it.subscales, options=options, minimum=it.minimum,
                          maximum=it.maximum, prefix=str(raw.get("prefix") or it.prefix),
                          translations=_translations(raw.get("_text"))))
    return Definition(
        code=definition.code, version=definition.version, title=str(pack.get("title") or definition.title),
        short_title=definition.short_title, description=definition.description,
        copyright=str(pack.get("copyright") or definition.copyright), licence=definition.licence,
        scoring_source=definition.scoring_source, answer_guide=definition.answer_guide, items=tuple(items),
        subscales=definition.subscales, origin=definition.origin, text_status="installed",
        resource=definition.resource)


# --- where definitions live -------------------------------------------------------------------------------

def packs_dir() -> Path:
    return Path(settings.DATA_DIR) / "instrument-packs"


def site_dir() -> Path:
    return Path(settings.DATA_DIR) / "instruments"


@lru_cache(maxsize=256)
def _read_json(path: str, mtime_ns: int, size: int) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise DefinitionError([f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"], path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionError([f"cannot be read ({exc})"], path) from None


@cache
def _shipped(code: str) -> Definition:
    path = SHIPPED_DIR / f"{code}.json"
    return parse_definition(json.loads(path.read_text(encoding="utf-8")), origin="shipped", source=path.name)


@lru_cache(maxsize=256)
def _site(path: str, mtime_ns: int, size: int) -> Definition:
    return parse_definition(_read_json(path, mtime_ns, size), origin="site", source=path)


@lru_cache(maxsize=256)
def _with_pack(code: str, path: str, mtime_ns: int, size: int) -> Definition:
    base = _shipped(code)
    try:
        pack = _read_json(path, mtime_ns, size)
        errors = check_pack(pack, base)
    except DefinitionError as exc:
        errors = exc.errors
    if errors:  # e.g. edited by hand after installation: ignore it rather than show wrong text
        message = f"{path}: " + "; ".join(errors)
        log.error("Instrument pack ignored: %s", message)
        return dataclasses.replace(base, pack_error=message)
    return apply_pack(base, pack)


def shipped_codes() -> list[str]:
    on_disk = {p.stem for p in SHIPPED_DIR.glob("*.json")}
    return [c for c in SHIPPED_ORDER if c in on_disk] + sorted(on_disk - set(SHIPPED_ORDER))


def site_codes() -> list[str]:
    try:
        names = os.listdir(site_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    shipped = set(shipped_codes())
    return sorted(n[:-5] for n in names if n.endswith(".json") and CODE_RE.match(n[:-5]) and n[:-5] not in shipped)


def available_codes() -> list[str]:
    return shipped_codes() + site_codes()


def _stat_key(path: Path) -> tuple[str, int, int] | None:
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return str(path), st.st_mtime_ns, st.st_size


def get_definition(code: str) -> Definition:
    """The definition of an instrument, with its installed pack's text (an invalid pack is ignored, see
    Definition.pack_error). Raises UnknownInstrument, or DefinitionError for a broken site definition."""
    if not isinstance(code, str) or not CODE_RE.match(code):
        raise UnknownInstrument(str(code))
    if (SHIPPED_DIR / f"{code}.json").is_file():
        key = _stat_key(packs_dir() / f"{code}.json")
        return _with_pack(code, *key) if key else _shipped(code)
    key = _stat_key(site_dir() / f"{code}.json")
    if key is None:
        raise UnknownInstrument(code)
    return _site(*key)


def all_definitions() -> list[Definition]:
    """Every usable instrument: shipped ones in their usual order, then the site's own (a broken site
    definition file is logged and left out)."""
    out = []
    for code in available_codes():
        try:
            out.append(get_definition(code))
        except DefinitionError as exc:
            log.error("Site instrument definition ignored: %s", exc)
    return out


def scoring_definition(code: str) -> Definition:
    """The definition used for scoring: like get_definition, but a shipped instrument never reads its pack
    (a pack cannot change structure or scoring), so bulk scoring touches no files."""
    if isinstance(code, str) and code in _shipped_set():
        return _shipped(code)
    return get_definition(code)


@lru_cache(maxsize=1)
def _shipped_set() -> frozenset[str]:
    return frozenset(shipped_codes())


def clear_caches() -> None:
    for fn in (_read_json, _shipped, _site, _with_pack, _shipped_set):
        fn.cache_clear()
