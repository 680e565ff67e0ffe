"""Import a REDCap data dictionary (the 18-column CSV) as an instrument definition.

Each row of the chosen form becomes an item, a scoring rule, or a line in the report saying why it could
not be mapped. What maps:

* radio, dropdown  -> choice item; the choice codes are the scored values, so they must be numbers
* yesno, truefalse -> choice item (1 Yes / 0 No, 1 True / 0 False)
* slider           -> integer item, 0-100 unless Text Validation Min/Max say otherwise
* text validated as integer or number (with min and max) -> integer / decimal item
* calc of the form sum([a], [b], ...), mean([a], ...) or [a] + [b] + ... over mapped items -> a subscale
  (the first one is the primary score)

What does not: free text, notes, dates and other text validations, checkbox (several answers per item),
file, signature and sql fields, other calculations; branching logic and identifiers are reported too.

Which way is better is not in a data dictionary: it is read from the calc field's note or annotation where they
say so ("lower is better", "higher scores are better"), else the importer must say it (`better=`); without it
nothing is made, since a lower-is-better score (PHQ-type) installed the other way round would read inverted.
An imported definition is a FHIR "draft": never sent to patients until a person has reviewed it
(services.instrument_review). Blanks: REDCap's sum() adds the answered fields and skips blank ones (a skipped item
lowers the total), [a] + [b] is blank when any field is; orthoreg scores a sum only with every item answered.
Accepted files: the data dictionary CSV (16-18 columns: older REDCap has no Matrix Ranking or Field Annotation)
or a REDCap instrument ZIP (the Shared Library / "download instrument" format, which holds instrument.csv).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass, field

from django.utils.html import strip_tags

from .fhir import parse_definition
from .types import CODE_RE, EXT_INSTRUMENT, EXT_MAX, EXT_MIN, EXT_ORDINAL, EXT_SUBSCALE, DefinitionError

COLUMNS = (
    "Variable / Field Name", "Form Name", "Section Header", "Field Type", "Field Label",
    "Choices, Calculations, OR Slider Labels", "Field Note", "Text Validation Type OR Show Slider Number",
    "Text Validation Min", "Text Validation Max", "Identifier?", "Branching Logic (Show field only if...)",
    "Required Field?", "Custom Alignment", "Question Number (surveys only)", "Matrix Group Name",
    "Matrix Ranking?", "Field Annotation",
)
(VAR, FORM, SECTION, TYPE, LABEL, CHOICES, NOTE, VALIDATION, VMIN, VMAX, IDENTIFIER, BRANCHING, REQUIRED,
 ALIGN, QNUM, MATRIX, RANKING, ANNOTATION) = range(18)
INTEGER_VALIDATIONS = {"integer"}
NUMBER_VALIDATIONS = {"number", "number_1dp", "number_2dp", "number_3dp", "number_4dp", "number_comma_decimal",
                      "number_1dp_comma_decimal", "number_2dp_comma_decimal", "number_3dp_comma_decimal",
                      "number_4dp_comma_decimal", "float"}
FIXED_CHOICES = {"yesno": [("1", "Yes"), ("0", "No")], "truefalse": [("1", "True"), ("0", "False")]}
NO_ANSWER_TYPES = {"descriptive": "descriptive text has no answer"}
UNMAPPABLE_TYPES = {
    "notes": "free text (notes) cannot be scored",
    "checkbox": "a checkbox field takes several answers per item, which a scored item cannot hold",
    "file": "a file upload cannot be scored",
    "signature": "a signature cannot be scored",
    "sql": "an sql field cannot be imported",
}
FIELD_REF = r"\[([a-z][a-z0-9_]*)\]"


class RedcapError(ValueError):
    """The file is not a data dictionary we can read at all."""


ZIP_MAGIC = b"PK\x03\x04"
ZIP_MEMBER = "instrument.csv"
MAX_MEMBER_BYTES = 20 * 1024 * 1024


def dictionary_text(raw: bytes) -> str:
    """The data dictionary's text from a file's bytes: the CSV itself, or instrument.csv inside a REDCap
    instrument ZIP. Raises RedcapError saying what the file is instead."""
    if raw[:4] == ZIP_MAGIC:
        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                members = [m for m in archive.infolist() if m.filename.rsplit("/", 1)[-1].lower() == ZIP_MEMBER]
                if not members:
                    names = ", ".join(m.filename for m in archive.infolist()[:5]) or "nothing"
                    raise RedcapError(f"a ZIP file without {ZIP_MEMBER}, so not a REDCap instrument ZIP "
                                      f"(it holds {names})")
                if members[0].file_size > MAX_MEMBER_BYTES:
                    raise RedcapError(f"{ZIP_MEMBER} in the ZIP is larger than {MAX_MEMBER_BYTES // 2**20} MiB")
                raw = archive.read(members[0])
        except zipfile.BadZipFile as exc:
            raise RedcapError(f"a damaged ZIP file ({exc})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RedcapError("not UTF-8 text: save the data dictionary as CSV (UTF-8) from REDCap, or give the "
                          "instrument ZIP as downloaded") from None


BETTER_WORDS = re.compile(r"\b(higher|lower)\s+(?:scores?\s+|values?\s+)?(?:is|are|=|means?|mean|indicates?|"
                          r"indicate)\s+(?:a\s+)?better\b", re.IGNORECASE)


def infer_better(cells: list[str]) -> str | None:
    """'higher' / 'lower' when the calc field's label, note or annotation says which is better, else None."""
    found = {m.lower() for text in (cells[LABEL], cells[NOTE], cells[ANNOTATION])
             for m in BETTER_WORDS.findall(strip_tags(text or ""))}
    return found.pop() if len(found) == 1 else None


