"""Emailed links follow the address the server answers on unless ORTHOREG_BASE_URL says otherwise; an address
that cannot work is a startup warning."""

import os
import socket
import subprocess
import sys

import pytest

from orthoreg import baseurl
from orthoreg.followup import services


@pytest.fixture
def unset(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    settings.BASE_URL = ""
    settings.BEHIND_PROXY = False
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", "registry.example.org"]
    return settings


def test_links_follow_the_port_the_server_answers_on(unset):
    assert baseurl.base_url() == "http://127.0.0.1:8000"  # nothing known yet: the default, and a warning says so
    assert "ORTHOREG_BASE_URL is not set" in baseurl.problems()[0]
    baseurl.record_served("127.0.0.1", 8123)
    assert services.survey_url("abc") == "http://127.0.0.1:8123/s/abc/"
    assert baseurl.problems() == []


def test_the_setting_wins(unset):
    unset.BASE_URL = "https://registry.example.org"
    baseurl.record_served("127.0.0.1", 8123)
    assert services.survey_url("abc") == "https://registry.example.org/s/abc/"


@pytest.mark.parametrize(("base", "host", "port", "words"), [
    ("http://127.0.0.1:8000", "127.0.0.1", 8123, "port 8000"),
    ("http://localhost:8000", "127.0.0.1", 8000, ""),
    ("http://127.0.0.1:8000", "0.0.0.0", 8000, "loopback address that opens only on this machine"),
    ("http://127.0.0.1:8000", "192.0.2.10", 8000, "loopback address"),
    ("https://elsewhere.example.com", "127.0.0.1", 8000, "not in ORTHOREG_ALLOWED_HOSTS"),
    ("https://registry.example.org", "127.0.0.1", 8000, ""),
    ("registry.example.org", "127.0.0.1", 8000, "is not a web address"),
    ("https://registry.example.org/s/", "127.0.0.1", 8000, "path"),
])
def test_a_base_url_that_cannot_work_is_a_warning(unset, base, host, port, words):
    unset.BASE_URL = base
    found = baseurl.problems(host, port)
    if words:
        assert len(found) >= 1 and words in " ".join(found), found
    else:
        assert found == []


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_warns_at_startup_about_links_to_another_port(tmp_path):
    env = {**os.environ, "ORTHOREG_DATA_DIR": str(tmp_path), "ORTHOREG_BASE_URL": "http://127.0.0.1:8000"}
    env.pop("ORTHOREG_DATABASE_URL", None)
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "orthoreg", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()  # the first line comes once the server is listening
        assert f"listening on http://127.0.0.1:{port}/" in line
    finally:
        server.terminate()
        out, err = server.communicate(timeout=60)
    assert f"Warning: links in emails point to port 8000 (http://127.0.0.1:8000) but the server answers on port " \
           f"{port}" in err
    assert server.returncode == 0, err  # SIGTERM stops it cleanly
