"""Reading an instrument definition from its FHIR R4 Questionnaire shape (with orthoreg's extensions, described in
definitions.py), checking it in full, and applying an instrument pack's licensed text to a shipped structure."""

from __future__ import annotations

import math
from typing import Any

from .types import (
    BETTER,
    CODE_RE,
    EXT_INSTRUMENT,
    EXT_MAX,
    EXT_MIN,
    EXT_NOT_APPLICABLE,
    EXT_ORDINAL,
    EXT_SUBSCALE,
    EXT_TRANSLATION,
    ITEM_TYPES,
    METHODS,
    PLACEHOLDER_MARK,
    Definition,
    DefinitionError,
    Item,
    Licence,
    Option,
    Subscale,
    format_number,
    min_answered_for,
)

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
    optional: dict[str, Any] = {}
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


