"""orthoreg import <what> ...: a thin dispatcher; each subcommand's arguments and handler live in its own module."""

from django.core.management.base import BaseCommand

from orthoreg.interop.fhir import commands as fhir_commands

HANDLERS = {"fhir": fhir_commands.handle_import}


class Command(BaseCommand):
    help = "Imports. 'fhir': FHIR R4 Bundles, resources and Bulk Data ndjson."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="what", required=True)
        fhir_commands.add_import_parser(sub)

    def handle(self, *args, what, **options):
        return HANDLERS[what](self, options)
