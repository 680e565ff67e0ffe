"""The site's own pages: home, health check and the error pages."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpResponse
from django.shortcuts import render

from orthoreg.accounts import access
from orthoreg.analytics import facts
from orthoreg.analytics.selectors import clinic_glance

from . import selectors


@login_required
def home(request):
    context = {"nav": "home", "roles": selectors.home_roles(request.user), "glance": None}
    if access.clinic_ids(request.user, access.RESEARCH):
        facts.ensure_current()
        context["glance"] = clinic_glance(request.user)
    if access.has_capability(request.user, access.CONTACT):
        context["summary"] = selectors.clinic_summary(request.user)
    return render(request, "site/home.html", context)


def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse("ok", content_type="text/plain")


def not_found(request, exception=None):
    return render(request, "404.html", status=404)


def server_error(request):
    return render(request, "500.html", status=500)


def permission_denied(request, exception=None):
    return render(request, "403.html", status=403)
