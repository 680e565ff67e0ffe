"""orthoreg serve [--host H] [--port N] [--with-worker]: a production WSGI server (waitress), static files included.

The server records the address it answers on in the data directory (emailed links follow it unless
ORTHOREG_BASE_URL says otherwise) and warns at startup when the links' address cannot work.
"""

import os
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connections
from waitress.server import create_server

from orthoreg import baseurl
from orthoreg.followup.management.commands.worker import describe
from orthoreg.followup.services import HOST, worker_loop
from orthoreg.wsgi import application


class Command(BaseCommand):
    help = "Serve orthoreg with waitress (static files are served by the app itself)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000, help="0: any free port")
        parser.add_argument("--threads", type=int, default=8)
        parser.add_argument("--with-worker", action="store_true",
                            help="also run the follow-up worker in this process, stopped with the server")
        parser.add_argument("--worker-interval", type=float, default=60.0, help="seconds between worker passes")

    def handle(self, *args, host, port, threads, with_worker, worker_interval, **options):
        def on_term(signum, frame):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, on_term)
        server = create_server(application, host=host, port=port, threads=threads, ident="orthoreg",
                               **settings.WAITRESS_PROXY_OPTIONS)  # believe the reverse proxy's forwarding headers
        stop = threading.Event()
        worker = None
        try:
            url = baseurl.record_served(host, server.effective_port)
            for problem in baseurl.problems(host, server.effective_port):
                self.stderr.write(f"Warning: {problem}")
            self.stderr.flush()
            if with_worker:
                worker = threading.Thread(target=self._worker, args=(stop, worker_interval), name="orthoreg-worker",
                                          daemon=True)
                worker.start()
            self.stdout.write(f"orthoreg listening on {url}/ (Ctrl+C to stop)")
            link, source = baseurl.base_url_and_source()
            self.stdout.write(f"Links in emails point to {link} ({source}).")
            if with_worker:
                self.stdout.write(f"The follow-up worker runs beside the server, every {worker_interval:g} s.")
            self.stdout.flush()
            server.run()
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            server.close()
            if worker is not None:
                worker.join(timeout=30)  # it stops after the email it is sending; a daemon thread in any case

    def _worker(self, stop: threading.Event, interval: float) -> None:
        def report(run, seconds):
            self.stdout.write(describe(run, seconds))
            self.stdout.flush()

        try:
            worker_loop(name=f"{HOST}:{os.getpid()}:serve", interval=interval, stop=stop, report=report)
        finally:
            connections.close_all()
