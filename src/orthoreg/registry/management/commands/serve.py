"""orthoreg serve [--host H] [--port N]: a production WSGI server (waitress), static files included."""

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve orthoreg with waitress (static files are served by the app itself)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--threads", type=int, default=8)

    def handle(self, *args, host, port, threads, **options):
        from waitress import serve

        from orthoreg.wsgi import application

        self.stdout.write(f"orthoreg listening on http://{host}:{port}/ (Ctrl+C to stop)")
        self.stdout.flush()
        serve(application, host=host, port=port, threads=threads, ident="orthoreg",
              **settings.WAITRESS_PROXY_OPTIONS)  # believe the reverse proxy's forwarding headers
