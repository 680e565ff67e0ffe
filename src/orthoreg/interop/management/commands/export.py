"""orthoreg export research [--format csv|parquet] --out DIR|FILE.zip [--clinic CODE ...] [--as-of DATE]

Without --format the export is one ZIP of CSV files (--out FILE.zip), as the web download; with --format, --out is a
folder that receives one file per table and the data dictionary. Refused input: a message and exit status 2,
nothing written.
"""

import datetime as dt
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from orthoreg import replica
from orthoreg.accounts.models import AuditEvent
from orthoreg.accounts.services import audit_record
from orthoreg.interop import research
from orthoreg.interop.fhir import commands as fhir_commands
from orthoreg.registry.models import Clinic


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--as-of: {text!r} is not a date (YYYY-MM-DD)", returncode=2) from None


class Command(BaseCommand):
    help = ("Exports. 'research': the de-identified research export (consented patients only): a ZIP of CSVs, or "
            "with --format a folder of CSV or Parquet files, with its data dictionary; 'fhir': FHIR R4 Bulk Data "
            "ndjson.")

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="what", required=True)
        r = sub.add_parser("research", help="de-identified research export")
        r.add_argument("--out", required=True, help="the ZIP file to write, or with --format the folder")
        r.add_argument("--format", choices=research.FORMATS, default=None,
                       help="write a folder of CSV or Parquet files (default: one ZIP of CSV files)")
        r.add_argument("--clinic", action="append", default=[], metavar="CODE", help="default: every clinic")
        r.add_argument("--as-of", default=None, metavar="YYYY-MM-DD",
                       help="the day assessments are due by and survival is censored at (default: today)")
        fhir_commands.add_export_parser(sub)

    def handle(self, *args, what, **options):
        with replica.reading_from_replica():  # on the read replica when there is one (orthoreg.replica)
            if what == "fhir":
                return fhir_commands.handle_export(self, options)
            return self.handle_research(**options)

    def handle_research(self, *, out, clinic, **options):
        clinics = Clinic.objects.all() if not clinic else Clinic.objects.filter(code__in=clinic)
        found = set(clinics.values_list("code", flat=True))
        missing = sorted(set(clinic) - found)
        if missing:
            raise CommandError(f"Unknown clinic code(s): {', '.join(missing)}", returncode=2)
        as_of = _day(options["as_of"]) if options.get("as_of") else None
        fmt = options.get("format")
        ids = list(clinics.values_list("pk", flat=True))
        try:
            if fmt is None:
                if Path(out).is_dir():
                    raise CommandError(f"--out: {out} is a folder; give a .zip file, or --format csv|parquet",
                                       returncode=2)
                counts = research.write(out, ids, as_of=as_of)
            else:
                counts = research.write_dir(Path(out), ids, fmt=fmt, as_of=as_of)
        except OSError as exc:
            raise CommandError(f"Cannot write {out}: {exc}", returncode=2) from None
        audit_record(action=AuditEvent.Action.EXPORT,
                     detail=f"command line research export ({fmt or 'zip'}) to {out}: {counts}")
        for name, n in counts.items():
            self.stdout.write(f"{name:24} {n:>10,} rows")
        self.stdout.write(self.style.SUCCESS(f"Wrote {out}"))
