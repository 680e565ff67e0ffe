"""REDCap project migration: a project's data dictionary and records (REDCap's CSV export: classic, longitudinal
with `redcap_event_name`, repeating instruments with `redcap_repeat_instrument` / `redcap_repeat_instance`) imported
into a clinic, through the same services as the web forms (patients, episodes, procedures that schedule follow-up,
responses scored by their instrument). The mapping file (JSON, docs/redcap.md) says what is what.

All or nothing per project: everything runs in one transaction and every refusal (with its file, row and field) is
collected; any refusal rolls the whole import back. A dry run is the same import, always rolled back. Records are
read row by row (csv reader) and one record's rows at a time (REDCap exports a record's rows together), so memory
stays bounded whatever the file's size. Idempotent: patients are keyed on (clinic, MRN), episodes on (patient,
condition, site, side), procedures on (episode, date, kind), responses on (patient, instrument, time point,
completion time): a second import updates, never duplicates.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from orthoreg.accounts.models import AuditEvent
from orthoreg.accounts.services import audit_record
from orthoreg.instruments import redcap as dictionaries
from orthoreg.instruments import services as instrument_services
from orthoreg.instruments.definitions import UnknownInstrument, get_definition
from orthoreg.instruments.models import Response
from orthoreg.instruments.services import TIME_POINT_RE
from orthoreg.instruments.types import DefinitionError
from orthoreg.registry import coding
from orthoreg.registry import services as registry
from orthoreg.registry.models import Clinic, Episode, Patient, Procedure

SCHEMA = "orthoreg.redcap-mapping/1"
EVENT, REPEAT_FORM, REPEAT_INSTANCE = "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance"
SPECIAL = {EVENT, REPEAT_FORM, REPEAT_INSTANCE, "redcap_data_access_group", "redcap_survey_identifier"}
CHECKBOX_COLUMN = re.compile(r"^(?P<field>[a-z][a-z0-9_]*)___(?P<code>.+)$", re.IGNORECASE)
DATE_ORDERS = {"ymd": "YYYY-MM-DD", "mdy": "MM-DD-YYYY", "dmy": "DD-MM-YYYY"}
PATIENT_TEXT = ("given_name", "family_name", "email", "phone", "consent_version")


class MappingError(ValueError):
    """The dictionary or the mapping file cannot be used at all (each problem in `problems`)."""

    def __init__(self, problems: list[dict]):
        super().__init__("; ".join(p["message"] for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class FieldDef:
    name: str
    form: str
    type: str
    label: str
    validation: str
    choices: dict[str, str]


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"created": self.created, "updated": self.updated, "skipped": self.skipped, "errors": self.errors}


@dataclass
class Summary:
    dry_run: bool
    units: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))
    not_mapped: list[dict] = field(default_factory=list)
    installed: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[dict]:
        return [e for c in self.units.values() for e in c.errors]

    @property
    def refused(self) -> bool:
        return bool(self.errors)

    def as_dict(self) -> dict:
        return {"schema": "orthoreg.redcap-import/1", "dry_run": self.dry_run, "refused": self.refused,
                "written": not self.dry_run and not self.refused,
                "units": {k: v.as_dict() for k, v in self.units.items()}, "installed": self.installed,
                "not_mapped": self.not_mapped}


def error(file: str, row: int | None, field_name: str | None, message: str, record: str | None = None) -> dict:
    """A refusal and where it is: in a records file `row` is the row as a spreadsheet numbers it (the header is
    row 1, one row per record row however many lines its quoted values take) and `record` the record id."""
    return {"location": {"file": file, "row": row, "record": record, "field": field_name}, "message": message}


# ------------------------------------------------------------------------------------------------ reading

def read_dictionary(path: Path) -> tuple[str, dict[str, FieldDef]]:
    """The dictionary's text and its fields by name, in order (the first is the record id)."""
    name = str(path)
    try:
        text = dictionaries.dictionary_text(Path(path).read_bytes())
        rows = dictionaries.read_rows(text)
    except OSError as exc:
        raise MappingError([error(name, None, None, f"cannot read the data dictionary: {exc.strerror}")]) from None
    except dictionaries.RedcapError as exc:
        raise MappingError([error(name, None, None, str(exc))]) from None
    fields: dict[str, FieldDef] = {}
    problems = []
    for line, cells in rows:
        var, form, kind = cells[dictionaries.VAR], cells[dictionaries.FORM], cells[dictionaries.TYPE].lower()
        choices: dict[str, str] = {}
        if kind in ("radio", "dropdown", "checkbox"):
            try:
                choices = dict(dictionaries.parse_choices(cells[dictionaries.CHOICES]))
            except ValueError as exc:
                problems.append(error(name, line, var, f"choices: {exc}"))
        elif kind in dictionaries.FIXED_CHOICES:
            choices = dict(dictionaries.FIXED_CHOICES[kind])
        fields[var] = FieldDef(var, form, kind, dictionaries._clean_label(cells[dictionaries.LABEL]),
                               cells[dictionaries.VALIDATION].lower(), choices)
    if problems:
        raise MappingError(problems)
    if not fields:
        raise MappingError([error(name, None, None, "the data dictionary has no fields")])
    return text, fields


