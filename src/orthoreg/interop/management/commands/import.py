"""orthoreg import fhir|redcap ...: a thin dispatcher; each format's arguments and handler live in its own module
(interop/fhir/commands.py, interop/redcap_command.py)."""

from django.core.management.base import BaseCommand

from orthoreg.interop import redcap_command
from orthoreg.interop.fhir import commands as fhir_commands

HANDLERS = {
    "fhir": lambda command, options: fhir_commands.handle_import(command, options),
    "redcap": lambda command, options: redcap_command.handle(command, **options),
}


class Command(BaseCommand):
    help = ("Imports. 'fhir': FHIR R4 Bundles, resources and Bulk Data ndjson; 'redcap': a REDCap project (data "
            "dictionary, records, mapping).")
    # Django's system checks import every view (scipy, pydicom, ...): seconds of each import's start-up, for
    # checks of the web site an import does not use (`orthoreg serve` and `orthoreg manage check` run them).
    requires_system_checks: list = []

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="what", required=True)
        fhir_commands.add_import_parser(sub)
        redcap_command.add_parser(sub)

    def handle(self, *args, what, **options):
        return HANDLERS[what](self, options)
