"""What every resource of the API shares: the one error body, cursor pagination, `updated_since`, role checks
and idempotent writes.

Error body everywhere: {"detail": "<one sentence>", "errors": [{"location": "<field or parameter>",
"message": "<what is wrong>"}]}.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Annotated, Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.http import Http404
from ninja import Field, Schema, Status
from ninja.parser import Parser
from pydantic import create_model, field_validator

from orthoreg.accounts import access

from .models import IdempotentRequest
from .schemas import Error, IsoDateTime

MAX_ID = 2**63 - 1  # the largest id a database column holds (larger ones would overflow, not be missing)
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
MAX_LIMIT = 200
DEFAULT_LIMIT = 50
READ_ERRORS = {400: Error, 401: Error, 403: Error, 404: Error, 422: Error}
WRITE_ERRORS = {**READ_ERRORS, 409: Error}
IDEMPOTENCY_HEADER = "HTTP_IDEMPOTENCY_KEY"
# Declared on every write (openapi_extra): the header is optional.
IDEMPOTENT = {"parameters": [{
    "in": "header", "name": "Idempotency-Key", "required": False,
    "description": "Any string up to 255 characters: the same key with the same request answers the same again "
                   "without writing twice; the same key with another request answers 422.",
    "schema": {"type": "string", "maxLength": 255}}]}


class StrictJsonParser(Parser):
    """JSON bodies as the standard has them: no NaN or Infinity, and text that can be stored (no NUL characters or
    lone surrogates). Anything else answers 400 (api.http_error)."""

    def parse_body(self, request):
        data = json.loads(request.body, parse_constant=_refuse_constant)
        text = json.dumps(data, ensure_ascii=False)
        text.encode("utf-8")  # raises on a lone surrogate
        if "\x00" in text:
            raise ValueError("NUL character")
        return data


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


class ApiError(Exception):
    """Answer with this status and the one error body."""

    def __init__(self, status: int, detail: str, errors: Iterable[tuple[str, str]] = ()):
        self.status = status
        self.detail = detail
        self.errors = [{"location": location, "message": message} for location, message in errors]
        super().__init__(detail)

    def body(self) -> dict:
        return {"detail": self.detail, "errors": self.errors}


def error_body(detail: str, errors: Iterable[tuple[str, str]] = ()) -> dict:
    return ApiError(0, detail, errors).body()


def validation_error(exc: DjangoValidationError) -> ApiError:
    """A service's ValidationError (field -> messages) as a 422 naming each field."""
    if hasattr(exc, "error_dict"):
        pairs = [("request" if name == "__all__" else name, message)
                 for name, messages in exc.message_dict.items() for message in messages]
    else:
        pairs = [("request", message) for message in exc.messages]
    detail = "Not saved: " + "; ".join(f"{location}: {message}" for location, message in pairs)
    return ApiError(422, detail[:1000], pairs)


# --- who may do what --------------------------------------------------------------------------------------

def require(request, capability, what: str) -> set[int]:
    """The clinic ids where the user has the capability; 403 when there are none at all (the role gives no
    access to this kind of record anywhere). Records of other clinics answer 404, never 403."""
    ids = access.clinic_ids(request.auth, capability)
    if not ids:
        raise ApiError(403, f"Your role gives no access to {what}.")
    return ids


def get_object(request, model, pk, capability=access.CLINICAL, queryset: QuerySet | None = None,
               location: str = "id"):
    """One record the user may reach, or 404 (records of other clinics look exactly like missing ones)."""
    try:
        return access.access_object(request.auth, model, pk, capability, queryset)
    except Http404:
        name = model._meta.verbose_name
        raise ApiError(404, f"No {name} {pk} found.", [(location, f"No {name} with id {pk} that you may "
                                                                  "reach.")]) from None


# --- lists --------------------------------------------------------------------------------------------------

class ListQuery(Schema):
    cursor: str | None = Field(None, description="The next_cursor of the previous page")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description=f"Items per page (1-{MAX_LIMIT})")
    updated_since: IsoDateTime | None = Field(None, description="Only records changed at or after this moment "
                                                                "(ISO 8601, e.g. 2025-03-01T00:00:00Z)")

    @field_validator("updated_since")
    @classmethod
    def _in_utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        try:
            return value.astimezone(dt.UTC)
        except OverflowError:
            raise ValueError("This moment is out of range.") from None


_pages: dict[type, type] = {}


