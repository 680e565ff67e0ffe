"""`orthoreg import redcap ...`: the arguments and the handler of the REDCap subcommand of the `import` command
(interop/management/commands/import.py only dispatches to it).

    orthoreg import redcap --dictionary DD.csv --records RECORDS.csv --mapping MAP.json --clinic CODE
        [--dry-run] [--format json]
    orthoreg import redcap --dictionary DD.csv [--records RECORDS.csv] --suggest-mapping

Exit status 0 when everything was imported (or would be, in a dry run), 2 when anything was refused (nothing
written then) or the input cannot be used.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import CommandError

from orthoreg.registry.selectors import UnknownClinic, clinic_by_code

BAD_INPUT = 2


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("redcap", help="a REDCap project: data dictionary, records and a mapping file")
    p.add_argument("--dictionary", required=True, type=Path, help="the project's data dictionary (CSV)")
    p.add_argument("--records", type=Path, help="the records (REDCap's CSV export, raw values)")
    p.add_argument("--mapping", type=Path, help="the mapping file (JSON, docs/redcap.md)")
    p.add_argument("--clinic", metavar="CODE", help="the clinic the patients belong to")
    p.add_argument("--dry-run", action="store_true", help="check everything and report; write nothing")
    p.add_argument("--format", choices=["text", "json"], default="text", help="json: one summary document")
    p.add_argument("--suggest-mapping", action="store_true",
                   help="print a starting mapping (JSON) made from the dictionary and the records, and stop")


def handle(command, *, dictionary: Path, records: Path | None, mapping: Path | None, clinic: str | None,
           dry_run: bool, format: str, suggest_mapping: bool, **_) -> None:
    # (imported here: the REDCap import's modules would be a tenth of a second of every `orthoreg import`'s
    # start-up, a FHIR import's too)
    from . import redcap

    try:
        if suggest_mapping:
            command.stdout.write(json.dumps(redcap.suggest_mapping(dictionary=dictionary, records=records),
                                            indent=1, ensure_ascii=False))
            return
        missing = [name for name, value in (("--records", records), ("--mapping", mapping), ("--clinic", clinic))
                   if value is None]
        if missing:
            raise CommandError(f"missing {', '.join(missing)} (or --suggest-mapping)", returncode=BAD_INPUT)
        try:
            target = clinic_by_code(clinic)
        except UnknownClinic as exc:
            raise CommandError(str(exc), returncode=BAD_INPUT) from None
        summary = redcap.import_project(dictionary=dictionary, records=records, mapping=mapping, clinic=target,
                                        dry_run=dry_run)
    except redcap.MappingError as exc:
        if format == "json":
            command.stdout.write(json.dumps({"schema": "orthoreg.redcap-import/1", "refused": True, "written": False,
                                             "units": {"mapping": {"created": 0, "updated": 0, "skipped": 0,
                                                                   "errors": exc.problems}}}, indent=1))
        raise CommandError("refused, nothing written:\n" + "\n".join(_line(p) for p in exc.problems),
                           returncode=BAD_INPUT) from None
    if format == "json":
        command.stdout.write(json.dumps(summary.as_dict(), indent=1, ensure_ascii=False))
    else:
        verb = "would be" if dry_run else "were"
        for unit, counts in summary.units.items():
            command.stdout.write(f"{unit:24} {counts.created:>6} created {counts.updated:>6} updated "
                                 f"{counts.skipped:>6} skipped {len(counts.errors):>6} refused")
        for item in summary.not_mapped:
            command.stdout.write(f"not mapped: {item['field']} ({item['form']}, {item['type']}): {item['reason']}")
        if not summary.refused:
            command.stdout.write(f"Everything {verb} imported." if dry_run else "Imported.")
    if summary.refused:
        raise CommandError("refused, nothing written:\n" + "\n".join(_line(e) for e in summary.errors[:50]),
                           returncode=BAD_INPUT)


def _line(problem: dict) -> str:
    loc = problem["location"]
    row = loc.get("row") and f"row {loc['row']}" + (f" (record {loc['record']})" if loc.get("record") else "")
    where = ", ".join(str(v) for v in (loc.get("file"), row, loc.get("field")) if v)
    return f"  {where}: {problem['message']}"
