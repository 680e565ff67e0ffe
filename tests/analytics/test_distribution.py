"""Responders at every threshold (issue 16 item 2): the change distribution and the PASS responder, by hand; PASS
values in the instrument definitions with their source."""

from __future__ import annotations

import copy
import json

import pytest

from orthoreg.analytics import summaries
from orthoreg.analytics.metrics import InstrumentInfo, PassInfo
from orthoreg.instruments import definitions
from orthoreg.instruments.fhir import parse_definition
from orthoreg.instruments.types import DefinitionError

NPRS = InstrumentInfo("nprs", "Pain", "lower", 0.0, 10.0, 2.0, 30.0, True)
NPRS_JSON = definitions.SHIPPED_DIR / "nprs.json"


def test_change_distribution_by_hand():
    """Improvements 3, 3, 1, 0, -1 (five patients): at least -1: 100%, 0: 80%, 1: 60%, 2: 40%, 3: 40%."""
    rows = summaries.change_distribution(NPRS, [(3.0, 2), (1.0, 1), (0.0, 1), (-1.0, 1)])
    assert rows == [{"threshold": -1.0, "share": 1.0}, {"threshold": 0.0, "share": 0.8},
                    {"threshold": 1.0, "share": 0.6}, {"threshold": 2.0, "share": 0.4},
                    {"threshold": 3.0, "share": 0.4}]


def test_change_distribution_small_numbers():
    assert summaries.change_distribution(NPRS, [(3.0, 2), (1.0, 2)]) == []  # four patients: nothing drawn


def test_pass_responder_in_the_instrument_summary():
    """PASS 3.2 (lower is better): scores 2, 3 meet it, 4 and 7 do not; one converted (a failure)."""
    cells = [{"a": True, "converted": False, "s": s, "base": 7.0, "n": 1, "oarsi": 0} for s in (2.0, 3.0, 4.0, 7.0)]
    cells.append({"a": False, "converted": True, "s": None, "base": None, "n": 1, "oarsi": 0})
    cells.append({"a": False, "converted": False, "s": None, "base": None, "n": 1, "oarsi": 0})
    passed = PassInfo(3.2, "a source", (("oa_primary", "knee"),), True)
    row = summaries.instrument_summary(NPRS, cells, treated=6, time_point="6m", passed=passed)
    r = row["responders"]["pass"]
    assert (r["numerator"], r["denominator"], r["eligible"]) == (2, 5, 6)
    assert row["change_marks"]["pass"]["value"] == 3.2 and row["change_marks"]["mcid"] == 2.0
    assert row["change_marks"]["oarsi_high"] == pytest.approx(2.0)  # 20/100 on a 0-10 scale
    assert "pass" not in summaries.instrument_summary(NPRS, cells, treated=6, time_point="6m")["responders"]


def test_pass_applies_only_where_published():
    p = PassInfo(3.2, "s", (("oa_primary", "knee"),), True)
    assert p.applies("oa_primary", "knee") and not p.applies("hallux_rigidus", "first_mtp")
    assert not p.applies(None, None)  # a cohort not narrowed to the condition
    assert PassInfo(1, "s", (), False).applies(None, None)


def test_the_shipped_nprs_has_a_pass_with_its_source():
    sub = parse_definition(json.loads(NPRS_JSON.read_text()), origin="shipped").primary
    assert sub.pass_value == 3.2 and "Tubach" in sub.pass_source and sub.pass_scope == (("oa_primary", "knee"),)
    assert sub.pass_verify


def test_a_pass_without_its_source_is_refused():
    resource = json.loads(NPRS_JSON.read_text())
    broken = copy.deepcopy(resource)
    sub = next(e for e in broken["extension"] if e["url"] == "urn:orthoreg:fhir:subscale")
    sub["extension"] = [e for e in sub["extension"] if e["url"] != "passSource"]
    with pytest.raises(DefinitionError, match="passSource"):
        parse_definition(broken)
