"""FHIR R4 import: Bundles (transaction, batch, collection, searchset), single resources and Bulk Data ndjson.

A unit of work is one file (or one POSTed Bundle): it is imported whole or not at all. Each resource is
validated against its fhir.resources R4B model, its references are resolved inside the unit (fullUrl,
`urn:uuid:`, relative `Type/id`) or against what earlier imports linked (FhirLink), and it is mapped onto the
registry through the same services the web forms use (validation, audit, follow-up scheduling, analytics).
Valid FHIR the registry has no place for is skipped and counted with the reason; invalid input is refused with
its location. ndjson is read line by line (memory bounded whatever the file's size). docs/fhir.md has the mapping.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError as PydanticValidationError

from orthoreg import bulkinsert
from orthoreg.imaging.models import ImagingStudy
from orthoreg.instruments import definitions
from orthoreg.instruments.definitions import UnknownInstrument
from orthoreg.instruments.fhir import flat_items
from orthoreg.instruments.models import Response
from orthoreg.instruments.services import instrument_install, response_build, response_record, responses_store
from orthoreg.instruments.types import EXT_INSTRUMENT, EXT_ORDINAL, EXT_SUBSCALE, DefinitionError
from orthoreg.registry import coding, services
from orthoreg.registry.coding import BodySite, Side
from orthoreg.registry.models import AdverseEvent, Clinic, Episode, Patient, Procedure

from ..models import FhirLink
from . import ahead as ahead_process
from . import codes
from .export import ORTHOBIOLOGIC_FIELDS, RESOURCE_ORDER, Validator

BUNDLE_TYPES = ("transaction", "batch", "collection", "searchset")
# The order resources of one Bundle are mapped in, so that what they refer to exists first.
MAP_ORDER = {t: n for n, t in enumerate(("Questionnaire", "Patient", "Condition", "Procedure",
                                         "QuestionnaireResponse", "ImagingStudy", "Observation", "AdverseEvent"))}
AHEAD_MIN_BYTES = 1_000_000  # the command line validates ndjson files this large in all in a second process
# Recently used records of the types other resources refer to (Patient, Condition, Procedure), kept by an import
# for the references of the lines that follow: bounded whatever the file's size (~2 KB each)
OBJECT_CACHE = 20_000
REFERRED_TO = frozenset({"Patient", "Condition", "Procedure"})
# Keys an import remembers it linked (for the references of later lines and files; the rest are asked of the
# database): the most recent ones, bounded whatever the import's size (~250 bytes each)
LINK_CACHE = 100_000
MODEL_OF = {"Patient": Patient, "Condition": Episode, "Procedure": Procedure, "QuestionnaireResponse": Response,
            "Observation": Response, "AdverseEvent": AdverseEvent, "ImagingStudy": ImagingStudy}
OWN_KIND = {"Patient": "patient", "Condition": "episode", "Procedure": "procedure",
            "QuestionnaireResponse": "response", "AdverseEvent": "adverse-event", "ImagingStudy": "imaging-study"}


# A resource's verdict: None when it may be imported, else (resource type, message, where) of its refusal.
Verdict = tuple[str, str, str] | None


class Refused(Exception):
    """This resource cannot be imported as given: the unit is refused."""

    def __init__(self, message: str, where: str = ""):
        super().__init__(message)
        self.message = message
        self.where = where


class Skipped(Exception):
    """Valid FHIR the registry has no place for: counted with the reason."""


@dataclass
class TypeSummary:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list[dict] = field(default_factory=list)
    skipped_reasons: Counter = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"created": self.created, "updated": self.updated, "skipped": self.skipped, "errors": self.errors,
                "skipped_reasons": dict(self.skipped_reasons.most_common()), "warnings": self.warnings}


@dataclass
class Summary:
    dry_run: bool = False
    types: dict[str, TypeSummary] = field(default_factory=dict)
    units: list[dict] = field(default_factory=list)

    def of(self, resource_type: str) -> TypeSummary:
        return self.types.setdefault(resource_type or "(unknown)", TypeSummary())

    def refuse(self, location: str, message: str, unit: str | None = None) -> None:
        """A whole unit (file, folder, argument) refused before anything of it was imported; the error's location
        is the unit's name unless it says where in it."""
        self.of("(file)").errors.append({"location": location, "message": message})
        self.units.append({"unit": unit or location, "status": "refused", "resources": 0})

    @property
    def ok(self) -> bool:
        """Everything imported: no unit refused, no entry of a batch refused."""
        return all(u["status"] in ("imported", "dry run") for u in self.units)

    def as_dict(self) -> dict:
        return {"ok": self.ok, "dry_run": self.dry_run, "units": self.units,
                "resources": {t: s.as_dict() for t, s in sorted(self.types.items())}}

    def as_text(self) -> str:
        lines = []
        for unit in self.units:
            lines.append(f"{unit['status']:9} {unit['unit']} ({unit['resources']} resources)")
        lines.append("")
        lines.append(f"{'resource type':28} {'created':>8} {'updated':>8} {'skipped':>8} {'errors':>7}")
        for name, s in sorted(self.types.items()):
            lines.append(f"{name:28} {s.created:>8} {s.updated:>8} {s.skipped:>8} {len(s.errors):>7}")
        for name, s in sorted(self.types.items()):
            for reason, n in s.skipped_reasons.most_common():
                lines.append(f"  skipped {n} {name}: {reason}")
            for warning in s.warnings:
                lines.append(f"  note on {name}: {warning}")
        for s in self.types.values():
            for error in s.errors:
                lines.append(f"ERROR {error['location']}: {error['message']}")
        if self.dry_run:
            lines.append("Dry run: nothing was written.")
        return "\n".join(lines) + "\n"


# --- reading units ---------------------------------------------------------------------------------------

@dataclass
class Entry:
    location: str
    resource: dict | None
    full_url: str = ""
    method: str = ""
    request_url: str = ""
    size: int = 0  # bytes of its ndjson line
    line: int = 0  # its line number in an ndjson file (0: not from one)
    keys: list[str] | None = None  # what it is found by (Unit.keys_of, worked out once)


class UnitError(Exception):
    def __init__(self, location: str, message: str):
        super().__init__(message)
        self.location = location
        self.message = message


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnitError(where, f"not UTF-8: byte {exc.start} (0x{data[exc.start]:02x}) cannot be decoded; "
                               "FHIR JSON is UTF-8") from None