def blank_rule(method: str, formula: str, count: int) -> str:
    """How REDCap's calculation treats blank fields, beside orthoreg's missing-item rule, for the report."""
    if method == "mean":
        return ("blanks: REDCap's mean() averages the answered fields; orthoreg does the same (at least one "
                "answered)")
    if (formula or "").strip().lower().startswith("sum"):
        return (f"blanks: REDCap's sum() adds only the answered fields, so a skipped item lowers the total; orthoreg "
                f"scores it only with all {count} items answered (a response with a blank is stored unscored)")
    return (f"blanks: REDCap's [a] + [b] is blank when any field is blank; orthoreg likewise scores it only with all "
            f"{count} items answered")


def parse_choices(text: str) -> list[tuple[str, str]]:
    """'1, Label | 2, Label' -> [('1', 'Label'), ('2', 'Label')]. Labels may contain commas; the code is what
    comes before the first one. Raises ValueError naming the bad choice."""
    text = (text or "").strip()
    if not text:
        return []
    choices: list[tuple[str, str]] = []
    for part in text.split("|"):
        part = part.strip()
        if not part:
            raise ValueError("an empty choice between two '|'")
        code, comma, label = part.partition(",")
        code, label = code.strip(), label.strip()
        if not comma or not code:
            raise ValueError(f"choice {part!r} is not 'code, label'")
        choices.append((code, label or code))
    codes = [c for c, _ in choices]
    repeated = sorted({c for c in codes if codes.count(c) > 1})
    if repeated:
        raise ValueError(f"choice code {repeated[0]!r} is used twice")
    return choices


def format_choices(choices: list[tuple[str, str]]) -> str:
    return " | ".join(f"{code}, {label}" for code, label in choices)


@dataclass
class RowReport:
    row: int  # line number in the CSV file (the header is line 1)
    field: str
    field_type: str
    status: str  # mapped | partly mapped | skipped
    message: str = ""

    def __str__(self) -> str:
        tail = f": {self.message}" if self.message else ""
        return f"row {self.row} {self.field} ({self.field_type}) {self.status}{tail}"


@dataclass
class ImportResult:
    code: str
    form: str
    resource: dict | None
    rows: list[RowReport] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # why no definition could be made

    @property
    def skipped(self) -> list[RowReport]:
        return [r for r in self.rows if r.status == "skipped"]

    @property
    def ok(self) -> bool:
        return self.resource is not None and not self.errors


def _number(text: str) -> float | None:
    try:
        return float(text.strip().replace(",", ".")) if text and text.strip() else None
    except ValueError:
        return None