def parse_value(f: FieldDef, raw: str):
    """A record's cell as a Python value by the field's type and validation; raises ValueError saying why not."""
    raw = raw.strip()
    if raw == "":
        return None
    v = f.validation
    if v.startswith("date") or v.startswith("datetime"):
        return parse_date(raw, v)
    if f.choices and f.type != "checkbox":
        if raw not in f.choices:
            raise ValueError(f"{raw!r} is not a code of {f.name} ({', '.join(f.choices)})")
        return raw
    if v == "integer":
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not a whole number") from None
    if v.startswith("number") or v == "float" or f.type in ("calc", "slider"):
        return parse_number(raw, comma="comma" in v)
    return raw


def parse_number(raw: str, *, comma: bool = False) -> float:
    """REDCap's numbers: a dot decimal, or with a comma-decimal validation a comma (a dot is taken too)."""
    text = raw.strip().replace(" ", "")
    if comma or re.fullmatch(r"-?\d+,\d+", text):
        text = text.replace(",", ".")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{raw!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{raw!r} is not a number")
    return value


def parse_date(raw: str, validation: str) -> dt.date:
    """REDCap's dates: ISO YYYY-MM-DD (what REDCap exports whatever the field's format), or the field's own order
    (date_mdy: MM-DD-YYYY, date_dmy: DD-MM-YYYY; '-' or '/'); a datetime's time is dropped."""
    order = next((o for o in DATE_ORDERS if o in validation), "ymd")
    text = raw.strip().split(" ")[0].split("T")[0].replace("/", "-")
    parts = text.split("-")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"{raw!r} is not a date ({DATE_ORDERS[order]} or YYYY-MM-DD)")
    if len(parts[0]) == 4:
        y, m, d = parts
    elif order == "mdy":
        m, d, y = parts
    elif order == "dmy":
        d, m, y = parts
    else:
        raise ValueError(f"{raw!r} is not a date (YYYY-MM-DD)")
    try:
        return dt.date(int(y), int(m), int(d))
    except ValueError as exc:
        raise ValueError(f"{raw!r} is not a date that exists ({exc})") from None


# ------------------------------------------------------------------------------------------------ the mapping

@dataclass
class FormMap:
    form: str
    instrument: str
    items: list[str]  # the field of each item, in item order
    date: str | None
    time_point: str | None
    install: dict | None = None  # the Questionnaire to install (from the dictionary)


@dataclass
class Mapping:
    record_id: str
    patient: dict
    episode: dict | None
    events: dict[str, str | None]
    forms: dict[str, FormMap]
    procedures: list[dict]
    skipped_forms: set[str]


def _field_spec(spec) -> tuple[str | None, dict | None, object]:
    """A mapping value: a field name, {"field": name, "codes": {...}}, or {"value": constant}."""
    if isinstance(spec, str):
        return spec, None, None
    if isinstance(spec, dict):
        return spec.get("field"), spec.get("codes"), spec.get("value")
    return None, None, spec


SPEC_SHAPE = 'a field name, {"field": NAME, "codes": {CODE: VALUE}} or {"value": CONSTANT}'
FORM_KEYS = {"instrument", "items", "install", "better", "title", "date", "time_point"}
PROCEDURE_KEYS = {"date", "kind", "form", "index"}


def _kind(value) -> str:
    """A JSON value's kind, for messages."""
    if isinstance(value, bool):
        return "true/false"
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(type(value), "a number")


def _text(value) -> str | None:
    ok = isinstance(value, str) or isinstance(value, int | float) and not isinstance(value, bool)
    return None if ok else f"must be text (or a number), not {_kind(value)}"


def _date(value) -> str | None:
    try:
        dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        return f"{value!r} is not a date (YYYY-MM-DD)"
    return None


def _boolean(value) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, not {_kind(value)}"


def _one_of(choices: list[str], what: str = "one of"):
    def check(value) -> str | None:
        return None if isinstance(value, str) and value in choices else f"{value!r} is not {what} ({', '.join(choices)})"
    return check


def _time_point(value) -> str | None:
    if value is None or isinstance(value, str) and TIME_POINT_RE.match(value):
        return None
    return f"{value!r} is not a time point ('baseline' or a number with d, w, m or y, e.g. 6w, 3m)"


PATIENT_CHECKS = {"mrn": _text, "given_name": _text, "family_name": _text, "email": _text, "phone": _text,
                  "consent_version": _text, "birth_date": _date, "consent_date": _date,
                  "sex": _one_of(Patient.Sex.values), "consent_registry": _boolean}
PATIENT_KEYS = tuple(PATIENT_CHECKS)


