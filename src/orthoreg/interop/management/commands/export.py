"""orthoreg export research --out FILE.zip [--clinic CODE ...]"""

from django.core.management.base import BaseCommand, CommandError

from orthoreg.accounts.models import AuditEvent
from orthoreg.accounts.services import audit_record
from orthoreg.interop import research
from orthoreg.interop.fhir import commands as fhir_commands
from orthoreg.registry.models import Clinic


class Command(BaseCommand):
    help = ("Exports. 'research': the de-identified research export (consented patients only) as a ZIP of CSVs; "
            "'fhir': FHIR R4 Bulk Data ndjson.")

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="what", required=True)
        r = sub.add_parser("research", help="de-identified research export")
        r.add_argument("--out", required=True, help="the ZIP file to write")
        r.add_argument("--clinic", action="append", default=[], metavar="CODE", help="default: every clinic")
        fhir_commands.add_export_parser(sub)

    def handle(self, *args, what, **options):
        if what == "fhir":
            return fhir_commands.handle_export(self, options)
        return self.handle_research(**options)

    def handle_research(self, *, out, clinic, **options):
        clinics = Clinic.objects.all() if not clinic else Clinic.objects.filter(code__in=clinic)
        found = set(clinics.values_list("code", flat=True))
        missing = sorted(set(clinic) - found)
        if missing:
            raise CommandError(f"Unknown clinic code(s): {', '.join(missing)}", returncode=2)
        try:
            counts = research.write(out, list(clinics.values_list("pk", flat=True)))
        except OSError as exc:
            raise CommandError(f"Cannot write {out}: {exc}", returncode=2) from None
        audit_record(action=AuditEvent.Action.EXPORT, detail=f"command line research export to {out}: {counts}")
        for name, n in counts.items():
            self.stdout.write(f"{name:20} {n:>10,} rows")
        self.stdout.write(self.style.SUCCESS(f"Wrote {out}"))
