"""`orthoreg demo` serves with the follow-up worker beside it: invitations really go out (to the outbox it
names), their links point to the port it answers on and open, and stopping the demo stops the worker."""

import email
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import urllib.request

import pytest


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_demo_sends_invitations_to_its_own_port_and_stops_with_its_worker(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in {"ORTHOREG_DATABASE_URL", "ORTHOREG_BASE_URL", "ORTHOREG_EMAIL_URL"}}
    env.update(ORTHOREG_DATA_DIR=str(tmp_path), ORTHOREG_DEMO_PASSWORD="demo-pass-123")
    port = _free_port()
    demo = subprocess.Popen([sys.executable, "-m", "orthoreg", "demo", "--port", str(port), "--cohort", "40"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    outbox = tmp_path / "outbox"
    lines = []
    watchdog = threading.Timer(300, demo.kill)  # a demo that never says what the test waits for fails, not hangs
    watchdog.start()
    try:
        while not any("listening on" in x for x in lines) or not any(" sent, " in x for x in lines):
            line = demo.stdout.readline()  # until the server listens and the worker's first pass says what it sent
            assert line, f"the demo stopped: {lines}"
            lines.append(line)
        said = "".join(lines)
        assert f"Emails to patients are written as files to {outbox}" in said
        assert f"orthoreg listening on http://127.0.0.1:{port}/" in said
        line = next(x for x in lines if " sent, " in x)
        sent = int(re.search(r"(\d+) sent", line).group(1))
        assert sent > 0, line
        files = sorted(outbox.glob("*.eml"))
        assert len(files) == sent
        message = email.message_from_string(files[0].read_text().split("-" * 79)[0].strip())
        body = (message.get_payload(0) if message.is_multipart() else message).get_payload(decode=True).decode()
        [link] = re.findall(rf"http://127\.0\.0\.1:{port}/s/[A-Za-z0-9_-]+/(?!unsubscribe)", body)  # not the unsubscribe link
        with urllib.request.urlopen(link, timeout=60) as page:
            assert page.status == 200 and "Questionnaire 1 of" in page.read().decode()
    finally:
        watchdog.cancel()
        demo.send_signal(signal.SIGTERM)
        demo.communicate(timeout=120)
    assert demo.returncode == 0
    # The worker ran in the demo's own process (its passes are recorded under the demo's process id), which has
    # ended, so the worker has stopped too; its last pass was finished, not cut off.
    with sqlite3.connect(tmp_path / "orthoreg.sqlite3") as db:
        runs = db.execute("SELECT worker, finished_at FROM followup_workerrun ORDER BY id").fetchall()
    assert runs and all(name.endswith(f":{demo.pid}:serve") and finished for name, finished in runs), runs
    with pytest.raises(ProcessLookupError):
        os.kill(demo.pid, 0)
