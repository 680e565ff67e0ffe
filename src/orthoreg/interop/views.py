"""The researcher's download of the de-identified export."""

from __future__ import annotations

import tempfile

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import render
from django.utils import timezone

from orthoreg import replica
from orthoreg.accounts import access
from orthoreg.accounts.models import AuditEvent
from orthoreg.accounts.services import audit_record
from orthoreg.registry.models import Clinic

from . import research


@login_required
@replica.reading_from_replica()  # a read-only export: on the read replica when there is one
def research_export(request):
    clinic_ids = access.clinic_ids(request.user, access.RESEARCH)
    if not clinic_ids:
        raise Http404
    clinics = Clinic.objects.filter(pk__in=clinic_ids).order_by("name")
    if request.GET.get("download") != "1":
        counts = {c.pk: research.eligible_patients([c.pk]).count() for c in clinics}
        rows = [(c, counts[c.pk]) for c in clinics]
        return render(request, "interop/research_export.html",
                      {"rows": rows, "dictionary": research.DICTIONARY, "nav": "research"})
    spool = tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024)
    counts = research.write(spool, clinic_ids)
    spool.seek(0)
    audit_record(request=request, action=AuditEvent.Action.EXPORT,
                 detail=f"de-identified research export: {counts.get('patients.csv', 0)} patients, "
                        f"clinics {sorted(clinic_ids)}")
    name = f"orthoreg-research-{timezone.localdate():%Y%m%d}.zip"
    return FileResponse(spool, as_attachment=True, filename=name, content_type="application/zip")
