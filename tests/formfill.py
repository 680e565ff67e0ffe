"""Fill an HTML form as a patient would: its hidden fields and a valid answer to each item.

Shared by the serve test (tests/ops/test_serve_workers.py) and the load benchmark (benchmarks/run.py, which puts
the repository root on sys.path). Standard library only, no Django: it reads pages served over HTTP.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlencode


class FormParser(HTMLParser):
    """The survey page's form: its hidden fields and a valid answer to each item (first option, lowest number)."""

    def __init__(self):
        super().__init__()
        self.fields: dict[str, str] = {}
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text")
            if kind in ("radio", "checkbox"):
                self.fields.setdefault(name, a.get("value") or "")
            elif kind in ("number", "range"):
                self.fields.setdefault(name, a.get("min") or "0")
            elif kind not in ("submit", "button"):
                self.fields.setdefault(name, a.get("value") or "")
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and a.get("value"):
            self.fields.setdefault(self._select, a["value"] or "")

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def form_fields(page: str) -> dict[str, str]:
    """The fields of the page's form, each with a valid value."""
    parser = FormParser()
    parser.feed(page)
    return parser.fields


def form_body(fields: dict[str, str]) -> str:
    """The fields as an application/x-www-form-urlencoded body."""
    return urlencode(fields)
