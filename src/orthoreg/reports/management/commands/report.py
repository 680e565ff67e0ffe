"""orthoreg report cohort|case|public ...

    orthoreg report cohort --condition hallux_rigidus --procedure bmc --procedure prolotherapy --within-days 30 \\
        --grade-min 2 --grade-max 3 --format json [--out FILE]
    orthoreg report cohort --procedure bmc --vs-procedure hyaluronic_acid --format pdf --out bmc-vs-ha.pdf
    orthoreg report case EPISODE_ID --format html|pdf --out FILE
    orthoreg report public --out DIR

The command line sees every clinic (it runs with the database's own rights); --clinic narrows the cohort. Bad
values: a message on stderr and exit status 2, nothing written. Files are written whole or not at all. Every
report written is recorded in the audit log as an export.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from orthoreg import replica
from orthoreg.accounts.models import AuditEvent
from orthoreg.accounts.services import audit_record
from orthoreg.analytics import cohorts, facts, selectors
from orthoreg.analytics.filters import FIELD_NAMES, LIST_FIELDS, VS_PREFIX, CohortFilterError, parse_filters
from orthoreg.analytics.options import OptionsQuery, options_for
from orthoreg.analytics.report_types import ComparisonReport
from orthoreg.registry.models import Clinic, Episode
from orthoreg.reports import case as case_reports
from orthoreg.reports import pdf, public, static_html
from orthoreg.reports.static_html import case_html, cohort_html

FILTER_HELP = {
    "clinic": "clinic code; repeat for several",
    "condition": "e.g. hallux_rigidus, oa_primary, low_back_pain",
    "site": "body site, e.g. first_mtp, knee, hip, lumbar_spine",
    "side": "left, right, bilateral or na",
    "grade_min": "lowest grade at treatment (0-4)",
    "grade_max": "highest grade at treatment (0-4)",
    "procedure": "index procedure kind; repeat for a combination (e.g. bmc then prolotherapy)",
    "also": "a further kind of a combination (same as repeating --procedure)",
    "within_days": "days around the index date for a combination (default 30)",
    "age_min": "lowest age at treatment", "age_max": "highest age at treatment",
    "sex": "female, male, other or unknown",
    "index_from": "first index date, YYYY-MM-DD", "index_to": "last index date, YYYY-MM-DD",
}


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file beside the target and rename it: the file is whole or absent."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise CommandError(f"--out: the folder {path.parent} does not exist", returncode=2)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Command(BaseCommand):
    help = "Write a cohort report (JSON, HTML or PDF), a case report, or the public outcomes pages."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="what", required=True, metavar="cohort|case|public")
        cohort = sub.add_parser("cohort", help="outcomes of a cohort (optionally against a second one)")
        for name in FIELD_NAMES:
            flag = "--" + name.replace("_", "-")
            kwargs = {"action": "append"} if name in LIST_FIELDS else {}
            cohort.add_argument(flag, dest=name, metavar=name.split("_")[0].upper(), help=FILTER_HELP.get(name),
                                **kwargs)
            cohort.add_argument("--vs-" + name.replace("_", "-"), dest=VS_PREFIX + name,
                                metavar=name.split("_")[0].upper(), help="the second cohort's value (comparison)",
                                **kwargs)
        cohort.add_argument("--consented-only", action="store_true",
                            help="count only patients with registry consent (the figures a researcher sees)")
        cohort.add_argument("--format", choices=["json", "html", "pdf"], default="json")
        cohort.add_argument("--out", type=Path, help="file to write (JSON: standard output when omitted)")
        case = sub.add_parser("case", help="the case report of one episode")
        case.add_argument("episode_id", type=int, metavar="EPISODE_ID")
        case.add_argument("--format", choices=["html", "pdf"], default="pdf")
        case.add_argument("--out", type=Path, required=True)
        opts = sub.add_parser("options", help="options for the next patient: what happened to similar patients under "
                                              "each treatment")
        for name, help_ in (("condition", "e.g. hallux_rigidus"), ("site", "e.g. first_mtp"),
                            ("side", "left, right, bilateral or na"), ("grade", "0-4"),
                            ("age_band", "FROM-TO in years, e.g. 40-49")):
            opts.add_argument("--" + name.replace("_", "-"), dest=name, required=True, help=help_)
        opts.add_argument("--sex", help="female, male, other or unknown (optional)")
        opts.add_argument("--format", choices=["json", "html", "pdf"], default="json")
        opts.add_argument("--out", type=Path, help="file to write (JSON: standard output when omitted)")
        public = sub.add_parser("public", help="the public outcomes pages as static HTML")
        public.add_argument("--out", type=Path, required=True, help="folder to write (created or updated)")

    def handle(self, *args, what, **options):
        # Read on the replica when there is one (orthoreg.replica); refreshing the facts writes on the primary,
        # and after such a write the command reads the primary (read its own writes).
        with replica.reading_from_replica():
            facts.refresh()  # once, at the top: a command reports on everything recorded before it started
            if what == "cohort":
                return self.cohort(options)
            if what == "case":
                return self.case(options)
            if what == "options":
                return self.options(options)
            return self.public(options)

    # -------------------------------------------------------------------------------------------- cohort
    def cohort(self, options):
        params = {}
        for name in FIELD_NAMES:
            for key in (name, VS_PREFIX + name):
                value = options.get(key)
                if value not in (None, [], ""):
                    params[key] = value
        ids = set(Clinic.objects.values_list("pk", flat=True))
        try:
            first, second = parse_filters(params, clinic_codes=cohorts.clinic_codes(ids),
                                          consented_only=options["consented_only"])
        except CohortFilterError as exc:
            lines = [f"--{name.replace('_', '-')}: {' '.join(msgs)}" for name, msgs in exc.errors.items()]
            raise CommandError("bad filter values:\n  " + "\n  ".join(lines), returncode=2) from None
        fmt, out = options["format"], options["out"]
        if fmt != "json" and out is None:
            raise CommandError(f"--format {fmt} needs --out FILE", returncode=2)
        report = selectors.report_for(first, second, clinic_ids=ids)
        report = report.with_source(replica.source())  # where it was read, how far behind the replica was
        if fmt == "json":
            data = (json.dumps(report.document(), indent=1, ensure_ascii=False) + "\n").encode()
        elif fmt == "html":
            data = cohort_html(report).encode()
        else:
            data = pdf.cohort_pdf(report)
        title = " vs ".join(r.description for r in report.cohorts) if isinstance(report, ComparisonReport) \
            else report.description
        if out is None:
            self.stdout.write(data.decode(), ending="")
        else:
            write_atomically(out, data)
            self.stderr.write(f"Wrote {out} ({fmt}, {len(data):,} bytes): {title}")
        audit_record(action=AuditEvent.Action.EXPORT, detail=f"command line: cohort report {fmt}: {title}")

    # -------------------------------------------------------------------------------------------- options
    def options(self, options):
        try:
            q = OptionsQuery.parse(options)
        except CohortFilterError as exc:
            lines = [f"--{name.replace('_', '-')}: {' '.join(msgs)}" for name, msgs in exc.errors.items()]
            raise CommandError("bad values:\n  " + "\n  ".join(lines), returncode=2) from None
        fmt, out = options["format"], options["out"]
        if fmt != "json" and out is None:
            raise CommandError(f"--format {fmt} needs --out FILE", returncode=2)
        page = options_for(q, clinic_ids=set(Clinic.objects.values_list("pk", flat=True)))
        if fmt == "json":
            data = (json.dumps(page, indent=1, ensure_ascii=False) + "\n").encode()
        elif fmt == "html":
            data = static_html.options_html(page).encode()
        else:
            data = pdf.options_pdf(page)
        if out is None:
            self.stdout.write(data.decode(), ending="")
        else:
            write_atomically(out, data)
            self.stderr.write(f"Wrote {out} ({fmt}, {len(data):,} bytes): options for {page['description']}")
        audit_record(action=AuditEvent.Action.EXPORT, detail=f"command line: options {fmt}: {page['description']}")

    # -------------------------------------------------------------------------------------------- case
    def case(self, options):
        try:
            episode = Episode.objects.select_related("patient__clinic").get(pk=options["episode_id"])
        except Episode.DoesNotExist:
            raise CommandError(f"no episode {options['episode_id']}", returncode=2) from None
        report = case_reports.case_report(episode)
        if options["format"] == "pdf":
            data = pdf.case_pdf(report)
        else:
            data = case_html(report).encode()
        write_atomically(options["out"], data)
        audit_record(action=AuditEvent.Action.EXPORT, obj=episode,
                     detail=f"command line: case report {options['format']}")
        self.stderr.write(f"Wrote {options['out']} ({options['format']}): case report of {report.initials}, {episode}")

    # -------------------------------------------------------------------------------------------- public
    def public(self, options):
        out = options["out"]
        if out.exists() and not out.is_dir():
            raise CommandError(f"--out: {out} is a file, not a folder", returncode=2)
        if not out.parent.exists():
            raise CommandError(f"--out: the folder {out.parent} does not exist", returncode=2)
        files = public.export_static(out)
        audit_record(action=AuditEvent.Action.EXPORT, detail=f"command line: public outcomes pages to {out}")
        self.stderr.write(f"Wrote {len(files)} files to {out}")