class _MappingCheck:
    """The checks of one mapping file: each problem is collected with its key path (e.g. `forms.pain.items[0]`)."""

    def __init__(self, name: str, fields: dict[str, FieldDef]):
        self.name, self.fields = name, fields
        self.problems: list[dict] = []

    def problem(self, key: str | None, message: str) -> None:
        self.problems.append(error(self.name, None, key, message))

    def of_type(self, key: str, value, kind: type, what: str) -> bool:
        if isinstance(value, kind):
            return True
        self.problem(key, f"must be {what}, not {_kind(value)}")
        return False

    def unknown_keys(self, key: str, value: dict, allowed) -> None:
        for extra in sorted(set(value) - set(allowed)):
            self.problem(f"{key}.{extra}", f"unknown key (expected {', '.join(sorted(allowed))}; see docs/redcap.md)")

    def field(self, key: str, value, *, checkbox: bool = False) -> bool:
        """A field name of the data dictionary (a checkbox field only where `checkbox`)."""
        if not self.of_type(key, value, str, "a field name (text)"):
            return False
        if value not in self.fields:
            self.problem(key, f"{value!r} is not a field of the data dictionary")
            return False
        if not checkbox and self.fields[value].type == "checkbox":
            self.problem(key, f"{value!r} is a checkbox field (several answers)")
            return False
        return True

    def spec(self, key: str, value, check, *, checkbox: bool = False, codes_required: bool = False) -> None:
        """A value of the mapping (SPEC_SHAPE); `check(v)` says why an orthoreg value v cannot be used (else None)."""
        if isinstance(value, str):
            if self.field(key, value, checkbox=checkbox) and (codes_required or
                                                              self.fields[value].type == "checkbox"):
                self.problem(key, f"{value!r} needs its \"codes\": {{\"field\": {value!r}, \"codes\": {{...}}}}")
            return
        if not isinstance(value, dict):
            self.problem(key, f"must be {SPEC_SHAPE}, not {_kind(value)}")
            return
        self.unknown_keys(key, value, ("field", "codes", "value"))
        if "value" in value:
            if "field" in value or "codes" in value:
                self.problem(key, "either \"value\" or \"field\" (with its \"codes\"), not both")
            elif (why := check(value["value"])) is not None:
                self.problem(f"{key}.value", why)
            return
        if "field" not in value:
            self.problem(key, f"must be {SPEC_SHAPE}: \"field\" or \"value\" is missing")
            return
        f = value["field"]
        if not self.field(key, f, checkbox=checkbox):
            return
        codes = value.get("codes")
        if codes is None:
            if codes_required or self.fields[f].type == "checkbox":
                self.problem(f"{key}.codes", "required: {REDCap code: orthoreg value, ...}")
            return
        if not self.of_type(f"{key}.codes", codes, dict, "an object: {REDCap code: orthoreg value, ...}"):
            return
        choices = self.fields[f].choices
        for code, v in codes.items():
            if choices and code not in choices:
                self.problem(f"{key}.codes", f"{code!r} is not a code of {f} ({', '.join(choices)})")
            elif (why := check(v)) is not None:
                self.problem(f"{key}.codes", f"{code}: {why}")

    def section(self, raw: dict, key: str, kind: type, what: str, default):
        """An optional top-level part of the mapping (null is the same as absent)."""
        value = raw.get(key)
        if value is None:
            return default
        return value if self.of_type(key, value, kind, what) else default


