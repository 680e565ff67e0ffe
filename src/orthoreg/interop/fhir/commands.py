"""The `fhir` subcommands of `orthoreg export` and `orthoreg import` (their arguments and handlers live here so
the commands themselves stay thin dispatchers)."""

from __future__ import annotations

import datetime as dt
import gc
import json
from contextlib import contextmanager

from django.core.management.base import CommandError
from django.utils import timezone
from tqdm import tqdm

from orthoreg.accounts.models import AuditEvent
from orthoreg.accounts.services import audit_record
from orthoreg.registry.models import Clinic, Patient

from . import export, imports


@contextmanager
def fewer_collections():
    """A long run of a command with fewer garbage collections: what Django and the models built at start is left
    out of them (gc.freeze), and the youngest objects are collected after 10,000 allocations instead of 700.
    Python's collector otherwise walks every object the process holds, again and again, while an import or export
    makes and drops hundreds of thousands of small ones: 0.49 s of an import of 6,088 resources, 0.07 s so
    (benchmarks/README.md). Memory stays bounded: the collections still come, less often. Both are undone after."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(threshold[0], 10_000), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def add_export_parser(subparsers) -> None:
    p = subparsers.add_parser("fhir", help="FHIR R4 Bulk Data ndjson (one file per resource type)")
    p.add_argument("--out", required=True, metavar="DIR", help="directory to write <Type>.ndjson files into")
    p.add_argument("--clinic", action="append", default=[], metavar="CODE", help="default: every clinic")
    p.add_argument("--since", metavar="DATE", help="only records created or changed on or after DATE (YYYY-MM-DD)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _clinics(codes: list[str]):
    clinics = Clinic.objects.all() if not codes else Clinic.objects.filter(code__in=codes)
    missing = sorted(set(codes) - set(clinics.values_list("code", flat=True)))
    if missing:
        raise CommandError(f"Unknown clinic code(s): {', '.join(missing)}", returncode=2)
    return clinics


def handle_export(command, options) -> None:
    clinics = _clinics(options["clinic"])
    since = None
    if options.get("since"):
        try:
            day = dt.date.fromisoformat(options["since"])
        except ValueError:
            raise CommandError(f"--since {options['since']!r} is not a date (YYYY-MM-DD)", returncode=2) from None
        since = timezone.make_aware(dt.datetime.combine(day, dt.time.min))
    patients = Patient.objects.filter(clinic__in=clinics)
    out = options["out"]
    with tqdm(total=export.count_resources(patients), unit="resource", disable=options.get("no_progress"),
              file=command.stderr._out, desc="FHIR export") as bar, fewer_collections():
        try:
            counts = export.bulk_export(out, patients, since=since, progress=bar.update)
        except OSError as exc:
            raise CommandError(f"Cannot write {out}: {exc}", returncode=2) from None
        bar.total = sum(counts.values())  # the estimate made way for what was written: the bar ends at 100%
        bar.refresh()
    audit_record(action=AuditEvent.Action.EXPORT,
                 detail=f"command line FHIR export to {out}: {json.dumps(counts)}")
    for name, n in counts.items():
        command.stdout.write(f"{name:24} {n:>10,} resources")
    command.stdout.write(command.style.SUCCESS(f"Wrote {out}"))


def add_import_parser(subparsers) -> None:
    p = subparsers.add_parser("fhir", help="FHIR R4 Bundles (transaction, batch, collection, searchset), single "
                                           "resources and Bulk Data ndjson files or directories")
    p.add_argument("paths", nargs="+", metavar="FILE_OR_DIR")
    p.add_argument("--clinic", metavar="CODE", help="clinic of new patients (default: the clinic the Patient names, "
                                                    "or the only clinic)")
    p.add_argument("--dry-run", action="store_true", help="check and count everything, write nothing")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--single-process", action="store_true",
                   help="validate every resource in this process (by default ndjson files of 1 MB or more are "
                        "validated ahead in a second process where there is a second core: docs/fhir.md)")


def handle_import(command, options) -> None:
    clinic = None
    if options.get("clinic"):
        clinic = Clinic.objects.filter(code=options["clinic"]).first()
    if options.get("clinic") and clinic is None:
        summary = imports.Summary(dry_run=options["dry_run"])  # (nothing read: a summary saying why, as always)
        summary.refuse("--clinic", f"unknown clinic code: {options['clinic']}")
    else:
        with fewer_collections():
            summary = imports.import_paths(
                options["paths"], clinic=clinic, dry_run=options["dry_run"],
                ahead_min_bytes=None if options.get("single_process") else imports.AHEAD_MIN_BYTES)
    if options["format"] == "json":
        command.stdout.write(json.dumps(summary.as_dict(), indent=1, ensure_ascii=False))
    else:
        command.stdout.write(summary.as_text())
    if not summary.ok:
        raise CommandError("Refused: nothing of the refused file(s) or Bundle(s) was written (see above).",
                           returncode=2)
