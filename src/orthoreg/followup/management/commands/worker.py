"""orthoreg worker [--once] [--interval S] [--batch N]: send what is due, in a loop.

Several workers may run at once (on PostgreSQL, or sharing one SQLite file): each invitation is claimed by
exactly one of them before it is sent.
"""

import os
import signal
import socket
import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from orthoreg.followup.services import worker_pass


class Command(BaseCommand):
    help = "Send due follow-up invitations and reminders (a loop; --once for one pass)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one pass, then exit")
        parser.add_argument("--interval", type=float, default=60.0, help="seconds between passes")
        parser.add_argument("--batch", type=int, default=500, help="invitations claimed at a time")
        parser.add_argument("--name", default=f"{socket.gethostname()}:{os.getpid()}")

    def handle(self, *args, once, interval, batch, name, **options):
        self._stop = False
        if not once:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        while True:
            close_old_connections()
            started = time.monotonic()
            run = worker_pass(worker=name, batch=batch)
            self.stdout.write(
                f"{run.started_at:%Y-%m-%d %H:%M:%S} {name}: {run.invitations_created} invitations planned, "
                f"{run.sent} sent, {run.reminders} reminders, {run.failures} failures, {run.expired} expired "
                f"({time.monotonic() - started:.1f} s)")
            self.stdout.flush()
            if once or self._stop:
                return
            deadline = time.monotonic() + interval
            while time.monotonic() < deadline and not self._stop:
                time.sleep(min(1.0, interval))
            if self._stop:
                return

    def _on_signal(self, signum, frame):
        self._stop = True
