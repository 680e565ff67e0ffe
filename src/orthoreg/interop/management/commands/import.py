"""orthoreg import redcap ... (interop/redcap_command.py): a thin dispatcher to each format's own module."""

from django.core.management.base import BaseCommand

from orthoreg.interop import redcap_command

HANDLERS = {"redcap": redcap_command.handle}


class Command(BaseCommand):
    help = "Imports: 'redcap' a REDCap project (data dictionary, records, mapping)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="what", required=True)
        redcap_command.add_parser(sub)

    def handle(self, *args, what, **options):
        return HANDLERS[what](self, **options)
