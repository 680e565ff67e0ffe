"""schemathesis's own runner against the API served by a live server, with every check and both positive and
negative data (issue 12, finding 10: it found index_to=0 read as 1970-01-01, and answers the schema did not
declare), authenticated with a bearer token (issue 14): no server error, every answer declared and matching the
schema, every operation (reads and writes) exercised on a clinic with one record of each kind. The token is given
as the API's declared BearerToken scheme, so schemathesis also tries requests without it (401, declared).

One check is left out, on purpose: "positive data acceptance" expects every combination of individually valid
values to be accepted, but some combinations are refused by rule with a declared 422 and a message saying why
(grade_min above grade_max, a procedure date before the patient's birth, a PRP field on a prolotherapy, an id that
is not one of the clinic's records: 404). OpenAPI cannot state rules across parameters or about the data."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.conftest import make_records, token_for


@pytest.mark.django_db(transaction=True)
def test_schemathesis_finds_nothing_with_every_other_check(live_server, clinician, patient, dicom_bytes,
                                                            tmp_path):
    make_records(patient, clinician, dicom_bytes)
    config = tmp_path / "schemathesis.toml"
    config.write_text('[auth.openapi.BearerToken]\nbearer = "${ORTHOREG_TEST_TOKEN}"\n')
    runner = Path(sys.executable).with_name("schemathesis")
    result = subprocess.run(
        [str(runner), "--config-file", str(config), "run", f"{live_server.url}/api/v1/openapi.json",
         "--checks", "all", "--exclude-checks", "positive_data_acceptance", "--mode", "all",
         "--phases", "examples,coverage,fuzzing", "--max-examples", "15", "--seed", "14",
         "--wait-for-schema", "30", "--no-color"],
        env={**os.environ, "ORTHOREG_TEST_TOKEN": token_for(clinician)}, cwd=tmp_path,  # its cache stays out
        capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) >= 42, result.stdout[-3000:]  # every operation (40, and FHIR's 2)
