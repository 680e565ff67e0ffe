"""Writes of the instruments app: recording responses and installing instrument packs / site definitions."""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from orthoreg import bulkinsert, events
from orthoreg.accounts.models import AuditEvent
from orthoreg.accounts.services import audit_record, audit_record_bulk
from orthoreg.registry import rules
from orthoreg.registry.rules import TIME_POINT_RE

from . import definitions
from .definitions import UnknownInstrument
from .fhir import check_pack, parse_definition
from .models import Response
from .scoring import score_definition
from .types import EXT, Definition, DefinitionError, format_number

TIME_POINTS = rules.time_point_choices()  # the form's choices: the standard time points, labelled
time_point_label = rules.time_point_label  # (registry.rules: one home)
CLOCK_SKEW = dt.timedelta(minutes=5)
SOURCES = frozenset(Response.Source.values)  # (the enum's .values builds its list at each call)
# Words that are paths under /instruments/, so never instrument codes.
RESERVED_CODES = frozenset({"patients", "episodes", "responses", "new"})


def response_build(*, patient, episode, instrument: str, answers, time_point: str = "",
                   completed_at: dt.datetime | None = None, source: str = Response.Source.STAFF,
                   entered_by=None) -> Response:
    """An unsaved, validated and scored Response (usable with bulk_create). Raises ValidationError whose
    keys are model fields or "item_<n>" (1-based) for an answer."""
    errors: dict[str, list[str]] = {}
    try:
        definition = definitions.get_definition(instrument)
    except UnknownInstrument as exc:
        raise ValidationError({"instrument": str(exc)}) from None
    except DefinitionError as exc:
        raise ValidationError({"instrument": f"The {instrument} definition cannot be used: {exc}"}) from None
    result = score_definition(definition, answers)
    for error in result.item_errors:
        key = "answers" if not isinstance(answers, (list, tuple)) else f"item_{error.item}"
        errors.setdefault(key, []).append(f"Item {error.item}: {error.reason}")
    if episode is not None and episode.patient_id != patient.pk:
        errors.setdefault("episode", []).append("This episode belongs to another patient.")
    time_point = (time_point or "").strip()
    if time_point and not TIME_POINT_RE.match(time_point):
        errors.setdefault("time_point", []).append(
            "Use 'baseline' or a number with d, w, m or y after the index procedure (e.g. 6w, 3m, 12m).")
    if source not in SOURCES:
        errors.setdefault("source", []).append(f"Unknown source {source!r}; use one of "
                                               f"{', '.join(Response.Source.values)}.")
    completed_at = completed_at or timezone.now()
    if timezone.is_naive(completed_at):
        completed_at = timezone.make_aware(completed_at)
    if completed_at > timezone.now() + CLOCK_SKEW:
        errors.setdefault("completed_at", []).append("The completion date is in the future.")
    elif timezone.localtime(completed_at).date() < patient.birth_date:
        errors.setdefault("completed_at", []).append("The completion date is before the patient's birth date.")
    if errors:
        raise ValidationError(errors)
    return Response(
        patient=patient, episode=episode, time_point=time_point, instrument=definition.code,
        instrument_version=definition.version, answers=result.answers, scores=result.scores,
        score=result.primary, valid=result.valid, invalid_reason=result.reason[:500], completed_at=completed_at,
        source=source, entered_by=entered_by)


def response_record(*, patient, episode, instrument: str, answers, time_point: str = "",
                    completed_at: dt.datetime | None = None, source: str = Response.Source.STAFF, entered_by=None,
                    request=None) -> Response:
    """Validate, score and store one response with its audit entry. Raises ValidationError (nothing stored)."""
    response = response_build(patient=patient, episode=episode, instrument=instrument, answers=answers,
                              time_point=time_point, completed_at=completed_at, source=source,
                              entered_by=entered_by)
    return responses_store(responses=[response], request=request, entered_by=entered_by)[0]


def responses_store(*, responses: list[Response], request=None, entered_by=None) -> list[Response]:
    """Store responses built by response_build (validated and scored), in one transaction: inserted together
    with their history rows, one audit entry each, response_recorded once for all of them (follow-up completes
    their assessments) and records_changed once. The bulk twin of response_record (an import's unit of work);
    response_record stores its one response through it."""
    if not responses:
        return []
    history_user = getattr(request, "user", None) if request is not None else entered_by
    if not getattr(history_user, "is_authenticated", False):
        history_user = None
    with transaction.atomic():
        stored = bulkinsert.insert_objects(Response, responses)
        bulkinsert.history_insert(Response, stored, default_user=history_user, default_change_reason=None)
        audit_record_bulk(request=request, user=None if request is not None else entered_by,
                          action=AuditEvent.Action.CREATE,
                          entries=[(r, r.patient, _audit_detail(r)) for r in stored])
        # Inside the transaction that stores the responses: what listeners write commits or rolls back with them.
        events.response_recorded.send(responses=stored)
        # A response is the patient's last contact for every episode; its own episode's outcomes change too: it is
        # one of them (response_build refuses an episode of another patient), so the patients name every episode.
        events.records_changed_send(patient_ids=[r.patient_id for r in stored])
    return stored


