"""Dates as the clinic reads them: one format for every page, PDF, email and message.

The formats follow the installation's locale (``ORTHOREG_LANGUAGE``, a Django language code such as ``en-gb`` or
``de``); ``FORMAT_MODULE_PATH`` points Django here, so ``{{ day|date }}`` in a template and :func:`format_date` in
Python print the same text. English (any ``en-*``) uses the unambiguous "4 Dec 2026"; other languages use Django's
own format for that locale.
"""

from __future__ import annotations

import datetime as dt

from django.utils import formats, timezone


def format_date(value: dt.date | dt.datetime | None) -> str:
    """A date (or the local date of an aware datetime) in the locale's DATE_FORMAT; "—" for None."""
    if value is None:
        return "—"
    if isinstance(value, dt.datetime):
        value = timezone.localtime(value).date() if timezone.is_aware(value) else value.date()
    return formats.date_format(value, "DATE_FORMAT")


def format_datetime(value: dt.datetime | None) -> str:
    """A moment in the locale's DATETIME_FORMAT, in the current time zone; "—" for None."""
    if value is None:
        return "—"
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return formats.date_format(value, "DATETIME_FORMAT")
