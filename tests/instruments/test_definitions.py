"""Shipped definitions: complete, valid FHIR, licences recorded, and no licensed text shipped."""

from __future__ import annotations

import copy
import json

import pytest
from fhir.resources.R4B.questionnaire import Questionnaire

from orthoreg.instruments import definitions
from orthoreg.instruments.definitions import UnknownInstrument, all_definitions, get_definition
from orthoreg.instruments.fhir import parse_definition
from orthoreg.instruments.types import EXT_SUBSCALE, EXT_TRANSLATION, PLACEHOLDER_MARK, DefinitionError

OWN = ["nprs", "sane", "global-improvement", "satisfaction"]
LICENSED = ["faam-adl", "faam-sports", "lefs", "faos", "moxfq", "koos"]
STRUCTURE = {  # code: (items, {subscale: item count}, primary, better)
    "nprs": (1, {"pain": 1}, "pain", "lower"),
    "sane": (1, {"sane": 1}, "sane", "higher"),
    "global-improvement": (2, {"improvement": 2}, "improvement", "higher"),
    "satisfaction": (2, {"satisfaction": 1, "would_repeat": 1}, "satisfaction", "higher"),
    "faam-adl": (21, {"adl": 21}, "adl", "higher"),
    "faam-sports": (8, {"sports": 8}, "sports", "higher"),
    "lefs": (20, {"lefs": 20}, "lefs", "higher"),
    "faos": (42, {"symptoms": 7, "pain": 9, "adl": 17, "sport": 5, "qol": 4}, "pain", "higher"),
    "koos": (42, {"symptoms": 7, "pain": 9, "adl": 17, "sport": 5, "qol": 4}, "pain", "higher"),
    "moxfq": (16, {"walking_standing": 7, "pain": 5, "social": 4, "index": 16}, "pain", "lower"),
}


def test_every_instrument_of_the_issue_ships():
    assert [d.code for d in all_definitions()] == OWN + ["faam-adl", "faam-sports", "lefs", "faos", "moxfq", "koos"]


@pytest.mark.parametrize("code", OWN + LICENSED)
def test_structure(code):
    items, subscales, primary, better = STRUCTURE[code]
    d = get_definition(code)
    assert len(d.items) == items
    assert {s.code: len(s.items) for s in d.subscales} == subscales
    assert d.primary.code == primary and d.primary.better == better
    assert d.version and d.scoring_source and d.licence.name
    assert [i.number for i in d.items] == list(range(1, items + 1))


@pytest.mark.parametrize("code", OWN + LICENSED)
def test_definition_files_are_fhir_r4_questionnaires(code):
    path = definitions.SHIPPED_DIR / f"{code}.json"
    Questionnaire.model_validate(json.loads(path.read_text()))


@pytest.mark.parametrize("code", OWN)
def test_own_instruments_ship_whole(code):
    d = get_definition(code)
    assert d.licence.redistributable and d.text_status == "shipped" and d.sendable
    assert all(PLACEHOLDER_MARK not in i.text and len(i.text) > 20 for i in d.items)


@pytest.mark.parametrize("code", LICENSED)
def test_licensed_instruments_ship_structure_only(code):
    d = get_definition(code)
    assert not d.licence.redistributable
    assert d.text_status == "not installed" and d.licence_status == "licensed text not installed"
    assert not d.sendable  # never sent to patients without the text
    assert all(i.text == f"Item {i.number} ({PLACEHOLDER_MARK})" for i in d.items)
    assert all(o.display in {"0", "1", "2", "3", "4", "Not applicable"} for i in d.items for o in i.options)


@pytest.mark.parametrize("code,mcid", [("nprs", 2), ("faam-adl", 8), ("faam-sports", 9), ("lefs", 9), ("faos", 10)])
def test_mcids_from_domain_reference(code, mcid):
    assert get_definition(code).primary.mcid == mcid


def test_nprs_mcid_is_two_points_or_thirty_percent():
    pain = get_definition("nprs").primary
    assert (pain.mcid, pain.mcid_percent, pain.percent_change) == (2, 30, True)


def test_moxfq_domain_mcids():
    d = get_definition("moxfq")
    assert {s.code: s.mcid for s in d.subscales} == {"walking_standing": 16, "pain": 12, "social": 24, "index": None}


def test_moxfq_says_its_item_to_domain_assignment_is_not_verified():
    d = get_definition("moxfq")
    assert "ITEM-TO-DOMAIN ASSIGNMENT NOT VERIFIED" in d.resource["description"]
    assert "Morley D et al., Bone Joint Res 2013;2:66-69" in d.subscale("index").missing_rule_source


def test_faam_has_not_applicable_option_and_others_do_not():
    assert all(i.has_not_applicable for i in get_definition("faam-adl").items)
    assert not any(i.has_not_applicable for i in get_definition("faos").items)


def test_unknown_instrument():
    with pytest.raises(UnknownInstrument, match="Unknown instrument 'nope'.*nprs"):
        get_definition("nope")
    with pytest.raises(UnknownInstrument):
        get_definition("../etc/passwd")


def test_translations_are_read(tmp_path):
    resource = copy.deepcopy(get_definition("nprs").resource)
    resource["item"][0]["_text"] = {"extension": [{
        "url": EXT_TRANSLATION,
        "extension": [{"url": "lang", "valueCode": "es"}, {"url": "content", "valueString": "Dolor"}]}]}
    item = parse_definition(resource).items[0]
    assert item.text_for("es") == "Dolor" and item.text_for("fr") == item.text


def _broken(mutate):
    resource = copy.deepcopy(get_definition("faam-sports").resource)
    mutate(resource)
    with pytest.raises(DefinitionError) as info:
        parse_definition(resource)
    return " | ".join(info.value.errors)


def _subscale_part(resource, name):
    sub = next(e for e in resource["extension"] if e["url"] == EXT_SUBSCALE)
    return next(p for p in sub["extension"] if p["url"] == name)


def test_definition_errors_are_specific():
    assert "not a FHIR Questionnaire" in _broken(lambda r: r.update(resourceType="Patient"))
    assert "id 'Bad Code'" in _broken(lambda r: r.update(id="Bad Code"))
    assert "it has no items" in _broken(lambda r: r.update(item=[]))
    assert "unknown method 'magic'" in _broken(lambda r: _subscale_part(r, "method").update(valueCode="magic"))
    assert "declared range 0 to 90" in _broken(lambda r: _subscale_part(r, "maximum").update(valueDecimal=90.0))
    assert "item 3 (SP3): type 'string' cannot be scored" in _broken(lambda r: r["item"][2].update(type="string"))
    assert "linkId 'SP1' is used by more than one item" in _broken(lambda r: r["item"][1].update(linkId="SP1"))
    assert "no ordinalValue" in _broken(lambda r: r["item"][0]["answerOption"][0].pop("extension"))


def test_sum_needs_every_item():
    def mutate(r):
        _subscale_part(r, "method").update(valueCode="sum")
        _subscale_part(r, "minAnswered").update(valueInteger=7)
        _subscale_part(r, "maximum").update(valueDecimal=32.0)
    assert "a sum needs every item answered" in _broken(mutate)


def test_the_missing_item_rule_is_given_once_and_as_a_count_within_the_items():
    assert "minAnswered must be a whole number from 1 to 8" in _broken(
        lambda r: _subscale_part(r, "minAnswered").update(valueInteger=9))

    def both(r):
        sub = next(e for e in r["extension"] if e["url"] == EXT_SUBSCALE)
        sub["extension"].append({"url": "minAnsweredPercent", "valueInteger": 90})
    assert "give the missing-item rule once" in _broken(both)