def _loads(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnitError(where, f"malformed JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise UnitError(where, "malformed JSON: nested too deeply") from None


def bundle_entries(document: Any, name: str) -> list[Entry]:
    """The entries of one JSON document (a Bundle or a single resource). Raises UnitError for the whole unit."""
    if not isinstance(document, dict):
        raise UnitError(name, "not a FHIR resource: the document must be a JSON object with a resourceType")
    if document.get("resourceType") != "Bundle":
        return [Entry(location=name, resource=document)]
    kind = document.get("type")
    if kind not in BUNDLE_TYPES:
        raise UnitError(f"{name}: Bundle.type", f"Bundle type {kind!r} is not imported (use one of "
                                                f"{', '.join(BUNDLE_TYPES)})")
    raw = document.get("entry")
    if raw is None or raw == []:
        raise UnitError(name, "empty Bundle: it has no entries, so there is nothing to import")
    if not isinstance(raw, list):
        raise UnitError(f"{name}: Bundle.entry", "entry must be a list")
    entries = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        where = f"{name}: entry[{i}]"
        if not isinstance(item, dict):
            raise UnitError(where, "an entry must be an object")
        full_url = item.get("fullUrl") or ""
        if full_url:
            if full_url in seen:
                raise UnitError(f"{where}.fullUrl", f"duplicate fullUrl {full_url!r} (also entry[{seen[full_url]}])")
            seen[full_url] = i
        request = item.get("request") if isinstance(item.get("request"), dict) else {}
        resource = item.get("resource")
        if resource is not None and not isinstance(resource, dict):
            raise UnitError(f"{where}.resource", "resource must be an object")
        if isinstance(resource, dict) and resource.get("resourceType"):
            where = f"{where} ({resource['resourceType']}{'/' + str(resource['id']) if resource.get('id') else ''})"
        entries.append(Entry(location=where, resource=resource, full_url=full_url,
                             method=str(request.get("method") or "").upper(), request_url=str(request.get("url") or "")))
    return entries


def ndjson_entries(path: Path) -> Iterator[Entry]:
    """One entry per line, read line by line (never the whole file)."""
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, start=1):
            where = f"{path.name}: line {n}"
            text = _decode(line, where).strip()
            if not text:
                continue
            resource = _loads(text, where)
            if not isinstance(resource, dict):
                raise UnitError(where, "not a FHIR resource: each line of an ndjson file must be a JSON object with "
                                       "a resourceType")
            yield Entry(location=where, resource=resource, size=len(line), line=n)


def _ndjson_order(path: Path) -> tuple:
    stem = path.name.split(".")[0]
    return (RESOURCE_ORDER.index(stem) if stem in RESOURCE_ORDER else len(RESOURCE_ORDER), path.name)


def expand_paths(paths: Iterable[str]) -> list[Path]:
    """Files to import, in order: a directory's ndjson files by resource type (Patient first), then its JSON."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            ndjson = sorted((p for p in path.iterdir() if p.suffix == ".ndjson"), key=_ndjson_order)
            out.extend(ndjson)
            out.extend(sorted(p for p in path.iterdir() if p.suffix == ".json"))
        else:
            out.append(path)
    return out


# --- the import of one unit --------------------------------------------------------------------------------

def _split_ref(ref: str) -> tuple[str, str] | None:
    """'Patient/12', 'http://x/fhir/Patient/12', 'Patient/12/_history/3' -> ('Patient', '12')."""
    parts = [p for p in ref.split("?")[0].split("/") if p]
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) >= 2 and re.fullmatch(r"[A-Z][A-Za-z]+", parts[-2]):
        return parts[-2], parts[-1]
    return None


def _walk_references(obj: Any) -> Iterator[str]:
    if isinstance(obj, dict):
        ref = obj.get("reference")
        if isinstance(ref, str):
            yield ref
        for value in obj.values():
            if isinstance(value, (dict, list)):
                yield from _walk_references(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _walk_references(value)


def _codings(concept: Any) -> list[dict]:
    if isinstance(concept, dict):
        return [c for c in concept.get("coding") or [] if isinstance(c, dict)]
    return []


def _code(concept: Any, system: str) -> str | None:
    return next((c.get("code") for c in _codings(concept) if c.get("system") == system and c.get("code")), None)


def _ext(resource: dict, url: str) -> dict | None:
    return next((e for e in resource.get("extension") or [] if e.get("url") == url), None)


def _ext_value(ext: dict | None) -> Any:
    if not ext:
        return None
    return next((v for k, v in ext.items() if k.startswith("value")), None)


def _day(value: Any, what: str) -> dt.date | None:
    """A FHIR date or dateTime as a calendar day (partial dates like '2012' are not enough)."""
    if not value:
        return None
    text = str(value)
    if len(text) < 10:
        raise Skipped(f"{what} {text!r} is not a full date (the registry records days)")
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        raise Refused(f"{what} {text!r} is not a valid date") from None


def _instant(value: Any) -> dt.datetime | None:
    if not value:
        return None
    text = str(value)
    if len(text) == 10:
        return timezone.make_aware(dt.datetime.combine(dt.date.fromisoformat(text), dt.time(12)))
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


def _messages(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" if k != "__all__" else " ".join(v)
                         for k, v in exc.message_dict.items())
    return " ".join(exc.messages)


def _pydantic_message(exc: PydanticValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        loc = ".".join(str(p) for p in error.get("loc", ()) if p not in ("__root__",))
        msg = error.get("msg", "invalid")
        if error.get("type") == "extra_forbidden":
            msg = "not an element of this resource in FHIR R4 (an R5 or misspelt element?)"
        parts.append(f"{loc or 'resource'}: {msg}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


@dataclass
class Context:
    clinic: Clinic | None
    actor: Any = None
    request: Any = None
    dry_run: bool = False
    allowed_clinic_ids: set[int] | None = None  # an API user's clinics (None: the command line, every clinic)
    may_install_instruments: bool = True  # Questionnaires become instruments (the command line; admins by API)
    # What imported units (committed ones) linked: (resource type, key) -> record id; and recently used records.
    links: dict[tuple[str, str], int] = field(default_factory=dict)
    objects: OrderedDict = field(default_factory=OrderedDict)
    installed: list[tuple[Path, bytes | None]] = field(default_factory=list)  # undone at the end of a dry run
    validator: Validator = field(default_factory=Validator)  # the elements validated by this import
    # ndjson files of at least this many bytes in all are validated ahead in a second process (ahead.py) where
    # there is a second core; None: never (the API: a request's Bundle is small and its server has other work)
    ahead_min_bytes: int | None = None
    ahead: ahead_process.Ahead | None = None  # that process, while the run lasts
    clinics: dict[str | None, Clinic] = field(default_factory=dict)  # managingOrganization's code -> clinic
    _patient_clinic_ids: list[int] | None = field(default=None, init=False, repr=False)

    def patient_clinic_ids(self) -> list[int]:
        """The clinics this import may put a patient in: --clinic, else the API user's, else every clinic (an
        import creates none; asked once). A lookup by medical record number names them, so that it reads the
        unique index (clinic, MRN) rather than every patient of the registry."""
        if self._patient_clinic_ids is None:
            if self.clinic is not None:
                self._patient_clinic_ids = [self.clinic.pk]
            elif self.allowed_clinic_ids is not None:
                self._patient_clinic_ids = sorted(self.allowed_clinic_ids)
            else:
                self._patient_clinic_ids = list(Clinic.objects.order_by("pk").values_list("pk", flat=True))
        return self._patient_clinic_ids


class Unit:
    """One file or one Bundle: its index of entries and what each became."""

    def __init__(self, name: str, ctx: Context, summary: Summary, atomic: bool = True):
        self.name = name
        # A transaction (and any file): all or nothing. A batch Bundle: each entry succeeds or fails on its own.
        self.atomic = atomic
        self.entry_errors = 0  # entries of a batch refused on their own (the rest of the batch is written)
        self.ctx = ctx
        self.summary = summary
        self.by_url: dict[str, Entry] = {}
        self.by_type_id: dict[str, Entry] = {}
        self.outcome: dict[int, tuple[str, Any]] = {}  # id(entry) -> ("ok", object) | ("skipped"/"refused", why)
        self.errors = 0
        self.states: dict[int, str] = {}  # id(entry) -> "created" | "updated"
        self.count = 0
        self.installed: list[tuple[Path, bytes | None]] = []  # instrument files written by this unit
        self.pending: dict[str, TypeSummary] = {}
        self.new_links: dict[tuple[str, str], int] = {}
        # The bulk path of a streamed unit: new records (patients, conditions, procedures, adverse events,
        # responses) validated one by one, stored together by their services' bulk twins (flush).
        self.bulk = False
        self.instruments: dict[str, str | None] = {}  # Questionnaire canonical -> installed instrument code
        self.deferred: list[tuple[Entry, str, Any]] = []
        self.deferred_keys: set[tuple[str, str]] = set()
        self.deferred_types: set[str] = set()
        self.builds: dict[int, services.Pending] = {}  # id(record) -> its registry build (record_build)
        self.deferred_mrns: set[tuple[int, str]] = set()  # (clinic, MRN) of the deferred patients
        self.deferred_index_episodes: set[int] = set()  # episodes of the deferred index procedures
        # Keys looked up for a whole chunk of entries in one query: found ones, and every key asked for.
        self.prefetched: dict[tuple[str, str], int] = {}
        self.prefetch_asked: set[tuple[str, str]] = set()
        # The patients of the chunk's medical record numbers ((clinic, MRN) -> patient; those stored since too)
        self.patients_by_mrn: dict[tuple[int, str], Patient] = {}
        self.mrns_asked: set[str] = set()

    # summary bookkeeping (kept per unit, merged when the unit ends)
    def tally(self, resource_type: str) -> TypeSummary:
        return self.pending.setdefault(resource_type or "(unknown)", TypeSummary())

    def refuse(self, entry: Entry | None, resource_type: str, message: str, where: str = "") -> None:
        location = (entry.location if entry else self.name) + (f": {where}" if where else "")
        self.tally(resource_type).errors.append({"location": location, "message": message})
        if entry is not None and not self.atomic:
            self.entry_errors += 1
        else:
            self.errors += 1
        if entry is not None:
            self.outcome[id(entry)] = ("refused", message)

    def index(self, entry: Entry) -> None:
        res = entry.resource or {}
        if entry.full_url:
            self.by_url[entry.full_url] = entry
        if res.get("resourceType") and res.get("id"):
            self.by_type_id.setdefault(f"{res['resourceType']}/{res['id']}", entry)

    # references
    def resolve(self, reference: Any, expected: str, entry: Entry, where: str) -> Any:
        """The registry object a Reference points at. Raises Skipped when it points at something skipped and
        Refused when it points at nothing."""
        if not isinstance(reference, dict):
            raise Refused(f"{where} is missing", where)
        ref = reference.get("reference")
        if isinstance(ref, str) and ref.startswith("#"):
            raise Skipped(f"{where} is a contained resource ({ref}); contained {expected}s are not imported")
        target: Entry | None = None
        if isinstance(ref, str):
            target = self.by_url.get(ref)
            if target is None:
                split = _split_ref(ref)
                if split:
                    target = self.by_type_id.get(f"{split[0]}/{split[1]}")
        if target is not None and target is not entry:
            state, value = self.outcome.get(id(target), ("pending", None))
            if state == "ok":
                return value
            if state == "skipped":
                raise Skipped(f"{where} {ref} was skipped ({value})")
            if state == "refused":
                if not self.atomic:  # a batch: this entry fails with the one it needs
                    raise Refused(f"{where} {ref} was refused", where)
                raise Skipped(f"{where} {ref} was refused")
        keys = []
        if isinstance(ref, str):
            if ref.startswith("urn:"):
                keys.append(f"url:{ref}")
            split = _split_ref(ref)
            if split and split[0] == expected:
                keys.append(f"id:{split[0]}/{split[1]}")
            if "://" in ref:
                keys.append(f"url:{ref}")
            match = re.match(rf"^{expected}\?identifier=(.+)$", ref)
            if match:
                system, _, value = match[1].partition("|")
                keys.append(f"identifier:{system}|{value}")
        identifier = reference.get("identifier")
        if isinstance(identifier, dict) and identifier.get("value"):
            keys.append(f"identifier:{identifier.get('system', '')}|{identifier['value']}")
            own = self.own_object(expected, identifier)
            if own is not None:
                return own
        obj = self.linked(expected, keys)
        if obj is not None:
            return obj
        shown = ref or (f"identifier {identifier.get('system', '')}|{identifier.get('value')}"
                        if isinstance(identifier, dict) else "an empty reference")
        raise Refused(f"{where} refers to {shown}, which is neither in this {self.kind_word} nor in the registry",
                      where)

    kind_word = "file"

    def own_object(self, resource_type: str, identifier: dict) -> Any:
        kind = OWN_KIND.get(resource_type)
        if kind and identifier.get("system") == codes.id_system(kind) and str(identifier.get("value", "")).isdigit():
            return self.fetch(resource_type, int(identifier["value"]))
        return None

    def scoped(self, qs):
        if self.ctx.allowed_clinic_ids is None:
            return qs
        model = qs.model
        path = {Patient: "clinic", Episode: "patient__clinic", Procedure: "episode__patient__clinic",
                Response: "patient__clinic", AdverseEvent: "procedure__episode__patient__clinic",
                ImagingStudy: "episode__patient__clinic"}[model]
        return qs.filter(**{f"{path}__in": self.ctx.allowed_clinic_ids})

    def fetch(self, resource_type: str, pk: int) -> Any:
        """The record of this type with this id (None if there is none, or it is not the API user's)."""
        model: Any = MODEL_OF[resource_type]
        if self.ctx.allowed_clinic_ids is not None:
            return self.scoped(model.objects.filter(pk=pk)).first()
        cache = self.ctx.objects
        obj = cache.get((model, pk))
        if obj is None:
            obj = model.objects.filter(pk=pk).first()
            if obj is None:
                return None
            cache[(model, pk)] = obj
            if len(cache) > OBJECT_CACHE:
                cache.popitem(last=False)
        else:
            cache.move_to_end((model, pk))
        return obj

    def linked(self, resource_type: str, keys: list[str]) -> Any:
        return self._linked(resource_type, keys)[0]

    def _known(self, resource_type: str, key: str) -> int | None:
        """The record id a key points at, if this unit, the run or the chunk's look-up knows it (else ask the
        database)."""
        return (self.new_links.get((resource_type, key)) or self.ctx.links.get((resource_type, key))
                or self.prefetched.get((resource_type, key)))

    def _linked(self, resource_type: str, keys: list[str]) -> tuple[Any, str | None]:
        """The record the first of these keys (in their order: identifiers first) is linked to, and that key."""
        if not keys or resource_type not in MODEL_OF:
            return None, None
        for key in keys:
            pk = self._known(resource_type, key)
            if pk is not None:
                return self.fetch(resource_type, pk), key
        if all((resource_type, key) in self.prefetch_asked for key in keys):
            return None, None  # the chunk's one query found none of them
        found = dict(FhirLink.objects.filter(resource_type=resource_type, key__in=keys).values_list("key", "object_id"))
        for k in keys:  # (what each key points at, for link_many)
            self.prefetch_asked.add((resource_type, k))
            if k in found:
                self.prefetched[(resource_type, k)] = found[k]
        key = next((k for k in keys if k in found), None)
        return (self.fetch(resource_type, found[key]), key) if key is not None else (None, None)

    def keys_of(self, entry: Entry) -> list[str]:
        if entry.keys is None:
            entry.keys = self._keys(entry)
        return entry.keys

    @staticmethod
    def _keys(entry: Entry) -> list[str]:
        res = entry.resource or {}
        keys = []
        identifiers = res.get("identifier")
        if isinstance(identifiers, dict):
            identifiers = [identifiers]
        for ident in identifiers or []:
            if isinstance(ident, dict) and ident.get("value"):
                keys.append(f"identifier:{ident.get('system', '')}|{ident['value']}")
        if entry.full_url and (entry.full_url.startswith("urn:") or "://" in entry.full_url):
            keys.append(f"url:{entry.full_url}")
        if res.get("id"):
            keys.append(f"id:{res['resourceType']}/{res['id']}")
        return list(dict.fromkeys(k[:400] for k in keys))

    def existing(self, entry: Entry, resource_type: str, same: Callable[[Any], bool] | None = None) -> Any:
        """The registry's record this resource was imported as before: by orthoreg's own id, by a linked
        identifier, else by a linked fullUrl or id. A fullUrl or id says less than an identifier (two sources both
        have a Patient/1; a sender reuses a urn:uuid): a record found only by one of them for which `same` is
        False (another patient: another medical record number, or the record of another patient) is not this
        resource, which becomes a record of its own; those keys then point at it (link_many)."""
        res = entry.resource or {}
        identifiers = res.get("identifier")
        if isinstance(identifiers, dict):
            identifiers = [identifiers]
        for ident in identifiers or []:
            if isinstance(ident, dict):
                own = self.own_object(resource_type, ident)
                if own is not None:
                    return own
        obj, key = self._linked(resource_type, self.keys_of(entry))
        if obj is not None and same is not None and key is not None and not key.startswith("identifier:") \
                and not same(obj):
            return None
        return obj

    def link(self, entry: Entry, resource_type: str, obj: Any) -> None:
        self.link_many([(entry, resource_type, obj)])

    def link_many(self, records: list[tuple[Entry, str, Any]]) -> None:
        """Record the keys these entries were found by for the records they became (one insert)."""
        rows = []
        moved: list[tuple[str, str, int]] = []
        now = timezone.now()  # (created_at: auto_now_add)
        for entry, resource_type, obj in records:
            for key in self.keys_of(entry):
                known = self._known(resource_type, key)
                if known is not None and known != obj.pk and not key.startswith("identifier:"):
                    # A fullUrl or id last seen on another record: it now means this one (the references of the
                    # files that follow, from the same source, are to this resource).
                    moved.append((resource_type, key, obj.pk))
                    self.new_links[(resource_type, key)] = obj.pk
                    self.prefetched.pop((resource_type, key), None)
                    continue
                if (resource_type, key) in self.new_links or (resource_type, key) in self.ctx.links:
                    continue
                rows.append((resource_type, key, obj.pk, now))
                self.new_links[(resource_type, key)] = obj.pk
            if self.ctx.allowed_clinic_ids is None and resource_type in REFERRED_TO:
                self.ctx.objects[(type(obj), obj.pk)] = obj
        # An identifier another record already holds keeps pointing there (the first import that used it wins); a
        # fullUrl or id is moved to the record of the last resource that carried it (above).
        bulkinsert.insert_rows(FhirLink, ("resource_type", "key", "object_id", "created_at"), rows,
                               ignore_conflicts=True)
        for resource_type, key, pk in moved:  # (rare: one statement each)
            FhirLink.objects.filter(resource_type=resource_type, key=key).update(object_id=pk)
        _keep_latest(self.new_links, LINK_CACHE)
        _keep_latest(self.ctx.objects, OBJECT_CACHE)

    def prefetch(self, checked: list[tuple[Entry, str]]) -> None:
        """Look up the keys of a chunk of entries in one query per resource type (instead of one per entry), by
        the links' unique index (resource type, key); and the patients of the chunk's medical record numbers."""
        self.prefetched.clear()
        self.prefetch_asked.clear()
        self.patients_by_mrn.clear()
        self.mrns_asked.clear()
        wanted: dict[str, set[str]] = {}
        for entry, resource_type in checked:
            if resource_type in MODEL_OF:
                wanted.setdefault(resource_type, set()).update(self.keys_of(entry))
        for resource_type, keys in wanted.items():
            ordered = sorted(keys)
            for start in range(0, len(ordered), 500):
                for k, pk in FhirLink.objects.filter(resource_type=resource_type, key__in=ordered[start:start + 500]) \
                        .values_list("key", "object_id"):
                    self.prefetched[(resource_type, k)] = pk
            self.prefetch_asked.update((resource_type, k) for k in keys)
        mrns = sorted({mrn for entry, resource_type in checked
                       if resource_type == "Patient" and (mrn := _mrn(entry.resource or {}))})
        clinic_ids = self.ctx.patient_clinic_ids() if mrns else []
        for start in range(0, len(mrns), 500):
            for patient in patients_with_mrns(clinic_ids, mrns[start:start + 500]):
                self.patients_by_mrn[(patient.clinic_id, patient.mrn)] = patient
        self.mrns_asked.update(mrns)

    def patient_by_mrn(self, clinic: Clinic, mrn: str) -> Patient | None:
        """The clinic's patient with this medical record number, if there is one (from the chunk's prefetch, or
        asked now)."""
        if mrn in self.mrns_asked:
            return self.patients_by_mrn.get((clinic.pk, mrn))
        return Patient.objects.filter(clinic=clinic, mrn=mrn).first()

    def defer(self, entry: Entry, resource_type: str, obj: Any, build: services.Pending | None = None) -> None:
        """A validated, unsaved record stored by the next flush (with its links); a registry record with its
        build (services.record_build)."""
        self.deferred.append((entry, resource_type, obj))
        self.deferred_keys.update((resource_type, k) for k in self.keys_of(entry))
        self.deferred_types.add(resource_type)
        if build is not None:
            self.builds[id(obj)] = build
            if isinstance(obj, Patient):
                self.deferred_mrns.add((obj.clinic_id, obj.mrn))
        if isinstance(obj, Procedure) and obj.is_index:
            self.deferred_index_episodes.add(obj.episode_id)

    def defer_new(self, entry: Entry, resource_type: str, build: services.Pending) -> tuple[str, Any]:
        """A new registry record built (and validated) by its service, stored by the next flush: what a mapper
        returns for it."""
        self.defer(entry, resource_type, build.instance, build)
        return "created", build.instance

    def deferred_index(self, episode: Episode) -> bool:
        """Is one of the deferred procedures the index procedure of this episode?"""
        return episode.pk in self.deferred_index_episodes

    def flush(self) -> None:
        """Store the deferred records together through their services' bulk twins (registry records_store and
        procedures_store, instruments responses_store), then link their keys. Raises ValidationError."""
        if not self.deferred:
            return
        try:
            request, actor = self.ctx.request, self.ctx.actor
            builds = [self.builds[id(obj)] for _, _, obj in self.deferred if id(obj) in self.builds]
            services.records_store([b for b in builds if not isinstance(b.instance, Procedure)], request=request,
                                   actor=actor)
            for build in builds:  # (a later line of the chunk with the same MRN finds the stored patient)
                if isinstance(build.instance, Patient):
                    self.patients_by_mrn[(build.instance.clinic_id, build.instance.mrn)] = build.instance
            services.procedures_store([b for b in builds if isinstance(b.instance, Procedure)], request=request,
                                      actor=actor)
            responses = [obj for _, _, obj in self.deferred if isinstance(obj, Response)]
            if responses:
                user = actor if getattr(actor, "is_authenticated", False) else None
                responses_store(responses=responses, request=request, entered_by=user)
            self.link_many(self.deferred)
        finally:
            self.deferred.clear()
            self.deferred_keys.clear()
            self.deferred_types.clear()
            self.builds.clear()
            self.deferred_mrns.clear()
            self.deferred_index_episodes.clear()

    def flush_or_refuse(self) -> None:
        """flush, a refusal of the unit naming what the registry refused."""
        kind = next(iter(self.deferred_types), "(file)")
        try:
            self.flush()
        except ValidationError as exc:
            self.refuse(None, kind, f"the registry refuses it: {_messages(exc)}")


# --- mapping, one function per resource type -----------------------------------------------------------------

def patients_with_mrns(clinic_ids: list[int], mrns: list[str]):
    """The patients of these clinics with these medical record numbers, read off the unique index (clinic,
    MRN): by MRN alone the query would read every patient of the registry."""
    return Patient.objects.filter(clinic_id__in=clinic_ids, mrn__in=mrns).order_by()


def _keep_latest(remembered: dict, limit: int) -> None:
    """Forget the oldest entries of a dict beyond limit (it keeps insertion order): what an import remembers stays
    bounded; what it forgot is found in the database again."""
    excess = len(remembered) - limit
    if excess > 0:
        for key in list(itertools.islice(remembered, excess)):
            del remembered[key]


def _person_name(res: dict) -> tuple[str, str]:
    names = [n for n in res.get("name") or [] if isinstance(n, dict)]
    name = next((n for n in names if n.get("use") == "official"), None) or next(
        (n for n in names if n.get("family") and n.get("given")), None) or (names[0] if names else {})
    given = " ".join(str(g) for g in name.get("given") or [])
    return given.strip(), str(name.get("family") or "").strip()


def _mrn(res: dict) -> str:
    identifiers = [i for i in res.get("identifier") or [] if isinstance(i, dict) and i.get("value")]
    for ident in identifiers:
        if _code(ident.get("type"), codes.V2_0203) == "MR" or str(ident.get("system", "")).endswith(":mrn"):
            return str(ident["value"])
    foreign = [i for i in identifiers if not codes.is_orthoreg_system(i.get("system", ""))]
    if foreign:
        return str(foreign[0]["value"])
    return str(res.get("id") or "")


def _clinic_for(unit: Unit, res: dict) -> Clinic:
    """The clinic of a new patient: --clinic, else the one its managingOrganization names, else the only one
    (asked once per import and named clinic: an import creates no clinic)."""
    if unit.ctx.clinic is not None:
        return unit.ctx.clinic
    org = res.get("managingOrganization") or {}
    ident = org.get("identifier") if isinstance(org, dict) else None
    named = ident.get("value") if isinstance(ident, dict) and ident.get("system") == codes.CLINIC_SYSTEM else None
    key = str(named) if named is not None else None
    clinic = unit.ctx.clinics.get(key)
    if clinic is None:
        clinic = unit.ctx.clinics[key] = _find_clinic(unit, ident)
    return clinic


def _find_clinic(unit: Unit, ident: Any) -> Clinic:
    clinics = Clinic.objects.all()
    if unit.ctx.allowed_clinic_ids is not None:
        clinics = clinics.filter(pk__in=unit.ctx.allowed_clinic_ids)
    if isinstance(ident, dict) and ident.get("system") == codes.CLINIC_SYSTEM:
        named = clinics.filter(code=ident.get("value")).first()
        if named is not None:
            return named
    only = list(clinics[:2])
    if len(only) == 1:
        return only[0]
    if not only:
        raise Refused("the registry has no clinic to put this patient in: create one first (orthoreg clinic create)")
    raise Refused("which clinic? This patient names none of the registry's clinics: give --clinic CODE")


def map_patient(unit: Unit, entry: Entry, res: dict) -> tuple[str, Any]:
    given, family = _person_name(res)
    if not given or not family:
        raise Skipped("no given and family name")
    birth = _day(res.get("birthDate"), "birthDate")
    if birth is None:
        raise Skipped("no birthDate (the registry needs one)")
    mrn = _mrn(res)
    if not mrn:
        raise Skipped("no identifier or id to key on (the registry needs a medical record number)")
    if len(mrn) > 64:
        raise Skipped(f"medical record number longer than 64 characters ({mrn[:20]}...)")
    fields: dict[str, Any] = {"given_name": given[:100], "family_name": family[:100], "birth_date": birth,
                              "sex": res.get("gender") if res.get("gender") in Patient.Sex.values else "unknown"}
    phones = [t.get("value") for t in res.get("telecom") or [] if t.get("system") == "phone" and t.get("value")]
    emails = [t.get("value") for t in res.get("telecom") or [] if t.get("system") == "email" and t.get("value")]
    fields["phone"] = str(phones[0])[:40] if phones else ""
    fields["email"] = ""
    for email in emails:
        try:
            validate_email(email)
            fields["email"] = email
            break
        except ValidationError:
            continue
    status, status_date = Patient.Status.ACTIVE, None
    if res.get("deceasedDateTime"):
        status, status_date = Patient.Status.DECEASED, _day(res["deceasedDateTime"], "deceasedDateTime")
    elif res.get("deceasedBoolean") is True:
        raise Skipped("deceased without a date (the registry needs the date of death)")
    elif (withdrawn := _ext(res, codes.EXT_WITHDRAWN)) is not None:
        status, status_date = Patient.Status.WITHDRAWN, _day(_ext_value(withdrawn), "withdrawn date")
    fields.update(status=status, status_date=status_date)
    consent = _ext(res, codes.EXT_CONSENT)
    if consent is not None:
        parts = {e.get("url"): _ext_value(e) for e in consent.get("extension") or []}
        fields.update(consent_registry=True, consent_date=_day(parts.get("date"), "consent date"),
                      consent_version=str(parts.get("version") or "")[:32])
    patient = unit.existing(entry, "Patient", same=lambda found: found.mrn == mrn)
    if patient is None:
        clinic = _clinic_for(unit, res)
        if (clinic.pk, mrn) in unit.deferred_mrns:
            unit.flush()  # the same patient twice in a chunk: the first is stored first
        patient = unit.patient_by_mrn(clinic, mrn)
        if patient is None and unit.bulk:
            return unit.defer_new(entry, "Patient", services.record_build(Patient, clinic=clinic, mrn=mrn, **fields))
        if patient is None:
            created = services.patient_create(clinic=clinic, request=unit.ctx.request, actor=unit.ctx.actor,
                                              mrn=mrn, **fields)
            return "created", created
    if patient.status != Patient.Status.ACTIVE and status == Patient.Status.ACTIVE and consent is None:
        fields.pop("status"), fields.pop("status_date")  # a foreign record that does not know the registry's status
    return "updated", services.patient_update(patient=patient, request=unit.ctx.request, actor=unit.ctx.actor,
                                              **fields)


_ICD_SITE_GROUP = {"foot": None, "knee": BodySite.KNEE, "hip": BodySite.HIP, "lumbar": BodySite.LUMBAR_SPINE}
CLINICAL_TO_STATUS = {"active": Episode.Status.ACTIVE, "recurrence": Episode.Status.ACTIVE,
                      "relapse": Episode.Status.ACTIVE, "resolved": Episode.Status.RESOLVED,
                      "remission": Episode.Status.RESOLVED, "inactive": Episode.Status.CLOSED}


def _site_and_side(concepts: list) -> tuple[str | None, str | None]:
    """The registry's body site and side named by a resource's bodySite: the site from orthoreg's code system; the
    side from the laterality extension (orthoreg's), or from a SNOMED CT laterality qualifier (Right 24028007, Left
    7771000, Right and left 51440002) coded in any of the bodySite concepts, as other systems write it (e.g.
    [hip joint structure], [Right])."""
    site = side = None
    for concept in concepts if isinstance(concepts, list) else []:
        if not isinstance(concept, dict):
            continue
        site = site or _code(concept, codes.CS_BODY_SITE)
        laterality = _ext(concept, codes.EXT_LATERALITY)
        code = _code(_ext_value(laterality), codes.SNOMED) if laterality else None
        side = side or codes.LATERALITY_BY_CODE.get(code) or next(
            (codes.LATERALITY_BY_CODE[c["code"]] for c in _codings(concept)
             if c.get("system") == codes.SNOMED and c.get("code") in codes.LATERALITY_BY_CODE), None)
    return site, side


def map_condition(unit: Unit, entry: Entry, res: dict) -> tuple[str, Any]:
    concept = res.get("code")
    condition = _code(concept, codes.CS_CONDITION)
    icd = [c["code"].upper() for c in _codings(concept) if c.get("system") == codes.ICD10CM and c.get("code")]
    meanings = [coding._ICD10_MEANING.get(code) for code in icd]
    meanings = [m for m in meanings if m]
    site, side = _site_and_side(res.get("bodySite"))
    if condition is None and meanings:
        condition = meanings[0][0]
    if condition is None:
        snomed = _code(concept, codes.SNOMED)
        if snomed in codes.SNOMED_CONDITIONS:
            condition, snomed_site = codes.SNOMED_CONDITIONS[snomed]
            site = site or snomed_site
    if condition is None:
        shown = ", ".join(f"{c.get('code')}" for c in _codings(concept)) or "no code"
        raise Skipped(f"not one of the registry's conditions ({shown})")
    if site is None and meanings:
        group = meanings[0][1]
        site = _ICD_SITE_GROUP.get(group) or (BodySite.FIRST_MTP if condition == "hallux_rigidus" else BodySite.ANKLE)
    if site is None:
        raise Skipped("no body site the registry knows (bodySite)")
    if side is None and meanings:
        sides = {m[2] for m in meanings}
        side = Side.BILATERAL if sides == {"right", "left"} else (sides.pop() if len(sides) == 1 else None)
    if side is None:
        if site in coding.LATERAL_SITES:
            raise Skipped("no side: a condition of a joint needs its laterality (bodySite)")
        side = Side.NOT_APPLICABLE
    patient = unit.resolve(res.get("subject"), "Patient", entry, "subject")
    status = CLINICAL_TO_STATUS.get(_code(res.get("clinicalStatus"), codes.CONDITION_CLINICAL) or "active",
                                    Episode.Status.ACTIVE)
    fields: dict[str, Any] = {"body_site": site, "side": side, "condition": condition, "status": status,
              "onset_date": _day(res.get("onsetDateTime"), "onsetDateTime"),
              "notes": "\n".join(str(n.get("text")) for n in res.get("note") or [] if n.get("text")),
              "icd10_code": coding.join_codes(icd) if not coding.icd10_for(condition, site, side) else ""}
    episode = unit.existing(entry, "Condition", same=lambda found: found.patient_id == patient.pk)
    if episode is None and unit.bulk:
        return unit.defer_new(entry, "Condition", services.record_build(Episode, patient=patient, **fields))
    if episode is None:
        return "created", services.episode_create(patient=patient, request=unit.ctx.request, actor=unit.ctx.actor,
                                                  **fields)
    if episode.patient_id != patient.pk:
        raise Refused(f"this Condition is already recorded for another patient (episode {episode.pk})", "subject")
    return "updated", services.episode_update(episode=episode, request=unit.ctx.request, actor=unit.ctx.actor,
                                              **fields)


def _typed(name: str, value: Any) -> Any:
    field_: Any = Procedure._meta.get_field(name)
    if value is None:
        return None
    internal = field_.get_internal_type()
    try:
        if internal == "DecimalField":
            return Decimal(str(value))
        if internal in ("PositiveSmallIntegerField", "PositiveIntegerField", "SmallIntegerField"):
            return int(value)
        if internal == "FloatField":
            return float(value)
    except (InvalidOperation, ValueError, TypeError):
        raise Refused(f"{name}: {value!r} is not a number", f"extension {name}") from None
    return value


def map_procedure(unit: Unit, entry: Entry, res: dict) -> tuple[str, Any]:
    concept = res.get("code")
    kind = _code(concept, codes.CS_PROCEDURE_KIND)
    cpt = next((c["code"] for c in _codings(concept) if c.get("system") in (codes.CPT, codes.HCPCS)
                and c.get("code") in coding.CPT_LABELS), "")
    kind = kind or codes.CPT_KIND.get(cpt)
    if kind is None:
        shown = ", ".join(f"{c.get('code')}" for c in _codings(concept)) or "no code"
        raise Skipped(f"not one of the registry's procedures ({shown})")
    if res.get("status") not in ("completed", None):
        raise Skipped(f"status {res.get('status')!r}: only completed procedures are recorded")
    day = _day(res.get("performedDateTime") or (res.get("performedPeriod") or {}).get("start"), "performed")
    if day is None:
        raise Skipped("no performed date")
    patient = unit.resolve(res.get("subject"), "Patient", entry, "subject")
    reasons = [r for r in res.get("reasonReference") or [] if isinstance(r, dict)]
    if not reasons:
        raise Skipped("no reasonReference to the registry Condition it treats (its episode)")
    episode = unit.resolve(reasons[0], "Condition", entry, "reasonReference[0]")
    if episode.patient_id != patient.pk:
        raise Refused("reasonReference is a condition of another patient than subject", "reasonReference[0]")
    fields: dict[str, Any] = {"date": day, "kind": kind, "cpt_code": cpt}
    target = _ext(res, codes.EXT_TARGET)
    if target is not None:
        fields["target_structure"] = (_ext_value(target) or {}).get("code") or "joint"
        detail = next((e for e in target.get("extension") or [] if e.get("url") == "detail"), None)
        fields["target_detail"] = str(_ext_value(detail) or "")
    guidance = _ext_value(_ext(res, codes.EXT_GUIDANCE))
    if guidance:
        fields["image_guidance"] = guidance
    performers = [p.get("actor", {}).get("display") for p in res.get("performer") or [] if isinstance(p, dict)]
    fields["performer_name"] = str(next((p for p in performers if p), ""))[:120]
    fields["notes"] = "\n".join(str(n.get("text")) for n in res.get("note") or [] if n.get("text"))
    detail_ext = _ext(res, codes.EXT_ORTHOBIOLOGIC)
    for part in (detail_ext or {}).get("extension") or []:
        name = part.get("url")
        if name not in ORTHOBIOLOGIC_FIELDS:
            raise Refused(f"unknown orthobiologic detail {name!r}", "extension orthobiologic")
        fields[name] = _typed(name, _ext_value(part))
    existing = unit.existing(entry, "Procedure", same=lambda found: found.episode_id == episode.pk)
    index = _ext_value(_ext(res, codes.EXT_INDEX))
    pending_index = unit.deferred_index(episode)
    if index is None:  # a foreign procedure: the first one of an episode without an index procedure anchors it
        index = existing.is_index if existing is not None else not (
            pending_index or episode.procedures.filter(is_index=True).exists())
    fields["is_index"] = bool(index)
    if existing is not None and existing.episode_id != episode.pk:
        raise Refused(f"this Procedure is already recorded for another episode ({existing.episode_id})",
                      "reasonReference")
    if index and pending_index:
        unit.flush()  # two index procedures of one episode: the registry refuses the second, once the first is in
    if existing is None and unit.bulk:
        return unit.defer_new(entry, "Procedure", services.procedure_build(episode=episode, **fields))
    procedure = services.procedure_record(episode=episode, instance=existing, request=unit.ctx.request,
                                          actor=unit.ctx.actor, **fields)
    return ("updated" if existing is not None else "created"), procedure


def _instrument_for(unit: Unit, canonical: str) -> str | None:
    """The installed instrument a Questionnaire canonical names (looked up once per unit and canonical: an
    instrument installed by this unit is found, as the cache starts empty with each unit)."""
    if canonical not in unit.instruments:
        unit.instruments[canonical] = _find_instrument(canonical)
    return unit.instruments[canonical]


def _find_instrument(canonical: str) -> str | None:
    url = (canonical or "").split("|")[0]
    for definition in definitions.all_definitions():
        if definition.resource.get("url") == url:
            return definition.code
    tail = url.rstrip("/").split("/")[-1].lower() if url else ""
    if tail and tail in definitions.available_codes():
        return tail
    return None


def _flat_answers(items: list) -> dict[str, list]:
    out: dict[str, list] = {}
    for item in items or []:
        if not isinstance(item, dict):
            continue
        out[str(item.get("linkId"))] = item.get("answer") or []
        out.update(_flat_answers(item.get("item") or []))
        for answer in item.get("answer") or []:
            out.update(_flat_answers(answer.get("item") or []))
    return out


def _answer_value(item, answer: dict, where: str) -> Any:
    if "valueCoding" in answer:
        c = answer["valueCoding"]
        option = next((o for o in item.options if o.code == c.get("code")), None)
        if option is None:
            ordinal = _ext_value(next((e for e in c.get("extension") or []
                                       if e.get("url") in (codes.EXT_ORDINAL, codes.EXT_ITEM_WEIGHT)), None))
            option = next((o for o in item.options if ordinal is not None and o.value == float(ordinal)), None)
        if option is None:
            raise Refused(f"answer {c.get('code')!r} is not an option of item {item.link_id}", where)
        return option.value
    for key in ("valueInteger", "valueDecimal"):
        if key in answer:
            return answer[key]
    raise Refused(f"item {item.link_id}: only coded and numeric answers are scored", where)


def _record_response(unit: Unit, entry: Entry, resource_type: str, *, patient, episode, instrument: str, answers,
                     time_point: str, completed_at) -> tuple[str, Any]:
    existing = unit.existing(entry, resource_type, same=lambda found: found.patient_id == patient.pk)
    if existing is not None:
        if existing.patient_id != patient.pk:
            raise Refused(f"this response is already recorded for another patient (response {existing.pk})")
        recorded = list(existing.answers or [])
        same = existing.instrument == instrument and len(recorded) == len(answers) and all(
            a == b or (a is not None and b is not None and float(a) == float(b)) for a, b in zip(recorded, answers))
        if not same:
            raise Skipped("already recorded with other answers (a recorded response is never rewritten)")
        return "updated", existing
    user = unit.ctx.actor if getattr(unit.ctx.actor, "is_authenticated", False) else None
    if unit.bulk:  # validated and scored now, stored with the others of its chunk (Unit.flush)
        response = response_build(patient=patient, episode=episode, instrument=instrument, answers=answers,
                                  time_point=time_point, completed_at=completed_at, source=Response.Source.IMPORT,
                                  entered_by=user)
        unit.defer(entry, resource_type, response)
        return "created", response
    response = response_record(patient=patient, episode=episode, instrument=instrument, answers=answers,
                               time_point=time_point, completed_at=completed_at, source=Response.Source.IMPORT,
                               entered_by=user, request=unit.ctx.request)
    return "created", response


def map_questionnaire_response(unit: Unit, entry: Entry, res: dict) -> tuple[str, Any]:
    if res.get("status") not in ("completed", "amended"):
        raise Skipped(f"status {res.get('status')!r}: only completed responses are recorded")
    instrument = _instrument_for(unit, res.get("questionnaire") or "")
    if instrument is None:
        raise Skipped(f"questionnaire {res.get('questionnaire')!r} is not installed (import its Questionnaire first)")
    definition = definitions.get_definition(instrument)
    if not res.get("subject"):
        raise Skipped("no subject")
    patient = unit.resolve(res.get("subject"), "Patient", entry, "subject")
    episode_ref = _ext_value(_ext(res, codes.EXT_EPISODE))
    episode = unit.resolve(episode_ref, "Condition", entry, "extension episode") if episode_ref else None
    given = _flat_answers(res.get("item") or [])
    answers = []
    for item in definition.items:
        values = given.get(item.link_id) or []
        answers.append(_answer_value(item, values[0], f"item {item.link_id}") if values else None)
    completed_at = _instant(res.get("authored"))
    if completed_at is None:
        raise Skipped("no authored date")
    return _record_response(unit, entry, "QuestionnaireResponse", patient=patient, episode=episode,
                            instrument=instrument, answers=answers,
                            time_point=str(_ext_value(_ext(res, codes.EXT_TIME_POINT)) or ""),
                            completed_at=completed_at)


def map_observation(unit: Unit, entry: Entry, res: dict) -> tuple[str, Any]:
    concept = res.get("code")
    if _code(concept, codes.CS_SCORE) or any("QuestionnaireResponse" in r for r in _walk_references(
            res.get("derivedFrom") or [])):
        raise Skipped("a questionnaire score: computed again from its QuestionnaireResponse")
    if _code(concept, codes.CS_MEASUREMENT):
        raise Skipped("a joint space measurement: it belongs to its radiograph, whose pixel data FHIR does not carry "
                      "(the ImagingStudy itself is imported)")
    loinc = _code(concept, codes.LOINC)
    key = codes.LOINC_TO_SCORE.get(loinc or "")
    if key is None:
        shown = ", ".join(f"{c.get('code')}" for c in _codings(concept)) or "no code"
        raise Skipped(f"not a registry score ({shown})")
    if res.get("status") not in ("final", "amended", "corrected"):
        raise Skipped(f"status {res.get('status')!r}: only final results are recorded")
    value = res.get("valueInteger")
    if value is None:
        value = (res.get("valueQuantity") or {}).get("value")
    if value is None:
        raise Skipped("no value")
    patient = unit.resolve(res.get("subject"), "Patient", entry, "subject")
    focus = [f for f in res.get("focus") or [] if "Condition" in str(f.get("reference", ""))]
    episode = unit.resolve(focus[0], "Condition", entry, "focus[0]") if focus else None
    when = _instant(res.get("effectiveDateTime") or res.get("issued"))
    if when is None:
        raise Skipped("no effectiveDateTime")
    value = int(value) if float(value).is_integer() else value
    return _record_response(unit, entry, "Observation", patient=patient, episode=episode, instrument=key[0],
                            answers=[value], time_point="", completed_at=when)


def map_imaging_study(unit: Unit, entry: Entry, res: dict) -> tuple[str, Any]:
    """The study's metadata (date, description, episode); its series are images, whose pixel data FHIR does not
    carry: they are not imported (noted in the summary)."""
    if res.get("status") in ("cancelled", "entered-in-error"):
        raise Skipped(f"status {res.get('status')!r}")
    day = _day(res.get("started"), "started")
    if day is None:
        raise Skipped("no started date")
    reasons = [r for r in res.get("reasonReference") or [] if isinstance(r, dict)]
    if not reasons:
        raise Skipped("no reasonReference to the registry Condition (episode) the radiographs are of")
    patient = unit.resolve(res.get("subject"), "Patient", entry, "subject")
    episode = unit.resolve(reasons[0], "Condition", entry, "reasonReference[0]")
    if episode.patient_id != patient.pk:
        raise Refused("reasonReference is a condition of another patient than subject", "reasonReference[0]")
    existing = unit.existing(entry, "ImagingStudy", same=lambda found: found.episode_id == episode.pk)
    if existing is not None and existing.episode_id != episode.pk:
        raise Refused(f"this ImagingStudy is already recorded for another episode ({existing.episode_id})",
                      "reasonReference")
    # (imported here: the imaging services load pydicom and scipy, seconds of every import's start-up)
    from orthoreg.imaging.services import imaging_study_record

    study = imaging_study_record(episode=episode, date=day, description=str(res.get("description") or ""),
                                 user=unit.ctx.actor, request=unit.ctx.request, instance=existing)
    if res.get("series"):
        note = "series (the radiographs) are not imported: FHIR carries no pixel data"
        warnings = unit.tally("ImagingStudy").warnings
        if note not in warnings:
            warnings.append(note)
    return ("updated" if existing is not None else "created"), study


SEVERITY = {"mild": AdverseEvent.Severity.MILD, "moderate": AdverseEvent.Severity.MODERATE,
            "severe": AdverseEvent.Severity.SEVERE}


def map_adverse_event(unit: Unit, entry: Entry, res: dict) -> tuple[str, Any]:
    if res.get("actuality") == "potential":
        raise Skipped("a potential adverse event (only actual ones are recorded)")
    suspects = [s.get("instance") for s in res.get("suspectEntity") or []
                if isinstance(s, dict) and "Procedure" in str((s.get("instance") or {}).get("reference", ""))]
    if not suspects:
        raise Skipped("no suspect Procedure (the registry records adverse events of procedures)")
    procedure = unit.resolve(suspects[0], "Procedure", entry, "suspectEntity[0].instance")
    day = _day(res.get("date"), "date")
    if day is None:
        raise Skipped("no date")
    severity = SEVERITY.get(_code(res.get("severity"), codes.AE_SEVERITY) or "")
    if severity is None:
        raise Skipped("no severity (mild, moderate or severe)")
    event = res.get("event") or {}
    description = event.get("text") or next((c.get("display") for c in _codings(event) if c.get("display")), "")
    fields: dict[str, Any] = {"date": day, "severity": severity,
              "serious": _code(res.get("seriousness"), codes.AE_SERIOUSNESS) == "serious",
              "description": description or "Adverse event (no description given)",
              "resolved_date": _day(_ext_value(_ext(res, codes.EXT_RESOLVED)), "resolved date")}
    existing = unit.existing(entry, "AdverseEvent", same=lambda found: found.procedure_id == procedure.pk)
    if existing is None and unit.bulk:
        return unit.defer_new(entry, "AdverseEvent", services.record_build(AdverseEvent, procedure=procedure,
                                                                            **fields))
    ae = services.adverse_event_record(procedure=procedure, instance=existing, request=unit.ctx.request,
                                       actor=unit.ctx.actor, **fields)
    return ("updated" if existing is not None else "created"), ae


# --- standard Questionnaires as instruments ---------------------------------------------------------------------

def _ordinal(obj: dict) -> float | None:
    for ext in obj.get("extension") or []:
        if ext.get("url") in (codes.EXT_ORDINAL, codes.EXT_ITEM_WEIGHT):
            value = _ext_value(ext)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
    return None


def _options_of(item: dict, res: dict) -> list[tuple[dict, float | None]]:
    """(coding, ordinal) of a choice item, from answerOption or its (contained) answerValueSet."""
    out = []
    for option in item.get("answerOption") or []:
        c = option.get("valueCoding")
        if isinstance(c, dict):
            out.append((c, _ordinal(option) if _ordinal(option) is not None else _ordinal(c)))
    value_set = item.get("answerValueSet")
    if not out and isinstance(value_set, str) and value_set.startswith("#"):
        vs = next((c for c in res.get("contained") or [] if c.get("id") == value_set[1:]), None)
        if vs is None:
            raise Refused(f"item {item.get('linkId')}: answerValueSet {value_set} is not contained", "item")
        for include in (vs.get("compose") or {}).get("include") or []:
            for concept in include.get("concept") or []:
                out.append(({"system": include.get("system"), "code": concept.get("code"),
                             "display": concept.get("display")}, _ordinal(concept)))
        for contains in (vs.get("expansion") or {}).get("contains") or []:
            out.append(({"system": contains.get("system"), "code": contains.get("code"),
                         "display": contains.get("display")}, _ordinal(contains)))
    return out


def questionnaire_as_definition(res: dict) -> tuple[dict, list[str]]:
    """A standard FHIR Questionnaire as an orthoreg definition: every choice item scored by its options'
    ordinalValue (or itemWeight), one 'total' subscale = the sum. Returns (definition, notes for the reviewer)."""
    notes: list[str] = []
    code = re.sub(r"[^a-z0-9-]+", "-", str(res.get("id") or res.get("name") or "").lower()).strip("-")[:40]
    if not code:
        raise Skipped("no id or name to use as the instrument code")
    items = []
    for n, raw in enumerate(flat_items(res.get("item")), start=1):
        link_id = str(raw.get("linkId") or n)
        text = str(raw.get("text") or "").strip() or next(
            (c.get("display") for c in raw.get("code") or [] if c.get("display")), "") or next(
            (f"{c.get('code')}" for c in raw.get("code") or [] if c.get("code")), "") or link_id
        if raw.get("type") != "choice":
            raise Skipped(f"item {link_id} is of type {raw.get('type')!r}: only choice items with ordinal values "
                          "are scored from a standard Questionnaire")
        options = _options_of(raw, res)
        if not options:
            raise Skipped(f"item {link_id} has no answer options")
        if any(value is None for _, value in options):
            notes.append(f"item {link_id}: no ordinalValue/itemWeight on its options; scored 1..{len(options)} in "
                         "the order listed: check at review")
            options = [(c, float(k)) for k, (c, _) in enumerate(options, start=1)]
        item = {"linkId": link_id, "text": text, "type": "choice", "required": bool(raw.get("required", False)),
                "extension": [{"url": EXT_SUBSCALE, "valueCode": "total"}],
                "answerOption": [{"valueCoding": {k: v for k, v in c.items() if v is not None},
                                  "extension": [{"url": EXT_ORDINAL, "valueDecimal": value}]}
                                 for c, value in options]}
        items.append((item, min(v for _, v in options), max(v for _, v in options)))
    if not items:
        raise Skipped("no items to score")
    notes.append("which way is better is not stated in a standard Questionnaire: 'higher' assumed; check at review")
    title = str(res.get("title") or res.get("name") or code)
    definition = {
        "resourceType": "Questionnaire", "id": code, "url": res.get("url") or f"urn:orthoreg:instrument:{code}",
        "version": str(res.get("version") or "1")[:16], "title": title, "status": "draft",
        "description": str(res.get("description") or f"Imported from FHIR Questionnaire {res.get('url') or code}."),
        "extension": [
            {"url": EXT_INSTRUMENT, "extension": [
                {"url": "shortTitle", "valueString": title[:60]},
                {"url": "scoringSource", "valueString": "Imported FHIR Questionnaire: total = sum of the items' "
                                                        "ordinal values"},
                {"url": "licence", "extension": [{"url": "name", "valueString": str(res.get("copyright")
                                                                                    or "as published")[:200]}]}]},
            {"url": EXT_SUBSCALE, "extension": [
                {"url": "code", "valueString": "total"}, {"url": "title", "valueString": "Total"},
                {"url": "method", "valueCode": "sum"}, {"url": "minAnsweredPercent", "valueInteger": 100},
                {"url": "minimum", "valueDecimal": sum(lo for _, lo, _ in items)},
                {"url": "maximum", "valueDecimal": sum(hi for _, _, hi in items)},
                {"url": "betterWhen", "valueCode": "higher"}, {"url": "primary", "valueBoolean": True}]}],
        "item": [item for item, _, _ in items],
    }
    return definition, notes


def map_questionnaire(unit: Unit, entry: Entry, res: dict) -> tuple[str, Any]:
    if not unit.ctx.may_install_instruments:
        raise Skipped("only an admin installs instruments (or use orthoreg import fhir)")
    code = str(res.get("id") or "")
    if code in definitions.shipped_codes():
        if _ext(res, EXT_INSTRUMENT) is not None:
            raise Skipped("a shipped instrument (already installed)")
    if _ext(res, EXT_INSTRUMENT) is not None or _ext(res, EXT_SUBSCALE) is not None:
        resource, notes = dict(res), list[str]()
    else:
        resource, notes = questionnaire_as_definition(res)
        code = resource["id"]
    path = definitions.site_dir() / f"{code}.json"
    try:
        current = definitions.get_definition(code)
    except (UnknownInstrument, DefinitionError):
        current = None
    if current is not None and current.origin == "shipped":
        raise Skipped(f"a shipped instrument has the code {code!r}")
    if current is not None:
        installed = {k: v for k, v in current.resource.items() if k not in ("status", "extension")}
        incoming = {k: v for k, v in resource.items() if k not in ("status", "extension")}
        if installed == incoming:
            return "updated", current
    previous = path.read_bytes() if path.exists() else None
    try:
        definition = instrument_install(resource=resource, replace=current is not None)
    except DefinitionError as exc:
        raise Refused(f"cannot be installed as an instrument: {'; '.join(exc.errors)}") from None
    unit.installed.append((path, previous))
    summary = unit.tally("Questionnaire")
    summary.warnings.extend(f"{code}: {note}" for note in notes)
    summary.warnings.append(f"{code} installed as a draft: review it before it is sent to patients "
                            f"(orthoreg instruments review {code} --by USER)")
    return ("updated" if current is not None else "created"), definition


MAPPERS = {"Patient": map_patient, "Condition": map_condition, "Procedure": map_procedure,
           "QuestionnaireResponse": map_questionnaire_response, "Observation": map_observation,
           "AdverseEvent": map_adverse_event, "Questionnaire": map_questionnaire, "ImagingStudy": map_imaging_study}


# --- driving a unit -----------------------------------------------------------------------------------------------

def resource_verdict(res: dict, expected_type: str | None, validator: Validator) -> Verdict:
    """Whether one resource may be imported as FHIR R4: None when it validates against its R4B model, else
    (resource type, message, where) of its refusal. A pure function of the resource (the same verdict in this
    process or in the one validating ahead, `ahead.py`)."""
    resource_type = res.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        return "(unknown)", "no resourceType", "resourceType"
    try:
        model = get_fhir_model_class(resource_type)
    except (ValueError, KeyError, AttributeError):
        return resource_type, f"unknown resourceType {resource_type!r}: not a FHIR R4 resource", "resourceType"
    if expected_type and resource_type != expected_type:
        return resource_type, f"wrong resourceType {resource_type!r} in a file of {expected_type} resources", \
            "resourceType"
    try:
        if not validator.passes(res, model):  # each distinct element validated once per import
            model.model_validate(res)  # the whole resource: the verdict and the message with its path
    except PydanticValidationError as exc:
        return resource_type, _pydantic_message(exc), ""
    except (ValueError, TypeError) as exc:
        return resource_type, str(exc), ""
    return None


def _check(unit: Unit, entry: Entry, expected_type: str | None) -> str | None:
    """Validate one entry's resource; returns its type, or None when refused/skipped here."""
    res = entry.resource
    if res is None:
        what = entry.request_url.split("?")[0].split("/")[0] or "(no resource)"
        unit.tally(what).skipped += 1
        unit.tally(what).skipped_reasons[f"{entry.method or 'an entry'} without a resource: not carried out "
                                         "(an import never deletes or reads)"] += 1
        return None
    ahead = unit.ctx.ahead
    if ahead is not None and entry.line:
        verdict = ahead.result(unit.name, entry.line, res)
    else:
        verdict = resource_verdict(res, expected_type, unit.ctx.validator)
    if verdict is not None:
        unit.refuse(entry, *verdict)
        return None
    return res["resourceType"]


def _map(unit: Unit, entry: Entry, resource_type: str) -> None:
    mapper = MAPPERS.get(resource_type)
    tally = unit.tally(resource_type)
    if mapper is None:
        tally.skipped += 1
        tally.skipped_reasons[f"{resource_type} is not imported (the registry has no place for it)"] += 1
        unit.outcome[id(entry)] = ("skipped", f"{resource_type} is not imported")
        return
    # A savepoint per entry, so that an entry skipped or refused leaves nothing behind; but a streamed unit is
    # all or nothing (any refusal rolls the whole file back), its mappers skip before they write and its services
    # roll back their own writes on error: there it is left out (two statements of every line's three or four).
    try:
        with nullcontext() if unit.bulk else transaction.atomic():
            state, obj = mapper(unit, entry, entry.resource)
            if resource_type in MODEL_OF and obj.pk is not None:  # (a deferred one is linked when stored)
                unit.link(entry, resource_type, obj)
    except Skipped as exc:
        tally.skipped += 1
        tally.skipped_reasons[str(exc)] += 1
        unit.outcome[id(entry)] = ("skipped", str(exc))
        return
    except Refused as exc:
        unit.refuse(entry, resource_type, exc.message)
        return
    except ValidationError as exc:
        unit.refuse(entry, resource_type, f"the registry refuses it: {_messages(exc)}")
        return
    except (ValueError, TypeError) as exc:
        unit.refuse(entry, resource_type, f"cannot be read: {exc}")
        return
    unit.outcome[id(entry)] = ("ok", obj)
    unit.states[id(entry)] = state
    if state == "created":
        tally.created += 1
    else:
        tally.updated += 1


def _undo_installs(installed: list[tuple[Path, bytes | None]]) -> None:
    for path, previous in reversed(installed):
        if previous is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(previous)
    if installed:
        definitions.clear_caches()
    installed.clear()


def _entry_results(unit: Unit, entries: list[Entry]) -> list[dict]:
    """A batch's answer per entry, in the Bundle's order (FHIR's batch-response): created, updated, skipped (with
    the reason) or refused (with the message)."""
    results = []
    for entry in entries:
        state, value = unit.outcome.get(id(entry), ("skipped", "no resource: not carried out"))
        if state == "ok":
            state, value = unit.states.get(id(entry), "updated"), ""
        results.append({"location": entry.location, "status": state, "message": str(value or "")})
    return results


def _finish(unit: Unit, summary: Summary, status_ok: str, entries: list[Entry] | None = None) -> None:
    written = sum(s.created + s.updated for s in unit.pending.values())
    if unit.errors or (unit.entry_errors and not written):
        status = "refused"
    elif unit.entry_errors:
        status = "partly imported" if status_ok == "imported" else "partly refused (dry run)"
    else:
        status = status_ok
    for name, pending in unit.pending.items():
        target = summary.of(name)
        target.errors.extend(pending.errors)
        target.skipped += pending.skipped
        target.skipped_reasons.update(pending.skipped_reasons)
        target.warnings.extend(pending.warnings)
        if status != "refused":  # imported (a batch: its entries that were not refused), or what a dry run would do
            target.created += pending.created
            target.updated += pending.updated
    record: dict[str, Any] = {"unit": unit.name, "status": status, "resources": unit.count}
    if not unit.atomic and entries is not None:
        record["entries"] = _entry_results(unit, entries) if status != "refused" or not unit.errors else []
    summary.units.append(record)


STREAM_CHUNK = 500  # ndjson lines validated, looked up and stored together ...
STREAM_CHUNK_BYTES = 512 * 1024  # ... at most this much of the file (memory stays bounded)


def _chunks(items: Iterable[Entry], size: int) -> Iterator[list[Entry]]:
    chunk: list[Entry] = []
    held = 0
    for item in items:
        chunk.append(item)
        held += item.size
        if len(chunk) >= size or held >= STREAM_CHUNK_BYTES:
            yield chunk
            chunk, held = [], 0
    if chunk:
        yield chunk


def import_entries(name: str, entries: Iterable[Entry], *, ctx: Context, summary: Summary, streamed: bool,
                   expected_type: str | None = None, atomic: bool = True) -> None:
    """Import one unit, all or nothing (atomic=False, a batch Bundle: each entry on its own, in its own
    savepoint; a refused entry is named and the others are written). A streamed unit (ndjson) is mapped line by
    line as it is read; a Bundle is checked whole first (references, fullUrls), then mapped in dependency order.
    A dry run's units are kept until the end of the run (so later files see earlier ones) and then rolled back
    by `run_scope`."""
    unit = Unit(name, ctx, summary, atomic=atomic)
    listed: list[Entry] = []
    try:
        with transaction.atomic():
            try:
                if streamed:
                    unit.bulk = True
                    for chunk in _chunks(entries, STREAM_CHUNK):
                        checked = []
                        for entry in chunk:
                            unit.count += 1
                            resource_type = _check(unit, entry, expected_type)
                            if resource_type is not None:
                                checked.append((entry, resource_type))
                        unit.prefetch(checked)
                        for entry, resource_type in checked:
                            if unit.deferred_keys.intersection((resource_type, k) for k in unit.keys_of(entry)) \
                                    or unit.deferred_types - {resource_type}:
                                # The same record twice in a chunk, or one of another type (it may refer to the
                                # deferred ones): what is deferred is stored first.
                                unit.flush_or_refuse()
                            unit.index(entry)
                            _map(unit, entry, resource_type)
                            unit.outcome.pop(id(entry), None)  # a later line refers by key, not by entry
                            unit.states.pop(id(entry), None)
                            unit.by_url.clear()
                            unit.by_type_id.clear()
                        if not unit.errors:
                            unit.flush_or_refuse()
                else:
                    checked = []
                    for entry in entries:
                        listed.append(entry)
                        unit.count += 1
                        resource_type = _check(unit, entry, expected_type)
                        if resource_type is not None:
                            unit.index(entry)
                            checked.append((entry, resource_type))
                    for entry, _ in checked:
                        for ref in _walk_references(entry.resource):
                            if ref.startswith("urn:uuid:") and ref not in unit.by_url:
                                unit.refuse(entry, entry.resource["resourceType"],
                                            f"refers to {ref}, which is not in this Bundle", "reference")
                    checked.sort(key=lambda pair: MAP_ORDER.get(pair[1], len(MAP_ORDER)))
                    for entry, resource_type in checked:
                        if unit.outcome.get(id(entry), ("", ""))[0] != "refused":
                            _map(unit, entry, resource_type)
            except UnitError as exc:
                unit.refuse(None, "(file)", exc.message, "")
                unit.pending["(file)"].errors[-1]["location"] = exc.location
            if unit.errors:
                transaction.set_rollback(True)
    except BaseException:
        unit.errors += 1
        raise
    finally:
        if unit.errors:
            _undo_installs(unit.installed)
            ctx.objects.clear()  # records of a rolled-back unit may be among them
        else:
            ctx.links.update(unit.new_links)
            _keep_latest(ctx.links, LINK_CACHE)
            ctx.installed.extend(unit.installed)
    _finish(unit, summary, "dry run" if ctx.dry_run else "imported", listed)


@contextmanager
def run_scope(ctx: Context):
    """One import run: a dry run is one transaction rolled back at the end (instrument files removed again)."""
    if not ctx.dry_run:
        yield
        return
    try:
        with transaction.atomic():
            yield
            transaction.set_rollback(True)
    finally:
        _undo_installs(ctx.installed)
        ctx.objects.clear()
        ctx.links.clear()


def import_document(name: str, data: bytes | Any, *, ctx: Context, summary: Summary) -> None:
    """One JSON document (bytes, or already parsed) as one unit."""
    try:
        document = _loads(_decode(bytes(data), name), name) if isinstance(data, (bytes, bytearray)) else data
        entries = bundle_entries(document, name)
    except UnitError as exc:
        summary.refuse(exc.location, exc.message, unit=name)
        return
    batch = isinstance(document, dict) and document.get("resourceType") == "Bundle" and document.get("type") == "batch"
    import_entries(name, entries, ctx=ctx, summary=summary, streamed=False, atomic=not batch)


def import_paths(paths: Iterable[str], *, clinic: Clinic | None = None, dry_run: bool = False, actor=None,
                 request=None, ahead_min_bytes: int | None = None) -> Summary:
    summary = Summary(dry_run=dry_run)
    ctx = Context(clinic=clinic, actor=actor, request=request, dry_run=dry_run, ahead_min_bytes=ahead_min_bytes)
    files: list[Path] = []
    for raw in paths:
        found = expand_paths([raw])
        if not found:  # (a folder without FHIR files: a file is listed whether or not it is there)
            summary.refuse(str(Path(raw)), "a folder without FHIR files (.ndjson or .json): nothing to import")
        files.extend(found)
    with run_scope(ctx), _validated_ahead(ctx, files):
        for path in files:
            _import_path(path, ctx, summary)
    return summary


def _expected_type(path: Path) -> str | None:
    """The resource type an ndjson file's name promises (Patient.ndjson, Patient.000.ndjson), if it is one."""
    stem = path.name.split(".")[0]
    return stem if stem in RESOURCE_ORDER or stem in MAPPERS else None


@contextmanager
def _validated_ahead(ctx: Context, files: list[Path]):
    """While the run lasts, its ndjson files validated in a second process ahead of it (ahead.py), when they are
    large enough for it to pay and there is a core for it."""
    ndjson = [p for p in files if p.suffix == ".ndjson" and p.is_file()]
    if ctx.ahead_min_bytes is None or not ndjson or sum(p.stat().st_size for p in ndjson) < ctx.ahead_min_bytes \
            or not ahead_process.usable():
        yield
        return
    expected = {str(p): _expected_type(p) for p in ndjson}
    validator = ctx.validator

    def work(name: str) -> Iterator[tuple[int, Verdict]]:
        try:
            for entry in ndjson_entries(Path(name)):
                yield entry.line, resource_verdict(entry.resource, expected[name], validator)  # type: ignore[arg-type]
        except UnitError:  # the import stops at the same line, and says why
            return

    def fallback(name: str, line: int, res: dict) -> Verdict:
        return resource_verdict(res, expected.get(name), validator)

    try:
        ctx.ahead = ahead_process.Ahead(list(expected), work, fallback)
    except OSError:  # (no process to be had: too many, no memory) the import validates every line itself
        yield
        return
    try:
        yield
    finally:
        ctx.ahead.close()
        ctx.ahead = None


def _import_path(path: Path, ctx: Context, summary: Summary) -> None:
    name = str(path)
    if not path.is_file():
        summary.refuse(name, "no such file or directory")
        return
    if path.suffix == ".ndjson":
        import_entries(name, ndjson_entries(path), ctx=ctx, summary=summary, streamed=True,
                       expected_type=_expected_type(path))
    else:
        import_document(name, path.read_bytes(), ctx=ctx, summary=summary)
