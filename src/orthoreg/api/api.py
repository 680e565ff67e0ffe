"""The one NinjaAPI of orthoreg, version 1, mounted at /api/v1/ (OpenAPI schema at /api/v1/openapi.json, the
interactive documentation at /api/v1/docs, served with the site's own static files: no CDN, no inline script).

Each domain adds its own Router under routers/ and is registered here. Authentication: a bearer token
(`Authorization: Bearer <token>`, `orthoreg token create`) or the site's session. Every answer that is not a
success has the one error body {"detail": ..., "errors": [{"location": ..., "message": ...}]}, and every
operation declares the 4xx answers it can give.
"""

from __future__ import annotations

import functools

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from ninja import NinjaAPI, Swagger
from ninja.errors import AuthenticationError, HttpError, ValidationError

from orthoreg import replica

from .auth import AUTH
from .common import ApiError, StrictJsonParser, error_body, validation_error
from .routers import cohorts, fhir, followup, imaging, records
from .tokens import TokenRefused

api = NinjaAPI(
    title="orthoreg API",
    version="1",
    description="Open outcomes registry for orthopedic and orthobiologic care: the registry's records (scoped to "
                "your clinics and role) and de-identified cohort aggregates. Authenticate with "
                "`Authorization: Bearer <token>` (`orthoreg token create --user NAME`). Writes accept an "
                "`Idempotency-Key` header. See docs/api.md.",
    urls_namespace="api",
    auth=AUTH,
    docs=Swagger(settings={"persistAuthorization": False}),
    docs_url="/docs",
    parser=StrictJsonParser(),
)


def _reads_on_replica(operation):
    """Every GET of the API reads on the read replica when there is one (orthoreg.replica; writes never)."""
    @functools.wraps(operation)
    def run(request, *args, **kwargs):
        if request.method not in replica.SAFE_METHODS:
            return operation(request, *args, **kwargs)
        with replica.reading_from_replica():
            return operation(request, *args, **kwargs)
    return run


api.add_decorator(_reads_on_replica)
api.add_router("/", records.router)
api.add_router("/", followup.router)
api.add_router("/", imaging.router)
api.add_router("/cohorts", cohorts.router)
api.add_router("/fhir", fhir.router)


def _location(loc) -> str:
    parts = [str(part) for part in loc if part not in ("query", "filters", "body", "payload", "path")]
    return ".".join(parts) or "request"


@api.exception_handler(ValidationError)
def bad_parameters(request, exc: ValidationError):
    """Ninja's own validation (a wrong type or value in the query or body) in the API's one error shape."""
    pairs = [(_location(error.get("loc", ())), str(error.get("msg", "invalid"))) for error in exc.errors]
    detail = "Bad request: " + "; ".join(f"{location}: {message}" for location, message in pairs)
    return api.create_response(request, error_body(detail[:1000], pairs), status=422)


@api.exception_handler(ApiError)
def api_error(request, exc: ApiError):
    return api.create_response(request, exc.body(), status=exc.status)


@api.exception_handler(DjangoValidationError)
def refused(request, exc: DjangoValidationError):
    error = validation_error(exc)
    return api.create_response(request, error.body(), status=error.status)


@api.exception_handler(AuthenticationError)
def unauthenticated(request, exc):
    return api.create_response(request, error_body(
        "Authenticate: send `Authorization: Bearer <token>` or sign in.",
        [("Authorization", "No valid token or session.")]), status=401)


@api.exception_handler(TokenRefused)
def token_refused(request, exc: TokenRefused):
    return api.create_response(request, error_body(str(exc), [("Authorization", str(exc))]), status=401)


@api.exception_handler(Http404)
def not_found(request, exc):
    return api.create_response(request, error_body("Not found."), status=404)


@api.exception_handler(PermissionDenied)
def forbidden(request, exc):
    return api.create_response(request, error_body(str(exc) or "Not allowed."), status=403)


@api.exception_handler(HttpError)
def http_error(request, exc: HttpError):
    message = str(exc)
    if exc.status_code == 400 and "parse" in message:
        message = ("The request body is not valid JSON (UTF-8; no NaN or Infinity; no NUL characters or lone "
                   "surrogates in text).")
        return api.create_response(request, error_body(message, [("body", message)]), status=400)
    return api.create_response(request, error_body(message), status=exc.status_code)
