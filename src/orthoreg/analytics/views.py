"""/analytics/ leads to the cohort report (reports app), for users who may analyse outcomes."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse

from orthoreg.accounts import access


@login_required
def index(request):
    if not access.has_capability(request.user, access.RESEARCH):
        raise Http404("No clinic where you may analyse outcomes")
    query = request.META.get("QUERY_STRING", "")
    return redirect(reverse("reports:cohort") + (f"?{query}" if query else ""))
