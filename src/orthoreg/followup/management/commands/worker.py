"""orthoreg worker [--once] [--interval S] [--batch N]: send what is due, in a loop.

Several workers may run at once (on PostgreSQL, or sharing one SQLite file): each invitation is claimed by
exactly one of them before it is sent. Each pass first re-plans, in bounded batches, the episodes of protocols
saved since the last pass.
"""

import os
import signal
import socket
import threading

from django.core.management.base import BaseCommand

from orthoreg import baseurl
from orthoreg.followup.services import worker_loop


def describe(run, seconds: float) -> str:
    replanned = f"{run.replanned} episodes re-planned, " if run.replanned else ""
    return (f"{run.started_at:%Y-%m-%d %H:%M:%S} {run.worker}: {replanned}{run.invitations_created} invitations "
            f"planned, {run.sent} sent, {run.reminders} reminders, {run.failures} failures, {run.expired} expired "
            f"({seconds:.1f} s)")


class Command(BaseCommand):
    help = "Send due follow-up invitations and reminders (a loop; --once for one pass)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one pass, then exit")
        parser.add_argument("--interval", type=float, default=60.0, help="seconds between passes")
        parser.add_argument("--batch", type=int, default=500, help="invitations claimed at a time")
        parser.add_argument("--name", default=f"{socket.gethostname()}:{os.getpid()}")

    def handle(self, *args, once, interval, batch, name, **options):
        url, source = baseurl.base_url_and_source()
        self.stdout.write(f"Links in emails point to {url} ({source}).")
        for problem in baseurl.problems():
            self.stderr.write(f"Warning: {problem}")
        stop = threading.Event()
        if not once:
            def on_signal(signum, frame):
                stop.set()

            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)

        def report(run, seconds):
            self.stdout.write(describe(run, seconds))
            self.stdout.flush()

        shown: dict[int, int] = {}

        def replan_progress(job):  # a line at each tenth of a re-planning job
            tenth = job.percent // 10
            if shown.get(job.pk) != tenth:
                shown[job.pk] = tenth
                self.stdout.write(f"Re-planning after the protocol '{job.protocol}' was saved: {job.done} of "
                                  f"{job.total} episodes ({job.percent}%)")
                self.stdout.flush()

        worker_loop(name=name, interval=interval, batch=batch, stop=stop, report=report, once=once,
                    replan_progress=replan_progress)