def _audit_detail(response: Response) -> str:
    score = format_number(response.score) if response.score is not None else "not scored"
    return f"{response.instrument} {response.time_point or ''} response, score {score}".replace("  ", " ")


@transaction.atomic
def response_delete(*, response: Response, request=None, actor=None) -> None:
    """Delete a response (e.g. entered for the wrong patient) with its audit entry; the assessment it completed
    keeps its status and loses the link."""
    audit_record(request=request, user=actor, action=AuditEvent.Action.DELETE, obj=response, patient=response.patient,
                 detail=f"{response.instrument} {response.time_point or ''} response".replace("  ", " "))
    episode_id, patient_id = response.episode_id, response.patient_id
    response.delete()
    events.records_changed_send(episode_ids=[episode_id], patient_ids=[patient_id])


# --- installing instruments ---------------------------------------------------------------------------------

def _write_atomically(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, ensure_ascii=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    definitions.clear_caches()


def instrument_install(*, resource, replace: bool = False) -> Definition:
    """Install a Questionnaire file's content into the data directory.

    For a shipped instrument it is an instrument pack: its text must fit the shipped structure (same item
    ids, count, types and answer options) and nothing but text is taken from it. Any other id installs a
    site definition (e.g. one imported from REDCap), checked in full, installed as a draft: it is not sent to
    patients until a person has reviewed it (instrument_review). Raises DefinitionError listing every
    problem; nothing is written then. Files, not tables: the command works before the database exists.
    """
    if not isinstance(resource, dict) or resource.get("resourceType") != "Questionnaire":
        raise DefinitionError(["not a FHIR Questionnaire (resourceType must be 'Questionnaire')"])
    code = resource.get("id")
    if isinstance(code, str) and code in definitions.shipped_codes():
        errors = check_pack(resource, definitions.scoring_definition(code))
        if errors:
            raise DefinitionError(errors, f"pack for {code}")
        path = definitions.packs_dir() / f"{code}.json"
        if path.exists() and not replace:
            raise DefinitionError([f"a pack for {code} is already installed; use --replace to replace it"])
    else:
        if code in RESERVED_CODES:
            raise DefinitionError([f"id {code!r} is reserved; choose another instrument code"])
        parse_definition(resource, origin="site", source=f"definition {code}")
        path = definitions.site_dir() / f"{code}.json"
        if path.exists() and not replace:
            raise DefinitionError([f"a site definition {code} is already installed; use --replace to replace it"])
        resource = _as_draft(resource)
    _write_atomically(path, resource)
    return definitions.get_definition(code)


REVIEW_EXT = EXT + "review"


def _as_draft(resource: dict) -> dict:
    """A copy of a site definition as an unreviewed draft (any earlier review does not carry over)."""
    draft = {**resource, "status": "draft"}
    draft["extension"] = [e for e in resource.get("extension") or [] if e.get("url") != REVIEW_EXT]
    return draft


def instrument_review(*, code: str, actor, note: str = "", request=None) -> Definition:
    """A person has reviewed an installed site definition (items, scores, which way is better): it may now be
    sent to patients. Recorded in the definition (who, when) and in the audit log."""
    path = definitions.site_dir() / f"{code}.json"
    if code in definitions.shipped_codes() or not path.exists():
        raise DefinitionError([f"no site definition {code!r} is installed (shipped instruments need no review)"])
    resource = json.loads(path.read_text(encoding="utf-8"))
    if resource.get("status") != "draft":
        raise DefinitionError([f"{code} has already been reviewed"])
    parse_definition(resource, origin="site", source=f"definition {code}")
    username = getattr(actor, "get_username", lambda: "")()
    if not username:
        raise DefinitionError(["a review needs the person who did it"])
    reviewed = {**resource, "status": "active"}
    reviewed["extension"] = [*(resource.get("extension") or []), {"url": REVIEW_EXT, "extension": [
        {"url": "by", "valueString": username}, {"url": "at", "valueDateTime": timezone.now().isoformat()},
        *([{"url": "note", "valueString": note}] if note else [])]}]
    with transaction.atomic():
        audit_record(request=request, user=actor, action=AuditEvent.Action.UPDATE,
                     detail=f"instrument {code} reviewed: may be sent to patients" + (f" ({note})" if note else ""))
        _write_atomically(path, reviewed)
    return definitions.get_definition(code)
