"""The public address of the site, used in emailed links.

ORTHOREG_BASE_URL when it is set; otherwise the address `orthoreg serve` (or the demo) answers on, which the
server records in the data directory when it starts so that a worker in another process uses it too. An address
that cannot work (a port the server is not on, a loopback host while serving on a public address, a host the
server refuses) is a warning at startup, not a silent failure.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from urllib.parse import urlsplit

from django.conf import settings

DEFAULT = "http://127.0.0.1:8000"
WILDCARD = {"", "0.0.0.0", "::", "*"}


def _record_path():
    return settings.DATA_DIR / "served_at.json"


def url_for(host: str, port: int) -> str:
    """The address a server bound to host:port answers on (a wildcard bind: this machine's name)."""
    name = socket.gethostname() if host in WILDCARD else host
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"
    return f"http://{name}:{port}"


def record_served(host: str, port: int) -> str:
    """Remember where the server answers (for workers in other processes); returns that address."""
    url = url_for(host, port)
    path = _record_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"url": url, "host": host, "port": port, "pid": os.getpid()}))
    os.replace(tmp, path)
    return url


def _served() -> dict | None:
    try:
        return json.loads(_record_path().read_text())
    except (OSError, ValueError):
        return None


def base_url_and_source() -> tuple[str, str]:
    if settings.BASE_URL:
        return settings.BASE_URL.rstrip("/"), "ORTHOREG_BASE_URL"
    served = _served()
    if served and served.get("url"):
        return served["url"], "the address orthoreg serve answers on"
    return DEFAULT, "the default: set ORTHOREG_BASE_URL, or start orthoreg serve, to change it"


def base_url() -> str:
    return base_url_and_source()[0]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def problems(host: str | None = None, port: int | None = None) -> list[str]:
    """Why links to the base URL would not work, for a server bound to host:port (default: the one recorded)."""
    url, source = base_url_and_source()
    if host is None or port is None:
        served = _served()
        if served is None:
            if source == "ORTHOREG_BASE_URL":
                return _shape_problems(url)
            return [f"ORTHOREG_BASE_URL is not set and no server has recorded its address in {settings.DATA_DIR}: "
                    f"links in emails will point to {url}."]
        host, port = served["host"], int(served["port"])
    found = _shape_problems(url)
    if found:
        return found
    parts = urlsplit(url)
    link_host = parts.hostname or ""
    link_port = parts.port or (443 if parts.scheme == "https" else 80)
    if _is_loopback(link_host) and host not in WILDCARD and not _is_loopback(host):
        found.append(f"links in emails point to {url}, a loopback address that opens only on this machine, while "
                     f"the server answers on {host}: set ORTHOREG_BASE_URL to the address patients use.")
    elif _is_loopback(link_host) and host in WILDCARD:
        found.append(f"links in emails point to {url}, a loopback address that opens only on this machine, while "
                     f"the server answers on every address: set ORTHOREG_BASE_URL to the address patients use.")
    same_machine = _is_loopback(link_host) or link_host == host or (host in WILDCARD and link_host == socket.gethostname())
    if same_machine and not settings.BEHIND_PROXY and link_port != int(port):
        found.append(f"links in emails point to port {link_port} ({url}) but the server answers on port {port}: "
                     "they would not open. Unset ORTHOREG_BASE_URL to follow the server, or correct it.")
    allowed = settings.ALLOWED_HOSTS
    if "*" not in allowed and not any(link_host == h.strip("[]") or (h.startswith(".") and link_host.endswith(h))
                                      for h in allowed):
        found.append(f"the links' host {link_host} is not in ORTHOREG_ALLOWED_HOSTS ({', '.join(allowed)}): "
                     "the server would refuse them.")
    return found


def _shape_problems(url: str) -> list[str]:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return [f"ORTHOREG_BASE_URL={url!r} is not a web address (http://host[:port] or https://host): "
                "links in emails would not work."]
    if parts.path not in {"", "/"} or parts.query:
        return [f"ORTHOREG_BASE_URL={url!r} has a path or query; give only the site's address (https://host[:port])."]
    try:
        _ = parts.port
    except ValueError:
        return [f"ORTHOREG_BASE_URL={url!r} has an invalid port."]
    return []
