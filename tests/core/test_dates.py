"""One date format everywhere (issue 11 item 17): templates, Python messages and PDFs print a date the same way,
in the locale's format (orthoreg.formats)."""

from __future__ import annotations

import datetime as dt

from django.template import Context, Template
from django.utils import translation

from orthoreg.formats import format_date, format_datetime

DAY = dt.date(2026, 3, 5)


def test_one_format_in_python_and_in_templates():
    assert format_date(DAY) == "5 Mar 2026"
    rendered = Template('{{ d }}|{{ d|date }}|{{ d|date:"DATE_FORMAT" }}').render(Context({"d": DAY}))
    assert rendered == "5 Mar 2026|5 Mar 2026|5 Mar 2026"
    assert format_date(None) == "—"


def test_datetimes_print_their_local_date(settings):
    settings.TIME_ZONE = "America/Denver"
    late = dt.datetime(2026, 3, 6, 3, 0, tzinfo=dt.UTC)  # still 5 March in Denver
    assert format_date(late) == "5 Mar 2026"
    assert format_datetime(late) == "5 Mar 2026, 20:00"


def test_the_clinics_locale_decides():
    with translation.override("de"):
        assert format_date(DAY) == "5. März 2026"
    with translation.override("en-gb"):
        assert format_date(DAY) == "5 Mar 2026"


def test_model_messages_use_it(db):
    from orthoreg.registry.models import Procedure

    assert str(Procedure(kind="bmc", date=DAY)) == "Bone marrow concentrate injection on 5 Mar 2026"
