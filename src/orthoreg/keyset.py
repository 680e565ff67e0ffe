"""Keyset (cursor) pagination: a page is "the next N rows after this row in the list's order", never "skip N
rows", so page 4,000 of the patient list costs what page 1 costs (an index range scan, not an OFFSET that reads
and drops every earlier row).

The cursor names the sort key of the row it continues from, and whether it goes forwards or backwards. It is
signed (django.core.signing): a cursor that was not made here, or was changed, is refused with InvalidCursor,
and the views show the first page instead; it never reaches the database as anything but values this module
produced. The order must end in a unique column (the primary key) so that rows with equal names are neither
skipped nor shown twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core import signing
from django.db.models import Q, QuerySet

_SALT = "orthoreg.keyset"
FORWARD, BACKWARD = "n", "p"


class InvalidCursor(ValueError):
    """The cursor was not made by this site for this list (tampered, truncated or from another list)."""


@dataclass
class KeysetPage:
    object_list: list
    next_cursor: str | None = None
    previous_cursor: str | None = None
    count: int = 0  # rows in the whole list
    first: bool = True  # the list's first page (no cursor, or a cursor that was refused)
    refused: bool = False  # a cursor was given and refused
    extra: dict = field(default_factory=dict)

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None

    @property
    def has_previous(self) -> bool:
        return self.previous_cursor is not None

    @property
    def has_other_pages(self) -> bool:
        return self.has_next or self.has_previous

    def __iter__(self):
        return iter(self.object_list)

    def __len__(self) -> int:
        return len(self.object_list)


def _plain(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def make_cursor(direction: str, values: Sequence[Any], *, name: str) -> str:
    return signing.dumps([name, direction, [_plain(v) for v in values]], salt=_SALT, compress=True)


def read_cursor(cursor: str, *, name: str, width: int) -> tuple[str, list]:
    """(direction, values) of a cursor this site made for the list `name`; InvalidCursor for anything else."""
    try:
        list_name, direction, values = signing.loads(cursor, salt=_SALT)
    except (signing.BadSignature, ValueError, TypeError):
        raise InvalidCursor("This page link is not valid (it was changed or comes from elsewhere).") from None
    if (list_name != name or direction not in (FORWARD, BACKWARD) or not isinstance(values, list)
            or len(values) != width or any(v is None or isinstance(v, (list, dict)) for v in values)):
        raise InvalidCursor("This page link is not valid (it was changed or comes from elsewhere).")
    return direction, values


def _after(order: Sequence[str], values: Sequence[Any], *, backwards: bool) -> Q:
    """Rows strictly after `values` in `order` (strictly before when `backwards`), lexicographically."""
    result = Q()
    for i, key in enumerate(order):
        descending = key.startswith("-")
        column = key.lstrip("-")
        greater = descending == backwards  # ascending and forwards: greater; descending and forwards: less
        step = Q(**{f"{column}__{'gt' if greater else 'lt'}": values[i]})
        for prior, value in zip(order[:i], values[:i], strict=False):
            step &= Q(**{prior.lstrip("-"): value})
        result |= step
    return result


def _reverse(order: Sequence[str]) -> list[str]:
    return [key[1:] if key.startswith("-") else f"-{key}" for key in order]


def paginate(queryset: QuerySet, *, order: Sequence[str], cursor: str | None, per_page: int, name: str,
             key: Callable[[Any], Sequence[Any]] | None = None, count: bool = True) -> KeysetPage:
    """One page of `queryset` in `order` (which must end in a unique column), continuing from `cursor`.

    `key(row)` gives a row's values of the order's columns (default: the attributes, or the keys of a dict row).
    A refused cursor gives the first page with `refused` set. Costs one query for the rows (per_page + 1, to know
    whether there is more) and, with `count`, one COUNT.
    """
    order = list(order)
    columns = [k.lstrip("-") for k in order]

    def key_of(row) -> list:
        if key is not None:
            return list(key(row))
        if isinstance(row, dict):
            return [row[c] for c in columns]
        return [getattr(row, c) for c in columns]

    direction, values, refused = FORWARD, None, False
    if cursor:
        try:
            direction, values = read_cursor(cursor, name=name, width=len(order))
        except InvalidCursor:
            refused = True
    backwards = direction == BACKWARD and values is not None
    rows_qs = queryset
    if values is not None:
        rows_qs = rows_qs.filter(_after(order, values, backwards=backwards))
    rows_qs = rows_qs.order_by(*(_reverse(order) if backwards else order))
    rows = list(rows_qs[:per_page + 1])
    more = len(rows) > per_page
    rows = rows[:per_page]
    if backwards:
        rows.reverse()
    at_start = values is None or (backwards and not more)
    page = KeysetPage(rows, count=queryset.count() if count else len(rows), first=at_start, refused=refused)
    if rows:
        go_on = more if not backwards else True
        if go_on:
            page.next_cursor = make_cursor(FORWARD, key_of(rows[-1]), name=name)
        if not at_start:
            page.previous_cursor = make_cursor(BACKWARD, key_of(rows[0]), name=name)
    return page
