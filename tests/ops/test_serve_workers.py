"""`orthoreg serve --workers 2`: two web processes on one socket, for real. Patients answer their questionnaires
concurrently while one web process is killed with SIGKILL; the supervisor starts another and every answer the
server accepted is stored exactly once (a patient whose connection broke looks again, as a browser would, and
answers the page only if it is still open)."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from http.cookies import SimpleCookie
from pathlib import Path

import pytest

from tests.formfill import form_body, form_fields

from .conftest import CLI, cli_env

ROOT = Path(__file__).resolve().parents[2]
PATIENTS = 10


class Patient:
    """One patient's browser: cookies, and which pages the server confirmed it stored."""

    def __init__(self, port: int, token: str):
        self.port, self.path, self.cookies = port, f"/s/{token}/", {}
        self.confirmed: set[str] = set()  # assessment ids the server stored (a redirect, or the page moved on)
        self.broken = 0  # requests that died with the killed process

    def request(self, method, body=None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Host": f"127.0.0.1:{self.port}"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Referer"] = f"http://127.0.0.1:{self.port}{self.path}"
        try:
            connection.request(method, self.path, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read().decode()
        finally:
            connection.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            for key, morsel in SimpleCookie(header).items():
                self.cookies[key] = morsel.value
        return response.status, text

    def answer_everything(self) -> None:
        pending: str | None = None  # the page posted when the connection broke
        for _ in range(200):
            try:
                status, page = self.request("GET")
            except (OSError, http.client.HTTPException):
                self.broken += 1
                time.sleep(0.05)
                continue
            if status in (302, 410):  # all answered
                if pending:
                    self.confirmed.add(pending)
                return
            assert status == 200, page[:500]
            fields = form_fields(page)
            current = fields["assessment"]
            if pending and pending != current:  # the broken POST was stored: the page moved on
                self.confirmed.add(pending)
            pending = None
            body = form_body({**fields, "action": "submit"})
            try:
                status, text = self.request("POST", body)
            except (OSError, http.client.HTTPException):
                self.broken += 1
                pending = current
                continue
            assert status == 302, text[:2000]
            self.confirmed.add(current)
        raise AssertionError("the questionnaires never ended")


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _world(data_dir, *args) -> str:
    return subprocess.run([sys.executable, "-m", "tests.ops.load_world", *args], env=cli_env(data_dir), cwd=ROOT,
                          capture_output=True, text=True, check=True, timeout=300).stdout


@pytest.mark.skipif(sys.platform == "win32", reason="several web processes need fork")
def test_two_web_processes_lose_and_double_nothing_when_one_is_killed(data_dir):
    tokens = json.loads(_world(data_dir, "seed", str(PATIENTS)))
    assert len(tokens) == PATIENTS
    server = subprocess.Popen([*CLI, "serve", "--port", "0", "--workers", "2", "--threads", "4"],
                              env=cli_env(data_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)/ with 2 web processes", line)
        assert match, line + server.stderr.read() if server.poll() is not None else line
        port = int(match.group(1))
        for _ in range(100):
            if len(_children(server.pid)) == 2:
                break
            time.sleep(0.1)
        web = _children(server.pid)
        assert len(web) == 2
        patients = [Patient(port, t) for t in tokens]
        failures: list[BaseException] = []

        def run(patient):
            try:
                patient.answer_everything()
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=run, args=(p,)) for p in patients]
        for t in threads:
            t.start()
        while sum(len(p.confirmed) for p in patients) < PATIENTS:  # well into the load
            time.sleep(0.01)
        server_killed = web[0]
        os.kill(server_killed, signal.SIGKILL)
        for t in threads:
            t.join(timeout=300)
        assert not failures, failures
        for _ in range(300):  # the supervisor starts another once it has reaped the killed one
            replaced = _children(server.pid)
            if server_killed not in replaced and len(replaced) == 2:
                break
            time.sleep(0.1)
        assert server_killed not in replaced and len(replaced) == 2  # the supervisor started another
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            _, err = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            _, err = server.communicate()
    assert f"The web process {server_killed} ended (signal 9); starting another." in err
    stored = json.loads(_world(data_dir, "count"))
    accepted = sum(len(p.confirmed) for p in patients)
    assert stored["responses"] == accepted == stored["answered_assessments"]
    assert stored["most_per_questionnaire"] == 1  # nothing doubled
    assert accepted > PATIENTS  # every patient answered every page (several per visit) of the 6-month visit
