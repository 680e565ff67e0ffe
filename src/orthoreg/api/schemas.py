"""Shared schemas of the API: its one error body and the date types of its parameters. The cohort report's response
schema is the report's own typed model (analytics.report_types)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from ninja import Field, Schema
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date(value):
    """Only a calendar date written YYYY-MM-DD: pydantic alone would read 0 as 1970-01-01 (a Unix time)."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value.strip()):
        return value.strip()
    raise PydanticCustomError("iso_date", "Give a date as YYYY-MM-DD (e.g. 2025-03-01), not {value}.",
                              {"value": repr(value)})


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]

_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?)?")


def _iso_datetime(value):
    """Only a moment written as ISO 8601 (2025-03-01T08:00:00Z; a date alone is its midnight in UTC), not a number
    (pydantic alone would read 0.5 as half a second after 1970)."""
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _ISO_DATETIME.fullmatch(value.strip()):
        return value.strip()
    raise PydanticCustomError("iso_datetime", "Give a moment as ISO 8601 (e.g. 2025-03-01T08:00:00Z), not {value}.",
                              {"value": repr(value)})


IsoDateTime = Annotated[dt.datetime, BeforeValidator(_iso_datetime)]


class ErrorItem(Schema):
    location: str = Field(description="The field, parameter or header, e.g. birth_date, limit, Idempotency-Key")
    message: str


class Error(Schema):
    """The one error body of the API, for every 4xx."""

    detail: str = Field(description="What went wrong, in one sentence")
    errors: list[ErrorItem] = Field([], description="Each problem with where it is")