def _clean_label(text: str) -> str:
    return re.sub(r"\s+", " ", strip_tags(text or "")).strip()


def read_rows(data: str) -> list[tuple[int, list[str]]]:
    """(line number, 18 cells) for each data row. Raises RedcapError when the header is not REDCap's."""
    reader = csv.reader(io.StringIO(data.lstrip("\ufeff")))
    try:
        header = next(reader)
    except StopIteration:
        raise RedcapError("the file is empty") from None
    except csv.Error as exc:
        raise RedcapError(f"not a readable CSV file: {exc}") from None
    names = [h.strip().lower() for h in header]
    if len(names) < 16 or not names[0].startswith("variable") or "field type" not in names[3]:
        raise RedcapError(f"not a REDCap data dictionary: expected its 18 columns ({COLUMNS[0]}, {COLUMNS[1]}, ..."
                          f"{COLUMNS[-1]}; older REDCap: 16 or 17), found {len(names)} starting with "
                          f"{header[:2]!r}")
    rows = []
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            rows.append((reader.line_num, [c.strip() for c in (cells + [""] * 18)[:18]]))
    except csv.Error as exc:
        raise RedcapError(f"CSV error on line {reader.line_num}: {exc}") from None
    return rows


def _item(name: str, label: str, type_: str, required: bool, *, options=None, minimum=None, maximum=None) -> dict:
    item = {"linkId": name, "text": label or name, "type": type_, "required": required}
    if type_ == "choice":
        item["answerOption"] = [{"valueCoding": {"code": code, "display": text},
                                 "extension": [{"url": EXT_ORDINAL, "valueDecimal": value}]}
                                for code, text, value in options]
    else:
        kind = "valueInteger" if type_ == "integer" else "valueDecimal"
        item["extension"] = [{"url": EXT_MIN, kind: minimum}, {"url": EXT_MAX, kind: maximum}]
    return item


def _map_field(cells: list[str]) -> tuple[dict | None, str, str]:
    """(item or None, status, message) for one non-calc row."""
    name, ftype = cells[VAR], cells[TYPE].lower()
    label = _clean_label(cells[LABEL])
    required = cells[REQUIRED].lower() == "y"
    if ftype in NO_ANSWER_TYPES:
        return None, "skipped", NO_ANSWER_TYPES[ftype]
    if ftype in UNMAPPABLE_TYPES:
        return None, "skipped", UNMAPPABLE_TYPES[ftype]
    if cells[IDENTIFIER].lower() == "y":
        return None, "skipped", "marked as an identifier: a registry questionnaire must not hold identifiers"
    if ftype in ("radio", "dropdown", "yesno", "truefalse"):
        if ftype in FIXED_CHOICES:
            choices = FIXED_CHOICES[ftype]
        else:
            try:
                choices = parse_choices(cells[CHOICES])
            except ValueError as exc:
                return None, "skipped", f"choices not understood: {exc}"
            if not choices:
                return None, "skipped", "no choices given"
        values = [_number(code) for code, _ in choices]
        bad = [code for (code, _), v in zip(choices, values) if v is None]
        if bad:
            return None, "skipped", (f"choice code{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))} "
                                     "not a number: scored answers need numeric codes")
        options = [(code, _clean_label(text), v) for (code, text), v in zip(choices, values)]
        return _item(name, label, "choice", required, options=options), "mapped", ""
    if ftype == "slider":
        low, high = _number(cells[VMIN]), _number(cells[VMAX])
        low = 0 if low is None else low
        high = 100 if high is None else high
        if low >= high:
            return None, "skipped", f"slider range {low:g} to {high:g} is empty"
        return _item(name, label, "integer", required, minimum=int(low), maximum=int(high)), "mapped", ""
    if ftype == "text":
        validation = cells[VALIDATION].lower()
        if validation in INTEGER_VALIDATIONS or validation in NUMBER_VALIDATIONS:
            low, high = _number(cells[VMIN]), _number(cells[VMAX])
            if low is None or high is None or low >= high:
                return None, "skipped", ("a number field needs Text Validation Min and Max (a range) to be "
                                         "scored")
            if validation in INTEGER_VALIDATIONS:
                return _item(name, label, "integer", required, minimum=int(low), maximum=int(high)), "mapped", ""
            return _item(name, label, "decimal", required, minimum=low, maximum=high), "mapped", ""
        kind = f"text validated as {validation}" if validation else "free text"
        return None, "skipped", f"{kind} cannot be scored"
    return None, "skipped", f"field type {ftype!r} is not a REDCap type we know"


