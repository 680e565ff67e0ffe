"""The one NinjaAPI of orthoreg, version 1, mounted at /api/v1/ (OpenAPI schema at /api/v1/openapi.json).

Each domain adds its own Router under routers/ and is registered here. Authentication: the site's session
(django_auth) for now; every operation declares the 4xx answers it can give.
"""

from __future__ import annotations

from ninja import NinjaAPI
from ninja.errors import AuthenticationError, ValidationError
from ninja.security import django_auth

from .routers import cohorts, fhir

api = NinjaAPI(
    title="orthoreg API",
    version="1",
    description="Open outcomes registry for orthopedic and orthobiologic care. Aggregates only in this version.",
    urls_namespace="api",
    auth=django_auth,
    docs_url=None,  # the interactive docs need inline script, which the site's Content-Security-Policy forbids
)
api.add_router("/cohorts", cohorts.router)
api.add_router("/fhir", fhir.router)


@api.exception_handler(ValidationError)
def validation_error(request, exc: ValidationError):
    """Ninja's own validation errors (a wrong type or value in the query) in the API's one error shape."""
    errors: dict[str, list[str]] = {}
    for error in exc.errors:
        location = [str(part) for part in error.get("loc", ()) if part not in ("query", "filters")]
        errors.setdefault(".".join(location) or "request", []).append(str(error.get("msg", "invalid")))
    detail = "Bad parameters: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items())
    return api.create_response(request, {"detail": detail, "errors": errors}, status=422)


@api.exception_handler(AuthenticationError)
def unauthenticated(request, exc):
    return api.create_response(request, {"detail": "Sign in first (session authentication)."}, status=401)
