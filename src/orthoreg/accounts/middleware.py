"""Security headers on every response, and the two-factor gate for staff who need it."""

from __future__ import annotations

import zoneinfo

from django.http import HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone

from . import access, twofactor
from .models import AuditEvent, Membership
from .services import client_ip

CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
# An SVG served as an image cannot run script; its inline presentation styles (matplotlib) are allowed.
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
PRIVATE_PREFIXES = ("/patients", "/episodes", "/procedures", "/survey", "/s/", "/api", "/reports", "/imaging",
                    "/followup", "/audit", "/instruments", "/analytics", "/interop", "/accounts")


class SecurityHeadersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.get("Content-Type", "").startswith("image/svg+xml"):
            response.headers["Content-Security-Policy"] = SVG_CSP
        else:
            response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if request.path.startswith(PRIVATE_PREFIXES):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


class TwoFactorMiddleware:
    """A signed-in user who needs two-factor reaches nothing but the two-factor pages until verified."""

    EXEMPT = ("/accounts/2fa/", "/accounts/logout/", "/static/", "/healthz")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not request.path.startswith(self.EXEMPT) \
                and not user.is_verified():
            step = twofactor.gate(user)
            if step == "verify":
                return redirect(f"{reverse('accounts:2fa_verify')}?next={request.get_full_path()}")
            if step == "setup":
                return redirect(f"{reverse('accounts:2fa_setup')}?next={request.get_full_path()}")
        return self.get_response(request)


class AccessMiddleware:
    """Builds the request's one access object (orthoreg.accounts.access.RequestAccess: the users' roles, read
    once, and the patients the request reached). Every successful read of a patient's record is logged: what
    the view did not log itself is logged here, once per patient and request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with access.request_access(request) as acc:
            response = self.get_response(request)
            # Images count too (renditions, thumbnails, before/after pictures, score charts): each is a read of
            # the patient's data, fetched by its own request, whatever page it is shown in. Downloads of originals
            # are logged by their views as exports, which marks them done here.
            if request.method in ("GET", "HEAD") and response.status_code < 400:
                reads = list(acc.unaudited_reads())
                if reads:
                    AuditEvent.objects.bulk_create([
                        AuditEvent(user=user, username=user.username, ip_address=client_ip(request),
                                   action=AuditEvent.Action.VIEW, patient_id=patient_id,
                                   detail=f"{request.method} {request.path}"[:500])
                        for user, patient_id in reads])
        return response


class RejectNulMiddleware:
    """A NUL character in a query or form value can never be stored (PostgreSQL refuses it): answer 400 with
    a message instead of failing deep inside a view."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.META.get("QUERY_STRING", "") or "%00" in request.META.get("QUERY_STRING", ""):
            return self._refuse(request)
        # Only plain forms: reading a multipart body here would stop upload views from setting their own
        # upload handlers (which refuse oversized files while they are read).
        if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
            for values in request.POST.lists():
                if any("\x00" in value for value in values[1]) or "\x00" in values[0]:
                    return self._refuse(request)
        return self.get_response(request)

    MESSAGE = "The request contains a NUL character, which is not allowed in any field."

    @classmethod
    def _refuse(cls, request):
        if request.path.startswith("/api/"):  # API clients get the API's error shape
            return JsonResponse({"detail": cls.MESSAGE, "errors": [{"location": "request", "message": cls.MESSAGE}]},
                                status=400)
        return HttpResponseBadRequest(cls.MESSAGE, content_type="text/plain; charset=utf-8")


class ClinicTimeZoneMiddleware:
    """Dates and times in the clinic's own time zone: a signed-in user works in the time zone of their (first)
    clinic, so "today", "in the future" and every date shown follow the clinic's clock, not the server's.
    The zone is looked up once per session."""

    SESSION_KEY = "orthoreg_tz"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        name = self._zone_name(request)
        try:
            zone = zoneinfo.ZoneInfo(name) if name else None
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            zone = None
        if zone is None:
            return self.get_response(request)
        with timezone.override(zone):
            return self.get_response(request)

    def _zone_name(self, request) -> str:
        user = getattr(request, "user", None)
        if not getattr(user, "is_authenticated", False):
            return ""
        name = request.session.get(self.SESSION_KEY)
        if name is None:
            name = (Membership.objects.filter(user=user).order_by("clinic__name", "clinic_id")
                    .values_list("clinic__timezone", flat=True).first() or "")
            request.session[self.SESSION_KEY] = name
        return name
