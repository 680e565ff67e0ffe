"""{% url_ids 'registry:grade_edit' episode.pk grade.pk %}: what {% url %} gives for a view whose arguments are all
integer ids, for the many links of a list page.

Django's reverse() matches the URL pattern's regular expression against the URL it builds at every call (about
40 us each); the worklist makes ~180 links, the patient list 25 a page. Here reverse() runs once per URL name
(with placeholder ids) and each link fills the ids into the pieces. Anything else (an argument that is not a
non-negative int, a placeholder not found exactly once) goes through reverse() as {% url %} does.
"""

from __future__ import annotations

import re

from django import template
from django.conf import settings
from django.urls import get_script_prefix, get_urlconf, reverse

register = template.Library()

_PLACEHOLDER = 918273645546370000  # + the argument's position: digits no URL of ours has otherwise
# (name, argument count, script prefix, urlconf) -> the URL's pieces: literal, argument index, literal, ...; or None
_pieces: dict[tuple, list[str | int] | None] = {}


def _split(name: str, count: int) -> list[str | int] | None:
    placeholders = [str(_PLACEHOLDER + i) for i in range(count)]
    url = reverse(name, args=[_PLACEHOLDER + i for i in range(count)])
    parts = re.split("(" + "|".join(placeholders) + ")", url)
    found = parts[1::2]
    if sorted(found) != sorted(placeholders):  # each exactly once, or the pieces could not be trusted
        return None
    return [part if n % 2 == 0 else placeholders.index(part) for n, part in enumerate(parts)]


@register.simple_tag
def url_ids(name: str, *ids) -> str:
    if not all(type(i) is int and i >= 0 for i in ids):  # (bool is an int: not an id)
        return reverse(name, args=list(ids))
    key = (name, len(ids), get_script_prefix(), get_urlconf() or settings.ROOT_URLCONF)
    if key not in _pieces:
        _pieces[key] = _split(name, len(ids))
    pieces = _pieces[key]
    if pieces is None:
        return reverse(name, args=list(ids))
    return "".join(part if isinstance(part, str) else str(ids[part]) for part in pieces)
