"""orthoreg serve [--host H] [--port N] [--workers N] [--with-worker]: a production WSGI server, static files included.

Several web processes (`--workers`, default: the number of cores), each a waitress server with its threads, share
one listening socket that this process opens; it supervises them and starts a new one when one dies (killed, out of
memory), so a crash costs the requests that process was serving, nothing more. The follow-up worker
(`--with-worker`) runs exactly once beside them, in a process of its own (restarted the same way). With one web
process (or where processes cannot be forked) everything runs in this process, the worker in a thread.

The server records the address it answers on in the data directory (emailed links follow it unless
ORTHOREG_BASE_URL says otherwise) and warns at startup when the links' address cannot work. The reverse proxy
settings (ORTHOREG_BEHIND_PROXY, ORTHOREG_TRUSTED_PROXY) apply to every web process alike.
"""

import os
import signal
import socket
import sys
import threading
import time
import traceback

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from waitress.server import create_server

from orthoreg import baseurl
from orthoreg.followup.management.commands.worker import describe
from orthoreg.followup.services import HOST, worker_loop
from orthoreg.wsgi import application

RESPAWN_PAUSE = 1.0  # seconds before restarting a process that died within RESPAWN_PAUSE of its start


def default_workers() -> int:
    """The number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def listen(host: str, port: int) -> socket.socket:
    """The listening socket every web process accepts on (port 0: any free port)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CommandError(f"--host {host}: {exc}", returncode=2) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror}", returncode=2) from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class Command(BaseCommand):
    help = "Serve orthoreg: several web processes (waitress), static files served by the app itself."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000, help="0: any free port")
        parser.add_argument("--workers", type=int, default=None,
                            help=f"web processes (default: the number of cores, here {default_workers()})")
        parser.add_argument("--threads", type=int, default=8, help="threads of each web process")
        parser.add_argument("--with-worker", action="store_true",
                            help="also run the follow-up worker (once, whatever the number of web processes), "
                                 "stopped with the server")
        parser.add_argument("--worker-interval", type=float, default=60.0, help="seconds between worker passes")

    def handle(self, *args, host, port, threads, with_worker, worker_interval, workers=None, **options):
        self.server_pid = os.getpid()  # the worker's passes are recorded under the server's process id
        self.stopping = False

        def stop_early(signum, frame):  # a SIGTERM while starting: stop as soon as the roles are set up
            self.stopping = True

        signal.signal(signal.SIGTERM, stop_early)

        workers = default_workers() if workers is None else workers
        if workers < 1 or threads < 1:
            raise CommandError("--workers and --threads must be at least 1", returncode=2)
        forking = workers > 1 and hasattr(os, "fork")
        sock = listen(host, port)
        effective_port = sock.getsockname()[1]
        url = baseurl.record_served(host, effective_port)
        for problem in baseurl.problems(host, effective_port):
            self.stderr.write(f"Warning: {problem}")
        self.stderr.flush()
        processes = f"{workers} web processes" if forking else "1 web process"
        self.stdout.write(f"orthoreg listening on {url}/ with {processes} of {threads} threads (Ctrl+C to stop)")
        link, source = baseurl.base_url_and_source()
        self.stdout.write(f"Links in emails point to {link} ({source}).")
        if with_worker:
            self.stdout.write(f"The follow-up worker runs beside the server, every {worker_interval:g} s.")
        self.stdout.flush()
        connections.close_all()  # nothing opened here is shared with a process started from here
        if forking:
            self._supervise(sock, application, workers, threads, with_worker, worker_interval)
        else:
            self._single(sock, application, threads, with_worker, worker_interval)

    # ------------------------------------------------------------------------------------------ one process

    def _single(self, sock, application, threads, with_worker, worker_interval) -> None:
        stop = threading.Event()
        worker = None
        if with_worker:
            worker = threading.Thread(target=self._worker, args=(stop, worker_interval), name="orthoreg-worker",
                                      daemon=True)
            worker.start()
        try:
            self._web(sock, application, threads)
        finally:
            stop.set()
            if worker is not None:
                worker.join(timeout=30)  # it stops after the email it is sending; a daemon thread in any case

    # ------------------------------------------------------------------------------------------ several

    def _supervise(self, sock, application, workers, threads, with_worker, worker_interval) -> None:
        children: dict[int, tuple[str, float]] = {}  # pid -> (role, started)

        def start(role: str) -> None:
            if self.stopping:
                return
            # SIGTERM is held back around the fork: the child must not run the supervisor's handler (nor lose a
            # SIGTERM meant for it), and the supervisor must know the child before it forwards one
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            pid = os.fork()
            if pid == 0:  # the child: serve (or send) until told to stop, never return into this loop
                signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a SIGTERM before it sets its own simply ends it
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
                code = 0
                try:
                    signal.signal(signal.SIGINT, signal.default_int_handler)
                    if role == "web":
                        self._web(sock, application, threads)
                    else:
                        sock.close()
                        self._worker_process(worker_interval)
                except KeyboardInterrupt:
                    pass
                except BaseException:
                    traceback.print_exc()
                    code = 1
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            children[pid] = (role, time.monotonic())
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})

        def on_stop(signum, frame):
            self.stopping = True
            for pid in list(children):
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        for _ in range(workers):
            start("web")
        if with_worker:
            start("worker")
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            role, started = children.pop(pid, (None, 0.0))
            if role is None or self.stopping:
                continue
            how = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                   else f"exit status {os.WEXITSTATUS(status)}")
            self.stderr.write(f"The {role} process {pid} ended ({how}); starting another.")
            self.stderr.flush()
            if time.monotonic() - started < RESPAWN_PAUSE:
                time.sleep(RESPAWN_PAUSE)  # one that dies at once must not make this a busy loop
            start(role)
        sock.close()

    # ------------------------------------------------------------------------------------------ the roles

    def _web(self, sock, application, threads) -> None:
        """One waitress server on the shared socket until SIGTERM or Ctrl+C."""
        def on_term(signum, frame):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, on_term)
        if self.stopping:  # told to stop while starting
            return
        server = create_server(application, sockets=[sock], threads=threads, ident="orthoreg",
                               **settings.WAITRESS_PROXY_OPTIONS)  # believe the reverse proxy's forwarding headers
        try:
            server.run()
        except KeyboardInterrupt:
            pass
        finally:
            server.close()

    def _worker_process(self, interval: float) -> None:
        stop = threading.Event()

        def on_term(signum, frame):
            stop.set()

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        self._worker(stop, interval)

    def _worker(self, stop: threading.Event, interval: float) -> None:
        def report(run, seconds):
            self.stdout.write(describe(run, seconds))
            self.stdout.flush()

        try:
            worker_loop(name=f"{HOST}:{self.server_pid}:serve", interval=interval, stop=stop, report=report)
        finally:
            connections.close_all()