def _parse_calc(formula: str) -> tuple[str, list[str]] | None:
    """('sum' | 'mean', [field names]) for sum(...), mean(...) or [a] + [b] + ...; None otherwise."""
    text = re.sub(r"\s+", "", (formula or "").lower())
    match = re.fullmatch(r"(sum|mean)\(((?:\[[a-z][a-z0-9_]*\],)*\[[a-z][a-z0-9_]*\])\)", text)
    if match:
        return match[1], re.findall(FIELD_REF, match[2])
    if re.fullmatch(r"(?:\[[a-z][a-z0-9_]*\]\+)+\[[a-z][a-z0-9_]*\]", text):
        return "sum", re.findall(FIELD_REF, text)
    return None


def parse_better(values: list[str] | None) -> dict[str, str]:
    """--better values: "lower" (every score) or "toe_total=lower" (one score) -> {"*": "lower", ...}."""
    out: dict[str, str] = {}
    for value in values or []:
        name, _, direction = value.rpartition("=")
        direction = direction.strip().lower()
        if direction not in ("higher", "lower"):
            raise RedcapError(f"--better {value!r}: say higher or lower (or SCORE=higher / SCORE=lower)")
        out[name.strip() or "*"] = direction
    return out


def import_data_dictionary(data: str, *, code: str, form: str | None = None, title: str | None = None,
                           version: str = "1.0.0", better: dict[str, str] | None = None) -> ImportResult:
    """Map one form of a data dictionary (CSV text) to a Questionnaire. Raises RedcapError for an unreadable
    file or an ambiguous form; unmappable rows are reported, not fatal. `better`: which way is better per score
    (a calc field's name, or "*" for every score); a score whose direction is neither given nor stated in the
    dictionary leaves the import without a definition (result.errors says so)."""
    better = better or {}
    if not CODE_RE.match(code or ""):
        raise RedcapError(f"code {code!r} must be 1-40 lower-case letters, digits or hyphens")
    rows = read_rows(data)
    forms = list(dict.fromkeys(cells[FORM] for _, cells in rows))
    if not forms:
        raise RedcapError("the data dictionary has no fields")
    if form is None:
        if len(forms) > 1:
            raise RedcapError(f"the data dictionary has {len(forms)} forms ({', '.join(forms)}): choose one with "
                              "--form")
        form = forms[0]
    elif form not in forms:
        raise RedcapError(f"no form {form!r} in the data dictionary (forms: {', '.join(forms)})")
    result = ImportResult(code=code, form=form, resource=None)
    items: dict[str, dict] = {}
    calcs: list[tuple[int, list[str]]] = []
    for line, cells in rows:
        if cells[FORM] != form:
            continue
        name, ftype = cells[VAR], cells[TYPE].lower()
        if ftype == "calc":
            calcs.append((line, cells))
            continue
        item, status, message = _map_field(cells)
        if item is not None and name in items:
            item, status, message = None, "skipped", "the variable name is used twice"
        if item is not None:
            items[name] = item
            notes = []
            if cells[BRANCHING]:
                notes.append("branching logic not imported: the item is always asked")
            if cells[MATRIX] and cells[RANKING].lower() == "y":
                notes.append("matrix ranking not imported")
            if notes:
                status, message = "partly mapped", "; ".join(notes)
        result.rows.append(RowReport(line, name, ftype, status, message))
    subscales: list[dict] = []
    undecided: list[str] = []
    for line, cells in calcs:
        name = cells[VAR]
        parsed = _parse_calc(cells[CHOICES])
        if parsed is None:
            result.rows.append(RowReport(line, name, "calc", "skipped",
                                         "calculation not understood: only sum([a], [b], ...), mean([a], ...) "
                                         "or [a] + [b] + ... of this form's fields can become a score"))
            continue
        method, refs = parsed
        missing = [r for r in refs if r not in items]
        if missing:
            result.rows.append(RowReport(line, name, "calc", "skipped",
                                         f"uses {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                                         "not a mapped item of this form"))
            continue
        members = [items[r] for r in refs]
        direction = better.get(name) or better.get("*")
        told = "given" if direction else ""
        if direction is None and (direction := infer_better(cells)):
            told = "from the dictionary's own words"
        if direction is None:
            undecided.append(name)
        lows, highs = zip(*(_range_of(m) for m in members))
        if method == "sum":
            minimum, maximum, min_answered = sum(lows), sum(highs), 100
        else:
            minimum, maximum, min_answered = min(lows), max(highs), 1
        for ref in refs:
            items[ref].setdefault("extension", []).append({"url": EXT_SUBSCALE, "valueCode": name})
        subscales.append({"url": EXT_SUBSCALE, "extension": [
            {"url": "code", "valueCode": name}, {"url": "title", "valueString": _clean_label(cells[LABEL]) or name},
            {"url": "method", "valueCode": method}, {"url": "minAnsweredPercent", "valueInteger": min_answered},
            {"url": "minimum", "valueDecimal": float(minimum)}, {"url": "maximum", "valueDecimal": float(maximum)},
            {"url": "betterWhen", "valueCode": direction or "higher"},
            *([{"url": "primary", "valueBoolean": True}] if not subscales else []),
        ]})
        way = (f"{direction} is better ({told})" if direction else
               "which way is better is not said: give --better higher or --better lower")
        note = f"{way}; {blank_rule(method, cells[CHOICES], len(refs))}"
        result.rows.append(RowReport(line, name, "calc", "partly mapped", note))
    result.rows.sort(key=lambda r: r.row)
    if undecided:
        result.errors.append(
            f"which way is better is not in the data dictionary for {', '.join(undecided)}: say it with --better "
            "higher or --better lower (or SCORE=lower for one score); a lower-is-better score such as a PHQ-type "
            "scale installed as higher-is-better would read inverted")
    if not items:
        result.errors.append(f"no field of form {form!r} could be mapped to a scored item")
        return result
    if not subscales:
        result.rows.append(RowReport(0, "-", "-", "skipped", "no calculated field became a score: responses will "
                                                             "be stored unscored until a scoring rule is added"))
    resource = {
        "resourceType": "Questionnaire", "id": code, "url": f"urn:orthoreg:instrument:{code}", "version": version,
        "name": re.sub(r"[^A-Za-z0-9]", "_", code), "title": title or form.replace("_", " ").capitalize(),
        "status": "draft", "language": "en", "subjectType": ["Patient"],
        "description": f"Imported from the REDCap data dictionary form {form!r}. Not sent to patients until a "
                       "person has reviewed it (orthoreg instruments review).",
        "extension": [
            {"url": EXT_INSTRUMENT, "extension": [
                {"url": "shortTitle", "valueString": title or code},
                {"url": "scoringSource", "valueString": "REDCap calculated fields of the imported form"},
                {"url": "textStatus", "valueCode": "shipped"},
                {"url": "licence", "extension": [{"url": "name", "valueString": "site's own instrument"},
                                                 {"url": "redistributable", "valueBoolean": False}]}]},
            *subscales],
        "item": list(items.values()),
    }
    try:
        parse_definition(resource, origin="site", source=f"import of {form}")
    except DefinitionError as exc:
        result.errors.extend(exc.errors)
        return result
    if result.errors:
        return result
    result.resource = resource
    return result


def _range_of(item: dict) -> tuple[float, float]:
    if item["type"] == "choice":
        values = [o["extension"][0]["valueDecimal"] for o in item["answerOption"]]
        return min(values), max(values)
    limits = {e["url"]: next(v for k, v in e.items() if k.startswith("value")) for e in item["extension"]
              if e["url"] in (EXT_MIN, EXT_MAX)}
    return limits[EXT_MIN], limits[EXT_MAX]
