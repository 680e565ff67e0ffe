"""Which tab of the coordinator's worklist an assessment stands in, day by day around its window."""

import datetime as dt

import pytest

from orthoreg.followup import selectors
from orthoreg.registry import services as registry

INDEX = dt.date(2026, 1, 1)  # the 6-month time point is due 1 Jul 2026, its window 3 Jun .. 12 Aug


@pytest.fixture
def planned(episode):
    registry.procedure_record(episode=episode, date=INDEX, kind="bmc", is_index=True)
    return episode


def tabs_of_6m(user, today: dt.date) -> set[str]:
    found = set()
    for tab, _label in selectors.TABS:
        qs = selectors.worklist(user=user, tab=tab, today=today)
        if tab != "failed" and qs.filter(time_point="6m").exists():
            found.add(tab)
    return found


@pytest.mark.parametrize("today, tabs", [
    (dt.date(2026, 5, 30), set()),               # window not open yet, due in 32 days
    (dt.date(2026, 6, 3), {"open"}),             # the window opens, due in 28 days
    (dt.date(2026, 6, 23), {"open"}),            # due in 8 days: not this week yet
    (dt.date(2026, 6, 24), {"due"}),             # due in 7 days
    (dt.date(2026, 7, 1), {"due"}),              # due today
    (dt.date(2026, 7, 2), {"overdue"}),
    (dt.date(2026, 8, 12), {"overdue"}),         # the window's last day
    (dt.date(2026, 8, 13), {"missed"}),
])
def test_each_day_has_one_tab(planned, clinician, today, tabs):
    assert tabs_of_6m(clinician, today) == tabs


def test_another_clinic_sees_none_of_it(planned, other_clinician):
    assert tabs_of_6m(other_clinician, dt.date(2026, 7, 1)) == set()
