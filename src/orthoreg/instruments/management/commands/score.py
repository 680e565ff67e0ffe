"""orthoreg score CODE --answers JSON: score one answer set and print the result as JSON."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from orthoreg.instruments.definitions import UnknownInstrument
from orthoreg.instruments.scoring import score
from orthoreg.instruments.types import DefinitionError

from ._common import fail, load_json, read_text

NOT_SCORED = 1


class Command(BaseCommand):
    help = ("Score one set of answers. ANSWERS is a JSON list in item order (null for not applicable or "
            "unanswered), given inline or as @FILE (@- reads standard input). Prints the score object as JSON. "
            "Exit status: 0 scored; 1 answers valid but too few for a score; 2 invalid input (the item and the "
            "reason are printed on standard error).")

    def add_arguments(self, parser):
        parser.add_argument("code", help="instrument code, e.g. nprs, faam-adl (see `orthoreg instruments list`)")
        parser.add_argument("--answers", required=True, metavar="JSON",
                            help="e.g. '[7]' for nprs, or @answers.json")

    def handle(self, *args, code: str, answers: str, **options):
        where = "--answers"
        if answers.startswith("@"):
            where = answers[1:] or "-"
            answers = read_text(where)
        data = load_json(answers, where)
        if not isinstance(data, list):
            raise fail(f"{where}: expected a JSON list of answers in item order, got {type(data).__name__}")
        try:
            result = score(code, data)
        except UnknownInstrument as exc:
            raise fail(str(exc)) from None
        except DefinitionError as exc:
            raise fail(f"the {code} definition cannot be used: {exc}") from None
        self.stdout.write(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
        if result.item_errors:
            raise fail("invalid answers:\n" + "\n".join(f"  {e}" for e in result.item_errors))
        if not result.valid:
            raise CommandError(result.reason, returncode=NOT_SCORED)
