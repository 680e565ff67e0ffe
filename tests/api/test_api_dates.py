"""Dates in API filters are calendar dates written YYYY-MM-DD (issue 12, finding 10: schemathesis found
index_to=0 accepted as 1970-01-01)."""

import pytest

from tests.conftest import login

REPORT = "/api/v1/cohorts/report"
COMPARE = "/api/v1/cohorts/compare"


@pytest.mark.parametrize("url, name", [(REPORT, "index_from"), (REPORT, "index_to"), (COMPARE, "vs_index_from"),
                                       (COMPARE, "vs_index_to")])
@pytest.mark.parametrize("value", ["0", "1700000000", "-1", "2025-1-1", "01/03/2025", "2025-03-01T00:00"])
def test_a_date_not_written_as_a_date_is_422_with_a_message(researcher, url, name, value):
    params = {name: value}
    if url == COMPARE and not name.startswith("vs_"):
        params["vs_sex"] = "female"
    response = login(researcher).get(url, params)
    assert response.status_code == 422, response.content
    body = response.json()
    assert name in [e["location"] for e in body["errors"]] and "YYYY-MM-DD" in body["detail"], body


def test_a_date_written_as_a_date_is_read(clinician):
    response = login(clinician).get(REPORT, {"index_from": "2025-01-01", "index_to": "2025-12-31"})
    assert response.status_code == 200, response.content
    assert response.json()["filters"]["index_to"] == "2025-12-31"
