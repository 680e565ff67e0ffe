"""The cohort report's JSON keeps its keys now that the report is typed (analytics.report_types): the document of
`orthoreg report cohort --format json` and of the API, for a synthetic registry, against the keys the dict-built
report had (tests/data/cohort_report_keys.json, written by this test from the code before the change with
ORTHOREG_WRITE_REPORT_KEYS=1)."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
from pathlib import Path

import pytest
import time_machine
from django.core.management import call_command

from orthoreg.analytics import facts
from orthoreg.site.synth import Generator
from tests.conftest import login

KEYS = Path(__file__).resolve().parent.parent / "data" / "cohort_report_keys.json"
NOW = dt.datetime(2025, 9, 1, 12, tzinfo=dt.UTC)
CASES = {  # name: (CLI arguments, API address)
    "cohort": (["--condition", "hallux_rigidus"], "/api/v1/cohorts/report?condition=hallux_rigidus"),
    "everyone": ([], "/api/v1/cohorts/report"),
    "comparison": (["--procedure", "bmc", "--vs-procedure", "prp"],
                   "/api/v1/cohorts/compare?procedure=bmc&vs_procedure=prp"),
}


def paths(doc, prefix: str = "$") -> list[str]:
    """Every key path of a JSON document in the order first met (list items are `[]`)."""
    out: dict[str, None] = {}

    def walk(value, path):
        out.setdefault(path, None)
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}")
        elif isinstance(value, list):
            for item in value:
                walk(item, f"{path}[]")

    walk(doc, prefix)
    return list(out)


@pytest.fixture
def registry(clinic):
    with time_machine.travel(NOW, tick=False):
        Generator(clinics=[clinic], seed=11, today=NOW.date(), mrn_prefix="SYN").run(120)
        facts.rebuild_all()
        yield


def documents(clinician) -> dict[str, dict]:
    client = login(clinician)
    out = {}
    with time_machine.travel(NOW, tick=False):
        for name, (args, url) in CASES.items():
            buffer = io.StringIO()
            call_command("report", "cohort", *args, "--format", "json", stdout=buffer)
            out[f"cli {name}"] = json.loads(buffer.getvalue())
            response = client.get(url)
            assert response.status_code == 200, response.content[:300]
            out[f"api {name}"] = response.json()
    return out


def test_the_json_of_the_command_and_the_api_keeps_its_keys(registry, clinician):
    found = {name: paths(doc) for name, doc in documents(clinician).items()}
    if os.environ.get("ORTHOREG_WRITE_REPORT_KEYS"):
        KEYS.write_text(json.dumps(found, indent=1) + "\n")
    expected = json.loads(KEYS.read_text())
    # Added since the keys were recorded: where the report was read (the primary or the read replica, and how far
    # behind it was: orthoreg.replica), said by every document; the API also declares it in each compared cohort.
    where = ("read_from", "replica_lag_seconds")
    for name, doc in found.items():
        assert found[name][-2:] == ["$.read_from", "$.replica_lag_seconds"] or name.startswith("api"), name
        assert {"$.read_from", "$.replica_lag_seconds"} <= set(doc), name
        found[name] = [p for p in doc if p.rsplit(".", 1)[-1] not in where]
    for name, keys in expected.items():
        if name.startswith("cli"):  # the command's document: the same keys in the same order
            assert found[name] == keys, name
        else:  # the API's: the same keys (its order follows the report's fields)
            assert sorted(found[name]) == sorted(keys), name