def page_of(item: type[Schema]) -> type[Schema]:
    """The page schema of a resource: items in id order and the cursor of the next page (null on the last)."""
    if item not in _pages:
        _pages[item] = create_model(f"{item.__name__}Page", __base__=Schema, items=(list[item], ...),
                                    next_cursor=(str | None, None))
    return _pages[item]


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii") + b"=" * (-len(cursor) % 4)).decode("ascii")
        kind, _, value = raw.partition(":")
        if kind != "after" or not value.isdigit() or int(value) > MAX_ID:
            raise ValueError(raw)
        return int(value)
    except (ValueError, UnicodeError, binascii.Error):
        raise ApiError(422, "Bad cursor: give the next_cursor of a page as it was.",
                       [("cursor", "Not a cursor this API gave.")]) from None


def _encode_cursor(pk: int) -> str:
    return base64.urlsafe_b64encode(f"after:{pk}".encode("ascii")).decode("ascii").rstrip("=")


def paginate(queryset: QuerySet, query: ListQuery, *, updated_field: str | None = "updated_at") -> dict:
    """One page in id order (stable whatever is written meanwhile: a cursor is the last id seen)."""
    qs = queryset
    if query.updated_since is not None:
        if updated_field is None:
            raise ApiError(422, "This resource cannot be filtered by updated_since.",
                           [("updated_since", "Not available for this resource.")])
        qs = qs.filter(**{f"{updated_field}__gte": query.updated_since})
    if query.cursor:
        qs = qs.filter(pk__gt=_decode_cursor(query.cursor))
    rows = list(qs.order_by("pk")[: query.limit + 1])
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return {"items": rows, "next_cursor": _encode_cursor(rows[-1].pk) if more and rows else None}


# --- writes -------------------------------------------------------------------------------------------------

def _request_hash(request) -> str:
    """Method, path (with its query string, when there is one: ?dry_run=true is another request) and body."""
    query = request.META.get("QUERY_STRING", "")
    path = f"{request.path}?{query}" if query else request.path
    digest = hashlib.sha256()
    for part in (request.method, path, request.body):
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def write(request, *, status: int, out: type[Schema], action: Callable[[], Any],
          present: Callable[[Any], Any] | None = None) -> Status:
    """Run a write (a service call) in one transaction and answer `status` with the record as `out`
    (idempotent under an Idempotency-Key header: see `idempotent`)."""

    def run() -> tuple[int, Any]:
        obj = action()
        return status, out.from_orm(present(obj) if present else obj).model_dump(mode="json", by_alias=True)

    return idempotent(request, run)


def idempotent(request, run: Callable[[], tuple[int, Any]]) -> Status:
    """Run a write in one transaction and answer the (status, JSON body) it returns.

    A service's ValidationError answers 422 naming each field; nothing is written. With an Idempotency-Key
    header a success (2xx, 3xx) is stored with a hash of the request: the same key and request get the same
    answer again without writing anything; the same key with another request answers 422. A refused request
    (4xx) is not stored, so it can be corrected and sent with the same key."""
    key = request.META.get(IDEMPOTENCY_HEADER, "").strip()
    if len(key) > 255:
        raise ApiError(422, "The Idempotency-Key is too long (255 characters at most).",
                       [("Idempotency-Key", "At most 255 characters.")])
    request_hash = _request_hash(request) if key else ""
    if key:
        previous = IdempotentRequest.objects.filter(user=request.auth, key=key).first()
        if previous is not None:
            return _replay(previous, request_hash)
    try:
        with transaction.atomic():
            status, body = run()
            if key and status < 400:
                IdempotentRequest.objects.create(user=request.auth, key=key, request_hash=request_hash,
                                                 status_code=status, response=body)
    except DjangoValidationError as exc:
        raise validation_error(exc) from None
    except IntegrityError:
        previous = IdempotentRequest.objects.filter(user=request.auth, key=key).first() if key else None
        if previous is not None:  # the same key answered by a request running at the same time
            return _replay(previous, request_hash)
        raise ApiError(409, "This record conflicts with one saved meanwhile; nothing was written.") from None
    return Status(status, body)


def _replay(previous: IdempotentRequest, request_hash: str) -> Status:
    if previous.request_hash != request_hash:
        raise ApiError(422, "This Idempotency-Key was used for a different request; use a new key for a new "
                            "request.", [("Idempotency-Key", "Already used for a different request.")])
    return Status(previous.status_code, previous.response)


def changes(payload: Schema) -> dict:
    """The fields a PATCH gives (those left out stay as they are)."""
    return payload.model_dump(exclude_unset=True)


def no_changes_refused(fields: dict) -> None:
    if not fields:
        raise ApiError(422, "Nothing to change: give at least one field.", [("body", "No field given.")])


def dumps(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)
