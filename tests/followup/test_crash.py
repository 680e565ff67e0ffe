"""kill -9 of a real `orthoreg worker` at every step of sending: nothing lost, nothing doubled, every link works.

Runs on the database the suite runs on (CI: SQLite, then PostgreSQL). The worker is stopped at a named step
(orthoreg.followup.failpoints) and killed there with SIGKILL; a new worker then runs at once (no lease to wait
for: the dead process's claims are taken again) and the outbox and the tables are checked.
"""

from __future__ import annotations

import email
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orthoreg.followup import failpoints

ROOT = Path(__file__).resolve().parents[2]
PATIENTS = 3
# On PostgreSQL the workers share the test database (committed rows: a transactional test); on SQLite they share
# a file of their own (the suite's SQLite test database lives in memory).
pytestmark = pytest.mark.django_db(transaction=True)
LINK = re.compile(r"http://testserver/s/([A-Za-z0-9_-]{43})/")


def _postgres() -> bool:
    from django.conf import settings

    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


@pytest.fixture(scope="module")
def sqlite_template(tmp_path_factory):
    """A migrated SQLite file, copied for each test (migrating once saves time)."""
    if _postgres():
        return None
    folder = tmp_path_factory.mktemp("crash-template")
    path = folder / "template.sqlite3"
    env = {**os.environ, "ORTHOREG_DATABASE_URL": f"sqlite:///{path}", "ORTHOREG_DATA_DIR": str(folder)}
    subprocess.run([sys.executable, "-m", "orthoreg", "migrate", "--verbosity", "0"], env=env, check=True,
                   cwd=ROOT, timeout=600)
    return path


class World:
    """A database, a data directory and an outbox that real worker processes share with the test."""

    def __init__(self, env: dict, outbox: Path, marker: Path):
        self.env, self.outbox, self.marker = env, outbox, marker

    def helper(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "tests.followup.crash_world", *args], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def state(self) -> dict:
        return json.loads(self.helper("state"))

    def worker(self, *args: str, env: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "orthoreg", "worker", *args], env={**self.env, **(env or {})},
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def worker_killed_at(self, step: str, **extra) -> None:
        """Start a looping worker that stops at `step`, wait until it is there, and kill -9 it."""
        process = self.worker("--interval", "3600", env={"ORTHOREG_FAILPOINT": step,
                                                         "ORTHOREG_FAILPOINT_FILE": str(self.marker), **extra})
        deadline = time.monotonic() + 240
        while not self.marker.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, f"the worker never reached {step}"
            time.sleep(0.1)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)  # reaped: its pid no longer exists
        assert process.returncode == -signal.SIGKILL

    def worker_once(self, env: dict | None = None) -> str:
        process = self.worker("--once", env=env)
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        return out

    def emails(self) -> list[email.message.Message]:
        return [email.message_from_string(p.read_text().split("-" * 79)[0].strip())
                for p in sorted(self.outbox.glob("*.eml"))]


@pytest.fixture
def world(request, tmp_path, sqlite_template):
    if _postgres():
        from django.db import connection

        db = connection.settings_dict
        url = f"postgresql://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    else:
        path = tmp_path / "crash.sqlite3"
        shutil.copy(sqlite_template, path)
        url = f"sqlite:///{path}"
    outbox = tmp_path / "outbox"
    env = {**os.environ, "ORTHOREG_DATABASE_URL": url, "ORTHOREG_DATA_DIR": str(tmp_path),
           "ORTHOREG_EMAIL_URL": f"file://{outbox}", "ORTHOREG_BASE_URL": "http://testserver"}
    env.pop("ORTHOREG_FAILPOINT", None)
    found = World(env, outbox, tmp_path / "failpoint-reached")
    found.helper("seed", str(PATIENTS))
    return found


def _body(message) -> str:
    part = message.get_payload(0) if message.is_multipart() else message
    return part.get_payload(decode=True).decode()


@pytest.mark.parametrize("step", failpoints.ALL)
def test_kill_9_at_every_step_loses_nothing_and_doubles_nothing(world, step):
    world.worker_killed_at(step)
    left = len(world.emails())
    assert left == (1 if step == failpoints.AFTER_SEND else 0)  # only once it is in the outbox has it left
    world.worker_once()  # at once: no lease to wait for

    state = world.state()
    messages = world.emails()
    ids = [m["X-Orthoreg-Invitation"] for m in messages]
    assert len(ids) == PATIENTS and len(set(ids)) == PATIENTS, ids  # nothing lost, nothing doubled
    assert {(i["status"], i["sends"]) for i in state["invitations"]} == {("sent", 1)}
    assert not [a for a in state["attempts"] if a["status"] == "started"]
    tokens = [LINK.findall(_body(m))[0] for m in messages]
    opened = json.loads(world.helper("links", *tokens))
    assert sorted(opened.values()) == sorted(int(i) for i in ids), opened  # every emailed link opens its survey
    if step == failpoints.AFTER_SEND:  # the email that left was recognised, not sent again
        assert any(a["status"] == "sent" for a in state["attempts"])
    if step in (failpoints.AFTER_TOKEN_COMMIT, failpoints.DURING_SEND):  # recorded, never left: sent once, later
        assert [a["status"] for a in state["attempts"]].count("not_sent") == 1


def test_kill_9_while_the_mail_server_has_the_message_is_possibly_sent_and_not_sent_again(world):
    """SMTP cannot be asked afterwards whether a message was taken: the worker is killed while the mail server
    holds the message; the next worker counts it as possibly sent and does not send it again."""
    from aiosmtpd.controller import Controller

    received: list[email.message.Message] = []
    marker = world.marker

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            import asyncio

            received.append(email.message_from_bytes(envelope.content))
            if len(received) == 1:  # the first message: hold the answer until the worker is gone
                marker.write_text("smtp")
                for _ in range(600):
                    if getattr(Handler, "release", False):
                        break
                    await asyncio.sleep(0.1)
            return "250 OK"

    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    smtp = {"ORTHOREG_EMAIL_URL": f"smtp://127.0.0.1:{port}?timeout=60"}
    try:
        world.worker_killed_at("none", **smtp)
        Handler.release = True
        world.worker_once(env=smtp)
    finally:
        controller.stop()
    ids = [m["X-Orthoreg-Invitation"] for m in received]
    assert len(ids) == PATIENTS and len(set(ids)) == PATIENTS, ids
    state = world.state()
    assert [a["status"] for a in state["attempts"]].count("possibly_sent") == 1
    assert {(i["status"], i["sends"]) for i in state["invitations"]} == {("sent", 1)}
    tokens = [LINK.findall(_body(m))[0] for m in received]
    opened = json.loads(world.helper("links", *tokens))
    assert sorted(opened.values()) == sorted(int(i) for i in ids), opened
