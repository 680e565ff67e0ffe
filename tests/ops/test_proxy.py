"""The documented deployment, for real: `orthoreg serve` with ORTHOREG_SECURE=1 ORTHOREG_BEHIND_PROXY=1 behind
Debian's nginx terminating TLS (a self-signed certificate made here). The client connects from 127.0.0.2 so its
address differs from the proxy's (127.0.0.1)."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import sqlite3
import ssl
import subprocess
import time
from http.cookies import SimpleCookie
from pathlib import Path

import pytest

from .conftest import CLI, cli_env, free_port, orthoreg

PASSWORD = "correct-horse-battery-9"
CLIENT, OTHER_CLIENT = "127.0.0.2", "127.0.0.3"

NGINX_CONF = """
{user}worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{https_port} ssl;
        ssl_certificate {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;
        location / {{
            proxy_pass http://127.0.0.1:{app_port};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


def _wait_for_port(port: int, process: subprocess.Popen, what: str) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise AssertionError(f"{what} exited: {process.stdout.read() if process.stdout else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{what} did not listen on {port}")


@pytest.fixture
def nginx_binary():
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is not installed (CI installs Debian's nginx: see .ci/run)")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    return path


@pytest.fixture
def proxied_site(data_dir, tmp_path, nginx_binary):
    """orthoreg serve behind nginx with TLS; yields the https port and the data directory."""
    orthoreg("clinic", "create", "east", "--name", "East Clinic", data_dir=data_dir)
    orthoreg("createuser", "doc", "--password", PASSWORD, "--clinic", "east", "--role", "clinician",
             data_dir=data_dir)
    app_port, https_port = free_port(), free_port()
    env = cli_env(data_dir, ORTHOREG_SECURE="1", ORTHOREG_BEHIND_PROXY="1", ORTHOREG_LOGIN_FAILURE_LIMIT="3",
                  ORTHOREG_ALLOWED_HOSTS="127.0.0.1,localhost")
    server = subprocess.Popen([*CLI, "serve", "--host", "127.0.0.1", "--port", str(app_port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    nginx_dir = tmp_path / "nginx"
    nginx_dir.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(nginx_dir / "key.pem"), "-out", str(nginx_dir / "cert.pem")],
                   check=True, capture_output=True)
    conf = nginx_dir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(d=nginx_dir, https_port=https_port, app_port=app_port,
                                      user="user root;\n" if os.geteuid() == 0 else ""))
    nginx = subprocess.Popen([nginx_binary, "-p", str(nginx_dir), "-c", str(conf), "-g", "daemon off;"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_port(app_port, server, "orthoreg serve")
        _wait_for_port(https_port, nginx, "nginx")
        yield https_port, data_dir
    finally:
        for process in (nginx, server):
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Browser:
    """Just enough of a browser: https to nginx from a chosen source address, cookies, no redirects followed."""

    def __init__(self, port: int, source: str):
        self.port, self.source, self.cookies = port, source, {}
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE

    def request(self, method, path, body=None, headers=None):
        connection = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=60,
                                                 source_address=(self.source, 0))
        headers = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Referer"] = f"https://127.0.0.1:{self.port}{path}"
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        connection.close()
        return response, text

    def sign_in(self, username, password, forwarded_for=None):
        from urllib.parse import urlencode

        _, page = self.request("GET", "/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        extra = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        return self.request("POST", "/accounts/login/", urlencode(
            {"csrfmiddlewaretoken": token, "username": username, "password": password}), extra)[0]


def _audit(data_dir: Path, action: str) -> list[str]:
    with sqlite3.connect(data_dir / "orthoreg.sqlite3") as db:
        return [row[0] for row in db.execute(
            "SELECT ip_address FROM accounts_auditevent WHERE action = ? ORDER BY id", [action])]


def test_pages_are_served_through_the_proxy_and_the_audit_records_the_client(proxied_site):
    port, data_dir = proxied_site
    browser = Browser(port, CLIENT)
    response, page = browser.request("GET", "/accounts/login/")
    assert response.status == 200, (response.status, response.getheader("Location"))
    assert "csrfmiddlewaretoken" in page
    assert "Strict-Transport-Security" in response.headers  # Django knows the request came over https
    # A header the client made up is not believed: nginx appends the address it saw, waitress keeps that one.
    response = browser.sign_in("doc", PASSWORD, forwarded_for="203.0.113.66")
    assert response.status == 302, response.status
    response, _ = browser.request("GET", response.getheader("Location"))
    assert response.status == 200
    assert _audit(data_dir, "login") == [CLIENT]


def test_lockout_keys_on_the_client_address_not_the_proxys(proxied_site):
    port, data_dir = proxied_site
    attacker, colleague = Browser(port, CLIENT), Browser(port, OTHER_CLIENT)
    assert [attacker.sign_in("doc", "wrong password").status for _ in range(3)][:2] == [200, 200]
    assert attacker.sign_in("doc", PASSWORD).status == 429  # locked from this address
    assert _audit(data_dir, "login_failed")[:3] == [CLIENT] * 3
    # All requests reach orthoreg from nginx's 127.0.0.1: keyed on that, the colleague would be locked out too.
    assert colleague.sign_in("doc", PASSWORD).status == 302
    assert _audit(data_dir, "login") == [OTHER_CLIENT]


@pytest.mark.parametrize(("value", "behind_proxy", "expected"), [
    (None, False, None),              # no proxy: forwarding headers are never believed
    ("10.0.0.5", False, None),
    (None, True, "127.0.0.1"),        # the default: nginx on the same machine
    (" 10.0.0.5 ", True, "10.0.0.5"),
    ("0:0::1", True, "::1"),          # written as waitress will see the peer
    ("*", True, "*"),
])
def test_trusted_proxy_setting(value, behind_proxy, expected):
    from orthoreg.settings import trusted_proxy

    assert trusted_proxy(value, behind_proxy) == expected


def test_trusted_proxy_must_be_an_address():
    from orthoreg.settings import trusted_proxy

    with pytest.raises(ValueError, match="ORTHOREG_TRUSTED_PROXY: 'nginx.internal' is not an IP address"):
        trusted_proxy("nginx.internal", True)
