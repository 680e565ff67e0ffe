"""orthoreg instruments list | show CODE | install PACK.json | import-redcap FILE.csv|FILE.zip --code CODE
--better higher|lower | review CODE --by USER"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from orthoreg.instruments import definitions, redcap, services
from orthoreg.instruments.definitions import UnknownInstrument
from orthoreg.instruments.types import DefinitionError, format_number

from ._common import fail, load_json, read_bytes, read_text


class Command(BaseCommand):
    help = "List, show and install questionnaire instruments; import a REDCap data dictionary."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        p = sub.add_parser("list", help="every instrument with its licence status")
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")
        p = sub.add_parser("show", help="an instrument's items, scores and licence")
        p.add_argument("code")
        p.add_argument("--json", action="store_true",
                       help="print the Questionnaire JSON (a starting point for an instrument pack)")
        p = sub.add_parser("install", help="install an instrument pack (licensed text for a shipped instrument) "
                                           "or a site definition, from a FHIR Questionnaire JSON file")
        p.add_argument("path", metavar="PACK.json")
        p.add_argument("--replace", action="store_true", help="replace an installed pack or definition")
        p = sub.add_parser("import-redcap", help="make an instrument from a REDCap data dictionary CSV or a REDCap "
                                                 "instrument ZIP (installed as a draft: see review)")
        p.add_argument("path", metavar="FILE.csv|FILE.zip")
        p.add_argument("--better", action="append", metavar="higher|lower|SCORE=higher|lower",
                       help="which way each score is better (required unless the dictionary says so: a PHQ-type "
                            "scale is lower-is-better); repeat SCORE=... for scores that differ")
        p.add_argument("--code", required=True, help="the new instrument's code (lower-case letters, digits, -)")
        p.add_argument("--form", help="the form to import when the dictionary has several")
        p.add_argument("--title", help="the instrument's title (default: from the form name)")
        p.add_argument("--output", metavar="FILE.json", help="write the definition to this file, not install it")
        p.add_argument("--dry-run", action="store_true", help="only print the report")
        p.add_argument("--replace", action="store_true", help="replace an installed definition of that code")
        p = sub.add_parser("review", help="record that a person reviewed an imported instrument (items, scores, "
                                          "which way is better): only then is it sent to patients")
        p.add_argument("code")
        p.add_argument("--by", required=True, metavar="USERNAME", help="the person who reviewed it")
        p.add_argument("--note", default="", help="what was checked")

    def handle(self, *args, action: str, **options):
        getattr(self, "do_" + action.replace("-", "_"))(**options)

    # --- list / show ---------------------------------------------------------------------------------------

    def do_list(self, *, json: bool = False, **_):
        defs = definitions.all_definitions()
        if json:
            self.stdout.write(_json([_summary(d) for d in defs]))
            return
        rows = [(d.code, d.version, str(len(d.items)), ", ".join(s.code for s in d.subscales) or "-",
                 d.licence_status, "yes" if d.sendable else "no") for d in defs]
        self._table(("code", "version", "items", "scores", "item text", "sendable"), rows)

    def do_show(self, *, code: str, json: bool = False, **_):
        d = _definition(code)
        if json:
            self.stdout.write(_json(d.resource))
            return
        w = self.stdout.write
        w(f"{d.code} {d.version}: {d.title}")
        w(f"  licence: {d.licence.name}" + (f" ({d.licence.holder})" if d.licence.holder else ""))
        w(f"  item text: {d.licence_status}; sent to patients: {'yes' if d.sendable else 'no'}")
        if not d.reviewed:
            w(f"  awaiting review by a person: `orthoreg instruments review {d.code} --by USERNAME`")
        if d.pack_error:
            w(f"  installed pack ignored: {d.pack_error}")
        if d.scoring_source:
            w(f"  scoring source: {d.scoring_source}")
        if d.description:
            w(f"  {d.description}")
        w("scores:")
        for s in d.subscales:
            mcid = "" if s.mcid is None else f"; MCID {format_number(s.mcid)}" + (
                f" or {format_number(s.mcid_percent)}%" if s.mcid_percent is not None else "")
            w(f"  {s.code}{' (primary)' if s.primary else ''}: {s.title}, {format_number(s.minimum)} to "
              f"{format_number(s.maximum)}, {s.better} is better{mcid}")
            w(f"    {s.describe_rule()}")
        if not d.subscales:
            w("  none: responses are stored unscored")
        w("items:")
        for item in d.items:
            w(f"  {item.number:>2}. [{item.link_id}] {item.text}")
            w(f"      answer: {item.describe_allowed()}")

    # --- install ----------------------------------------------------------------------------------------------

    def do_install(self, *, path: str, replace: bool = False, **_):
        resource = load_json(read_text(path), path)
        try:
            d = services.instrument_install(resource=resource, replace=replace)
        except DefinitionError as exc:
            raise fail(f"{path}: not installed:\n" + "\n".join(f"  {e}" for e in exc.errors)) from None
        kind = "licensed text" if d.origin == "shipped" else "site definition"
        self.stdout.write(self.style.SUCCESS(f"Installed {kind} for {d.code} ({len(d.items)} items): "
                                             f"{d.licence_status}."))

    # --- REDCap -----------------------------------------------------------------------------------------------

    def do_import_redcap(self, *, path: str, code: str, form=None, title=None, output=None, dry_run=False,
                         replace=False, better=None, **_):
        try:
            result = redcap.import_data_dictionary(redcap.dictionary_text(read_bytes(path)), code=code, form=form,
                                                   title=title, better=redcap.parse_better(better))
        except redcap.RedcapError as exc:
            raise fail(f"{path}: {exc}") from None
        self._table(("row", "field", "type", "result", "why"),
                    [(str(r.row or "-"), r.field, r.field_type, r.status, r.message) for r in result.rows])
        mapped = sum(r.status != "skipped" for r in result.rows)
        self.stdout.write(f"{mapped} of {len(result.rows)} rows mapped from form {result.form!r}.")
        if not result.ok:
            raise fail(f"{path}: no definition made:\n" + "\n".join(f"  {e}" for e in result.errors))
        if dry_run:
            return
        if output:
            with open(output, "w", encoding="utf-8") as fh:
                fh.write(_json(result.resource) + "\n")
            self.stdout.write(self.style.SUCCESS(f"Wrote {output}; install it with `orthoreg instruments install "
                                                 f"{output}`."))
            return
        try:
            d = services.instrument_install(resource=result.resource, replace=replace)
        except DefinitionError as exc:
            raise fail("not installed:\n" + "\n".join(f"  {e}" for e in exc.errors)) from None
        self.stdout.write(self.style.SUCCESS(f"Installed site definition {d.code} ({len(d.items)} items) as a draft: "
                                             "not sent to patients until a person reviews it with `orthoreg "
                                             f"instruments review {d.code} --by USERNAME`."))

    def do_review(self, *, code: str, by: str, note: str = "", **_):
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.filter(username=by, is_active=True).first()
        if user is None:
            raise fail(f"--by {by}: no active user of that name")
        try:
            d = services.instrument_review(code=code, actor=user, note=note)
        except DefinitionError as exc:
            raise fail("not reviewed: " + "; ".join(exc.errors)) from None
        self.stdout.write(self.style.SUCCESS(f"{d.code} reviewed by {by}: it may now be sent to patients."))

    def _table(self, header, rows):
        widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
        for row in (header, *rows):
            self.stdout.write("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())


def _definition(code: str):
    try:
        return definitions.get_definition(code)
    except UnknownInstrument as exc:
        raise fail(str(exc)) from None
    except DefinitionError as exc:
        raise fail(f"the {code} definition cannot be used: {exc}") from None


def _summary(d) -> dict:
    return {"code": d.code, "version": d.version, "title": d.title, "items": len(d.items),
            "subscales": [s.code for s in d.subscales], "primary": d.primary.code if d.primary else None,
            "origin": d.origin, "text_status": d.text_status, "licence": d.licence.name, "sendable": d.sendable}


def _json(data) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)