def load_mapping(path: Path, fields: dict[str, FieldDef], dictionary_text: str) -> Mapping:
    """Read and check the mapping file against the dictionary: every part of it for its shape (a JSON type where
    another is expected is a problem like any other, not an exception); MappingError lists every problem."""
    name = str(path)
    try:
        raw = json.loads(Path(path).read_bytes().decode("utf-8"))
    except OSError as exc:
        raise MappingError([error(name, None, None, f"cannot read the mapping: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise MappingError([error(name, None, None, f"not UTF-8 text (byte {exc.start})")]) from None
    except json.JSONDecodeError as exc:
        raise MappingError([error(name, exc.lineno, None, f"not valid JSON: {exc.msg} (column {exc.colno})")]) \
            from None
    if not isinstance(raw, dict):
        raise MappingError([error(name, None, None, "the mapping must be a JSON object")])
    check = _MappingCheck(name, fields)
    forms_in_dictionary = list(dict.fromkeys(f.form for f in fields.values()))

    if "schema" in raw and raw["schema"] != SCHEMA:
        check.problem("schema", f"{raw['schema']!r} is not {SCHEMA!r}")
    record_id = raw.get("record_id")
    if record_id is None:
        record_id = next(iter(fields))
    check.field("record_id", record_id)

    patient = check.section(raw, "patient", dict, "an object", {})
    check.unknown_keys("patient", patient, (*PATIENT_KEYS, "mrn_prefix"))
    for key in PATIENT_KEYS:
        if key in patient:
            check.spec(f"patient.{key}", patient[key], PATIENT_CHECKS[key])
    if "mrn_prefix" in patient:
        check.of_type("patient.mrn_prefix", patient["mrn_prefix"], str, "text")
    for key in ("given_name", "family_name", "birth_date"):
        if key not in patient:
            check.problem(f"patient.{key}", "required: which field holds it (or a \"value\")")

    episode = check.section(raw, "episode", dict, "an object: condition, body_site and side", None)
    if episode is not None:
        check.unknown_keys("episode", episode, ("condition", "body_site", "side"))
        for key, choices in (("condition", coding.Condition.values), ("body_site", coding.BodySite.values),
                             ("side", coding.Side.values)):
            if key not in episode:
                check.problem(f"episode.{key}", "required: which field holds it (or a \"value\")")
            else:
                check.spec(f"episode.{key}", episode[key], _one_of(choices))

    events = check.section(raw, "events", dict, "an object: event name -> time point (or null)", {})
    for event, time_point in events.items():
        if (why := _time_point(time_point)) is not None:
            check.problem(f"events.{event}", why)

    forms: dict[str, FormMap] = {}
    skipped: set[str] = set()
    for form, spec in check.section(raw, "forms", dict, "an object: form name -> what it is (or null)", {}).items():
        key = f"forms.{form}"
        if form not in forms_in_dictionary:
            check.problem(key, f"{form!r} is not a form of the data dictionary ({', '.join(forms_in_dictionary)})")
        elif spec is None:
            skipped.add(form)
        elif check.of_type(key, spec, dict, "null (skipped) or an object: \"instrument\" or \"install\""):
            form_map = _form(check, key, form, spec, dictionary_text)
            if form_map is not None:
                forms[form] = form_map

    procedures = check.section(raw, "procedures", list, "a list of objects (date, kind, form, index)", [])
    for n, spec in enumerate(procedures):
        key = f"procedures[{n}]"
        if episode is None:
            check.problem(key, "procedures need an \"episode\" in the mapping")
        if not check.of_type(key, spec, dict, "an object (date, kind, form, index)"):
            continue
        check.unknown_keys(key, spec, PROCEDURE_KEYS)
        for required in ("date", "kind"):
            if required not in spec:
                check.problem(f"{key}.{required}", "required")
        if "date" in spec:
            check.field(f"{key}.date", spec["date"])
        if "kind" in spec:
            check.spec(f"{key}.kind", spec["kind"], _one_of(coding.ProcedureKind.values, "a procedure kind"),
                       checkbox=True, codes_required=True)
        if "form" in spec and check.of_type(f"{key}.form", spec["form"], str, "a form name (text)") \
                and spec["form"] not in forms_in_dictionary:
            check.problem(f"{key}.form", f"{spec['form']!r} is not a form of the data dictionary "
                                         f"({', '.join(forms_in_dictionary)})")
        if "index" in spec and (why := _boolean(spec["index"])) is not None:
            check.problem(f"{key}.index", why)

    for key in sorted(set(raw) - {"schema", "record_id", "patient", "episode", "events", "forms", "procedures"}):
        check.problem(key, "unknown key (see docs/redcap.md)")
    if check.problems:
        raise MappingError(check.problems)
    return Mapping(record_id, patient, episode, events, forms, procedures, skipped)


def _form(check: _MappingCheck, key: str, form: str, spec: dict, dictionary_text: str) -> FormMap | None:
    """One form's part of the mapping: an orthoreg instrument, or one to install from the dictionary."""
    check.unknown_keys(key, spec, FORM_KEYS)
    date = spec.get("date")
    if date is not None:
        check.field(f"{key}.date", date)
    time_point = spec.get("time_point")
    if (why := _time_point(time_point)) is not None:
        check.problem(f"{key}.time_point", why)
    if ("install" in spec) == ("instrument" in spec):
        check.problem(key, "say either \"instrument\" (an orthoreg instrument) or \"install\" (made from the "
                           "dictionary)")
        return None
    if "install" in spec:
        if "items" in spec:
            check.problem(f"{key}.items", "only with \"instrument\"")
        code, better, title = spec["install"], spec.get("better"), spec.get("title")
        ok = check.of_type(f"{key}.install", code, str, "an instrument code (text)")
        if better is not None and better not in ("higher", "lower"):
            check.problem(f"{key}.better", f"{better!r} is not higher or lower")
            ok = False
        if title is not None:
            ok = check.of_type(f"{key}.title", title, str, "text") and ok
        if not ok:
            return None
        try:
            result = dictionaries.import_data_dictionary(
                dictionary_text, code=code, form=form, title=title, better={"*": better} if better else None)
        except dictionaries.RedcapError as exc:
            check.problem(f"{key}.install", str(exc))
            return None
        if not result.ok:
            check.problem(f"{key}.install", "; ".join(result.errors))
            return None
        items = [i["linkId"] for i in _flat(result.resource.get("item") or [])]
        return FormMap(form, code, items, date, time_point, install=result.resource)
    for other in ("better", "title"):
        if other in spec:
            check.problem(f"{key}.{other}", "only with \"install\"")
    instrument = spec["instrument"]
    try:
        definition = get_definition(instrument)
    except (UnknownInstrument, DefinitionError) as exc:
        check.problem(f"{key}.instrument", str(exc))
        return None
    items = spec.get("items")
    if items is None:
        items = [i.link_id for i in definition.items]
    elif not check.of_type(f"{key}.items", items, list, "a list of field names, one per item in item order"):
        return None
    for n, f in enumerate(items):
        check.field(f"{key}.items[{n}]", f)
    if len(items) != len(definition.items):
        check.problem(f"{key}.items", f"{instrument} has {len(definition.items)} items; {len(items)} fields given")
    return FormMap(form, definition.code, items, date, time_point)


def _flat(items: list[dict]) -> list[dict]:
    out = []
    for item in items:
        if item.get("type") == "group":
            out.extend(_flat(item.get("item") or []))
        elif item.get("type") != "display":
            out.append(item)
    return out


# ------------------------------------------------------------------------------------------------ importing

class Importer:
    def __init__(self, *, dictionary: Path, records: Path, mapping: Path, clinic: Clinic, dry_run: bool):
        self.records_name = str(records)
        self.text, self.fields = read_dictionary(dictionary)
        self.map = load_mapping(mapping, self.fields, self.text)
        self.records = Path(records)
        self.clinic = clinic
        self.summary = Summary(dry_run=dry_run)
        self.columns: dict[str, tuple[FieldDef, str | None]] = {}
        self.row = 1  # the row last read from the records (the header is row 1)
        self.record: str | None = None  # the id of the record whose rows are being imported

    def fail(self, unit: str, row: int | None, field_name: str | None, message: str) -> None:
        """A refusal at a row of the records (the header is row 1), in the record being read if any."""
        self.summary.units[unit].errors.append(error(self.records_name, row, field_name, message, self.record))

    def run(self) -> Summary:
        installed = []
        try:
            with transaction.atomic():
                for form in self.map.forms.values():
                    if form.install is not None and not self.summary.dry_run:
                        installed.append(self._install(form))
                self._read()
                if self.summary.refused or self.summary.dry_run:
                    transaction.set_rollback(True)
                else:
                    audit_record(action=AuditEvent.Action.CREATE,
                                 detail=f"REDCap import into {self.clinic.code}: " + ", ".join(
                                     f"{k} {v.created} created, {v.updated} updated"
                                     for k, v in self.summary.units.items()))
        finally:
            if self.summary.refused:
                for path in installed:  # nothing written: a definition installed for this import goes too
                    if path is not None:
                        path.unlink(missing_ok=True)
        self.summary.installed = [f.instrument for f in self.map.forms.values() if f.install is not None]
        self._not_mapped()
        return self.summary

    def _install(self, form: FormMap) -> Path | None:
        path = instrument_services.definitions.site_dir() / f"{form.instrument}.json"
        existed = path.exists()
        try:
            instrument_services.instrument_install(resource=form.install, replace=True)
        except DefinitionError as exc:
            self.fail(form.form, None, None, f"cannot install {form.instrument}: {exc}")
            return None
        return None if existed else path

    def _not_mapped(self) -> None:
        used = {self.map.record_id}
        for spec in [*self.map.patient.values(), *(self.map.episode or {}).values()]:
            used.add(_field_spec(spec)[0])
        for form in self.map.forms.values():
            used.update(form.items)
            used.add(form.date)
        for spec in self.map.procedures:
            used.update({spec.get("date"), _field_spec(spec.get("kind"))[0]})
        for f in self.fields.values():
            if f.name in used or f.type == "descriptive":
                continue
            why = "its form is skipped (null in the mapping)" if f.form in self.map.skipped_forms else \
                "no part of the mapping names it"
            self.summary.not_mapped.append({"field": f.name, "form": f.form, "type": f.type, "reason": why})

    # -- the records file
    def _read(self) -> None:
        try:
            handle = open(self.records, encoding="utf-8-sig", newline="")
        except OSError as exc:
            self.fail("records", None, None, f"cannot read the records: {exc.strerror}")
            return
        with handle:
            reader = csv.reader(handle)
            try:
                header = next(reader, None)
                if not header:
                    self.fail("records", 1, None, "the records file is empty")
                    return
                if not self._header(header):
                    return
                rows = ((n, dict(zip(header, cells))) for n, cells in self._numbered(reader) if any(cells))
                for record, group in itertools.groupby(rows, key=lambda r: r[1].get(self.map.record_id, "")):
                    record_rows = list(group)  # (a row that cannot be read raises here: of no record yet)
                    self.record = record.strip() or None
                    self._record(record, record_rows)
                    self.record = None
            except UnicodeDecodeError as exc:
                self.fail("records", self.row + 1, None,
                          f"not UTF-8 text: byte 0x{exc.object[exc.start]:02x} cannot be read (export the records "
                          "as CSV, UTF-8); nothing was imported")
            except csv.Error as exc:
                self.fail("records", self.row + 1, None, f"not a readable CSV file: {exc}")

    def _numbered(self, reader):
        """The data rows with their row numbers as a spreadsheet shows the file: the header is row 1, the first
        record's row 2, a blank line a row too; a quoted value over several lines is one row (csv's line_num would
        count its lines)."""
        for n, cells in enumerate(reader, start=2):
            self.row = n
            yield n, cells

    def _header(self, header: list[str]) -> bool:
        ok = True
        if self.map.record_id not in header:
            self.fail("records", 1, self.map.record_id, "the record id column is missing")
            ok = False
        for column in header:
            if column in SPECIAL or column.endswith("_complete") and column[:-9] in {f.form for f in
                                                                                      self.fields.values()}:
                continue
            if column in self.fields:
                self.columns[column] = (self.fields[column], None)
                continue
            m = CHECKBOX_COLUMN.match(column)
            base = self.fields.get(m["field"]) if m else None
            if base is not None and base.type == "checkbox":
                if m["code"] not in base.choices:
                    self.fail("records", 1, column, f"checkbox code {m['code']!r} is not one of {base.name}'s choices "
                                                    f"in the data dictionary ({', '.join(base.choices)})")
                    ok = False
                self.columns[column] = (base, m["code"])
                continue
            self.fail("records", 1, column, "not a field of the data dictionary")
            ok = False
        if self.map.events and EVENT not in header:
            self.fail("records", 1, EVENT, "the mapping names events but the records have no redcap_event_name "
                                           "column (a classic project)")
            ok = False
        return ok

    def value(self, row: tuple[int, dict], name: str | None, unit: str):
        """The parsed value of a field in a row ("" and absent are None); an unparsable value is an error."""
        if name is None:
            return None
        line, cells = row
        raw = cells.get(name, "")
        if not raw.strip():
            return None
        try:
            return parse_value(self.fields[name], raw)
        except ValueError as exc:
            self.fail(unit, line, name, str(exc))
            return None

    def first(self, rows, name: str | None, unit: str):
        for row in rows:
            value = self.value(row, name, unit)
            if value is not None:
                return value
        return None

    def spec_value(self, rows, spec, unit: str, key: str):
        f, codes, constant = _field_spec(spec)
        if f is None:
            return constant
        value = self.first(rows, f, unit)
        if value is None or codes is None:
            return value
        if value not in codes:
            self.fail(unit, rows[0][0], f, f"{key}: code {value!r} is not in the mapping's codes "
                                           f"({', '.join(codes)})")
            return None
        return codes[value]

    # -- one record (all its rows)
    def _record(self, record: str, rows: list[tuple[int, dict]]) -> None:
        if not record.strip():
            self.fail("records", rows[0][0], self.map.record_id, "a row without a record id")
            return
        kept = []
        for row in rows:
            event = row[1].get(EVENT)
            if self.map.events or event:
                if event not in self.map.events:
                    self.fail("records", row[0], EVENT, f"event {event!r} is not in the mapping's events "
                                                        f"({', '.join(self.map.events) or 'none'})")
                    continue
                if self.map.events[event] is None:
                    self.summary.units["rows"].skipped += 1
                    continue
            kept.append(row)
        patient = self._patient(record, rows)
        if patient is None:
            return
        episode = self._episode(patient, rows)
        for spec in self.map.procedures:
            self._procedures(spec, episode, kept)
        for row in kept:
            for form in self.map.forms.values():
                repeat = row[1].get(REPEAT_FORM) or ""
                if repeat and repeat != form.form:
                    continue
                self._response(form, patient, episode, row, rows, repeat)

    def _patient(self, record: str, rows) -> Patient | None:
        p = self.map.patient
        errors_before = len(self.summary.errors)
        mrn = self.spec_value(rows, p.get("mrn", self.map.record_id), "patients", "mrn") or record
        fields: dict = {"mrn": f"{p.get('mrn_prefix', '')}{mrn}"}
        for key in (*PATIENT_TEXT, "birth_date", "sex", "consent_registry", "consent_date", "consent_version"):
            if key in p:
                value = self.spec_value(rows, p[key], "patients", key)
                if value is not None:
                    fields[key] = value if key not in PATIENT_TEXT else str(value)
        if len(self.summary.errors) > errors_before:
            return None
        for key in ("given_name", "family_name", "birth_date"):
            if fields.get(key) in (None, ""):
                spec = _field_spec(p.get(key))[0]
                self.fail("patients", rows[0][0], spec, f"record {record}: no {key.replace('_', ' ')}")
                return None
        existing = Patient.objects.filter(clinic=self.clinic, mrn=fields["mrn"]).first()
        try:
            if existing is None:
                patient = registry.patient_create(clinic=self.clinic, **fields)
                self.summary.units["patients"].created += 1
                return patient
            changes = {k: v for k, v in fields.items() if getattr(existing, k) != v}
            if changes:
                existing = registry.patient_update(patient=existing, **changes)
                self.summary.units["patients"].updated += 1
            else:
                self.summary.units["patients"].skipped += 1
            return existing
        except ValidationError as exc:
            self._invalid("patients", rows[0][0], exc, record)
            return None

    def _invalid(self, unit: str, row: int, exc: ValidationError, record: str, items: list[str] | None = None) -> None:
        if hasattr(exc, "message_dict"):
            for key, messages in exc.message_dict.items():
                if items and key.startswith("item_") and key[5:].isdigit() and int(key[5:]) <= len(items):
                    key = items[int(key[5:]) - 1]  # the REDCap field that holds the item
                self.fail(unit, row, key, f"record {record}: {' '.join(messages)}")
        else:
            self.fail(unit, row, None, f"record {record}: {' '.join(exc.messages)}")

    def _episode(self, patient: Patient, rows) -> Episode | None:
        spec = self.map.episode
        if spec is None:
            return None
        values = {k: self.spec_value(rows, spec.get(k), "episodes", k) for k in ("condition", "body_site", "side")}
        if any(v is None for v in values.values()):
            self.fail("episodes", rows[0][0], None, f"patient {patient.mrn}: condition, body site and side are "
                                                    f"needed ({values})")
            return None
        existing = Episode.objects.filter(patient=patient, **values).first()
        if existing is not None:
            self.summary.units["episodes"].skipped += 1
            return existing
        try:
            episode = registry.episode_create(patient=patient, **values)
        except ValidationError as exc:
            self._invalid("episodes", rows[0][0], exc, patient.mrn)
            return None
        self.summary.units["episodes"].created += 1
        return episode

    def _procedures(self, spec: dict, episode: Episode | None, rows) -> None:
        if episode is None:
            return
        f, codes, constant = _field_spec(spec.get("kind"))
        for row in rows:
            if spec.get("form") and (row[1].get(REPEAT_FORM) or spec["form"]) != spec["form"]:
                continue
            day = self.value(row, spec.get("date"), "procedures")
            if day is None:
                continue
            if f is not None and self.fields[f].type == "checkbox":
                kinds = [codes[c] for c in (codes or {}) if row[1].get(f"{f}___{c}", "").strip() == "1"]
            elif f is not None:
                code = self.value(row, f, "procedures")
                if code is None:
                    continue
                if code not in (codes or {}):
                    self.fail("procedures", row[0], f, f"code {code!r} is not in the mapping's codes")
                    continue
                kinds = [codes[code]]
            else:
                kinds = [constant]
            for kind in kinds:
                self._procedure(episode, day, kind, bool(spec.get("index")), row)

    def _procedure(self, episode: Episode, day: dt.date, kind: str, index: bool, row) -> None:
        existing = Procedure.objects.filter(episode=episode, date=day, kind=kind).first()
        if existing is not None:
            self.summary.units["procedures"].skipped += 1
            return
        is_index = index and not episode.procedures.filter(is_index=True).exists()
        try:
            registry.procedure_record(episode=episode, date=day, kind=kind, is_index=is_index)
        except ValidationError as exc:
            self._invalid("procedures", row[0], exc, episode.patient.mrn)
            return
        self.summary.units["procedures"].created += 1

    def _response(self, form: FormMap, patient: Patient, episode, row, rows, repeat: str) -> None:
        unit = form.form
        try:
            definition = get_definition(form.instrument)
        except (UnknownInstrument, DefinitionError):
            definition = None  # a dry run of a form installed from the dictionary: checked as numbers only
        answers: list = []
        seen = False
        for n, name in enumerate(form.items):
            raw = row[1].get(name, "").strip()
            if not raw:
                answers.append(None)
                continue
            seen = True
            item = definition.items[n] if definition is not None else None
            if item is not None and item.type == "choice":
                option = next((o for o in item.options if o.code == raw), None)
                if option is None:
                    try:
                        answers.append(parse_number(raw))
                    except ValueError:
                        self.fail(unit, row[0], name, f"{raw!r} is not an answer of {form.instrument}")
                        answers.append(None)
                    continue
                answers.append(option.value)
                continue
            try:
                answers.append(parse_number(raw, comma="comma" in self.fields[name].validation))
            except ValueError as exc:
                self.fail(unit, row[0], name, str(exc))
                answers.append(None)
        if not seen:
            return
        event = row[1].get(EVENT)
        time_point = form.time_point or (self.map.events.get(event) if event else None) or ""
        day = self.value(row, form.date, unit) if form.date else None
        if day is None and form.date:
            day = self.first(rows, form.date, unit)
        if day is None:
            self.fail(unit, row[0], form.date, "no completion date for this response")
            return
        raw_instance = (row[1].get(REPEAT_INSTANCE) or "1").strip() if repeat else "1"
        if not raw_instance.isdigit() or int(raw_instance) < 1:
            self.fail(unit, row[0], REPEAT_INSTANCE, f"{raw_instance!r} is not a repeat instance (1, 2, 3 ...)")
            return
        instance = int(raw_instance)
        # one moment per repeat instance: instances of one day stay distinct and a re-import finds each again
        at = timezone.make_aware(dt.datetime.combine(day, dt.time(12, 0)) + dt.timedelta(minutes=instance - 1))
        if definition is None:
            self.summary.units[unit].created += 1
            return
        existing = Response.objects.filter(patient=patient, instrument=definition.code, time_point=time_point,
                                           completed_at=at).first()
        try:
            if existing is None:
                instrument_services.response_record(patient=patient, episode=episode, instrument=definition.code,
                                                    answers=answers, time_point=time_point, completed_at=at,
                                                    source=Response.Source.IMPORT)
                self.summary.units[unit].created += 1
                return
            built = instrument_services.response_build(patient=patient, episode=episode,
                                                       instrument=definition.code, answers=answers,
                                                       time_point=time_point, completed_at=at,
                                                       source=Response.Source.IMPORT)
        except ValidationError as exc:
            self._invalid(unit, row[0], exc, patient.mrn, form.items)
            return
        if existing.answers == built.answers and existing.episode_id == (episode.pk if episode else None):
            self.summary.units[unit].skipped += 1
            return
        for name in ("episode", "answers", "scores", "score", "valid", "invalid_reason", "instrument_version"):
            setattr(existing, name, getattr(built, name))
        existing.save()
        audit_record(action=AuditEvent.Action.UPDATE, obj=existing, detail="REDCap re-import: answers changed")
        self.summary.units[unit].updated += 1


def import_project(*, dictionary: Path, records: Path, mapping: Path, clinic: Clinic,
                   dry_run: bool = False) -> Summary:
    """Import one REDCap project into `clinic` (see the module's docstring). Raises MappingError when the dictionary
    or the mapping cannot be used; refusals in the records are in the summary (nothing written then)."""
    return Importer(dictionary=dictionary, records=records, mapping=mapping, clinic=clinic, dry_run=dry_run).run()


# ------------------------------------------------------------------------------------------------ suggesting

NAME_HINTS = {
    "given_name": ("first_name", "name_first", "given_name", "firstname", "fname", "first"),
    "family_name": ("last_name", "name_last", "family_name", "surname", "lastname", "lname", "last"),
    "birth_date": ("dob", "birth_date", "date_of_birth", "birthdate", "birthday"),
    "sex": ("sex", "gender"),
    "email": ("email", "e_mail", "email_address"),
    "phone": ("telephone", "phone", "telephone_1", "phone_number", "mobile"),
}
SEX_WORDS = {"female": "female", "woman": "female", "f": "female", "male": "male", "man": "male", "m": "male",
             "other": "other", "unknown": "unknown"}


def suggest_mapping(*, dictionary: Path, records: Path | None = None) -> dict:
    """A starting mapping from the dictionary (and the records' events): the first field is the record id and the
    MRN; name, birth date, sex, e-mail and phone fields are recognised by name, label and validation; every event
    and form is listed, set to null (skipped) for a person to fill in."""
    _, fields = read_dictionary(dictionary)
    names = list(fields)
    patient: dict = {"mrn": names[0]}
    for key, hints in NAME_HINTS.items():
        found = next((n for h in hints for n in names if n.lower() == h), None)
        if found is None:
            label_words = {"given_name": "first name", "family_name": "last name", "birth_date": "birth",
                           "sex": "sex", "email": "mail", "phone": "phone"}[key]
            found = next((n for n in names if label_words in fields[n].label.lower()
                          and (key != "birth_date" or fields[n].validation.startswith("date"))), None)
        if found is None:
            continue
        if key == "sex":
            codes = {c: SEX_WORDS[label.strip().lower()] for c, label in fields[found].choices.items()
                     if label.strip().lower() in SEX_WORDS}
            patient[key] = {"field": found, "codes": codes} if codes else found
        else:
            patient[key] = found
    patient["consent_registry"] = {"value": False}
    events: dict[str, str | None] = {}
    if records is not None:
        try:
            with open(records, encoding="utf-8-sig", newline="") as handle:
                for row in csv.DictReader(handle):
                    event = row.get(EVENT)
                    if event and event not in events:
                        events[event] = "baseline" if re.search(r"enrol|baseline|screen", event) else None
        except (OSError, UnicodeDecodeError, csv.Error):
            events = {}
    forms = {form: None for form in dict.fromkeys(f.form for f in fields.values())}
    out = {"schema": SCHEMA, "record_id": names[0], "patient": patient}
    if events:
        out["events"] = events
    out["forms"] = forms
    return out
