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

* shipped: ``data/<code>.json`` in this package (our own wording whole; licensed instruments as
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
import os
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings

from .fhir import apply_pack, check_pack, parse_definition
from .types import CODE_RE, Definition, DefinitionError

log = logging.getLogger(__name__)

SHIPPED_DIR = Path(__file__).resolve().parent / "data"
# The order instruments are listed in; site definitions follow, by code.
SHIPPED_ORDER = ("nprs", "sane", "global-improvement", "satisfaction", "faam-adl", "faam-sports", "lefs", "faos",
                 "moxfq", "koos")

class UnknownInstrument(LookupError):
    def __init__(self, code: str):
        self.code = code
        known = ", ".join(sorted(available_codes()))
        super().__init__(f"Unknown instrument {code!r}. Known instruments: {known}.")


# --- where definitions live -------------------------------------------------------------------------------

PACKS_FOLDER = "instrument-packs"  # in the data directory
SITE_FOLDER = "instruments"


def packs_dir() -> Path:
    return Path(settings.DATA_DIR) / PACKS_FOLDER


def site_dir() -> Path:
    return Path(settings.DATA_DIR) / SITE_FOLDER


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
    return list(_shipped_codes())


@lru_cache(maxsize=1)
def _shipped_codes() -> tuple[str, ...]:
    """The shipped definitions, listed once per process: they are package data, which changes only with an
    upgrade (a restart)."""
    on_disk = {p.stem for p in SHIPPED_DIR.glob("*.json")}
    return tuple([c for c in SHIPPED_ORDER if c in on_disk] + sorted(on_disk - set(SHIPPED_ORDER)))


def site_codes() -> list[str]:
    try:
        names = os.listdir(site_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    shipped = _shipped_set()
    return sorted(n[:-5] for n in names if n.endswith(".json") and CODE_RE.match(n[:-5]) and n[:-5] not in shipped)


def available_codes() -> list[str]:
    return shipped_codes() + site_codes()


def _stat_key(path: str) -> tuple[str, int, int] | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return path, st.st_mtime_ns, st.st_size


def get_definition(code: str) -> Definition:
    """The definition of an instrument, with its installed pack's text (an invalid pack is ignored, see
    Definition.pack_error). Raises UnknownInstrument, or DefinitionError for a broken site definition.

    Pages call this for every questionnaire they show, so it costs one stat of the file that can change (the
    pack, or the site definition) and a cache look-up: a file edited by hand is read again at the next call."""
    if not isinstance(code, str) or not CODE_RE.match(code):
        raise UnknownInstrument(str(code))
    data_dir = os.fspath(settings.DATA_DIR)
    if code in _shipped_set():
        key = _stat_key(os.path.join(data_dir, PACKS_FOLDER, f"{code}.json"))
        return _with_pack(code, *key) if key else _shipped(code)
    key = _stat_key(os.path.join(data_dir, SITE_FOLDER, f"{code}.json"))
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
    return frozenset(_shipped_codes())


def clear_caches() -> None:
    for fn in (_read_json, _shipped, _site, _with_pack, _shipped_set, _shipped_codes):
        fn.cache_clear()
