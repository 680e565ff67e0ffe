"""Two-factor pages and the audit log."""

from __future__ import annotations

import csv

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme

from . import access, selectors, twofactor
from .forms import AuditFilterForm, EnrolmentForm, TokenForm
from .models import AuditEvent
from .services import audit_record


def _next_url(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        return "/"
    return target


@login_required
def twofactor_setup(request):
    if request.user.is_verified():
        return redirect(_next_url(request))
    if twofactor.has_device(request.user):
        return redirect("accounts:2fa_verify")
    device = twofactor.device_start(user=request.user)
    needs_code = twofactor.enrolment_needed(request.user, device=False)  # no device: just asked
    form = EnrolmentForm(request.POST or None, needs_code=needs_code)
    if request.method == "POST" and form.is_valid():
        problems = twofactor.device_confirm(request=request, device=device, token=form.cleaned_data["token"],
                                            enrolment_code=form.cleaned_data.get("enrolment_code", ""))
        if not problems:
            return redirect(_next_url(request))
        for field, message in problems.items():
            form.add_error(field, message)
    context = {"form": form, "qr": twofactor.qr_svg(device), "secret": twofactor.secret_of(device),
               "next": _next_url(request), "required": twofactor.required_for(request.user, device=False)}
    return render(request, "accounts/2fa_setup.html", context, status=400 if form.errors else 200)


@login_required
def twofactor_verify(request):
    if request.user.is_verified():
        return redirect(_next_url(request))
    if not twofactor.has_device(request.user):
        return redirect("accounts:2fa_setup")
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if twofactor.verify(request=request, token=form.cleaned_data["token"]):
            return redirect(_next_url(request))
        form.add_error("token", "That code did not match.")
    return render(request, "accounts/2fa_verify.html", {"form": form, "next": _next_url(request)},
                  status=400 if form.errors else 200)


@login_required
def audit_log(request):
    if not access.has_capability(request.user, access.AUDIT):
        raise Http404
    form = AuditFilterForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        # A filter that cannot be read lists nothing (never the unfiltered log) and says what is wrong.
        return render(request, "accounts/audit_log.html",
                      {"form": form, "page": Paginator([], 50).get_page(1), "query": "", "nav": "audit"}, status=400)
    filters = form.cleaned_data if form.is_bound else {}
    events = selectors.audit_events(user=request.user, **{k: v for k, v in filters.items() if v not in (None, "")})
    if request.GET.get("format") == "csv":
        audit_record(request=request, action=AuditEvent.Action.EXPORT, detail=f"audit log export {filters}")
        return _csv(events)
    page = Paginator(events.select_related("user"), 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "accounts/audit_log.html",
                  {"form": form, "page": page, "query": query.urlencode(), "nav": "audit"})


class _Echo:
    def write(self, value):
        return value


def _csv(events):
    writer = csv.writer(_Echo())
    header = ["at", "username", "ip_address", "action", "patient_id", "object_type", "object_id", "detail"]

    def rows():
        yield writer.writerow(header)
        for e in events.iterator(chunk_size=2000):
            yield writer.writerow([e.at.isoformat(), e.username, e.ip_address or "", e.action, e.patient_id or "",
                                   e.object_type, e.object_id, e.detail])

    response = StreamingHttpResponse(rows(), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="orthoreg-audit.csv"'
    return response
