"""Instrument packs: licensed text installed into the data directory, checked against the shipped structure."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from orthoreg.instruments import definitions, services
from orthoreg.instruments.definitions import get_definition
from orthoreg.instruments.scoring import score
from orthoreg.instruments.types import DefinitionError


def install_file(tmp_path, pack, *args):
    path = tmp_path / "pack.json"
    path.write_text(json.dumps(pack))
    return call_command("instruments", "install", str(path), *args)


def assert_refused(tmp_path, pack, *fragments):
    with pytest.raises(CommandError) as info:
        install_file(tmp_path, pack)
    assert info.value.returncode == 2
    message = str(info.value)
    assert "not installed" in message
    for fragment in fragments:
        assert fragment in message, message
    assert not (definitions.packs_dir() / "faos.json").exists()
    assert get_definition("faos").text_status == "not installed"


def test_good_pack_installs_text_and_keeps_scoring(tmp_path, pack_for, capsys):
    install_file(tmp_path, pack_for("faos"))
    assert "Installed licensed text for faos (42 items)" in capsys.readouterr().out
    d = get_definition("faos")
    assert d.text_status == "installed" and d.sendable and d.licence_status == "licensed text installed"
    assert d.items[0].text == "Test question 1 of faos" and d.items[0].options[0].display == "Answer 0"
    assert d.title == "FAOS (test pack)"
    assert d.subscales == definitions.scoring_definition("faos").subscales
    assert (definitions.packs_dir() / "faos.json").is_file()  # in the data directory: survives restarts
    definitions.clear_caches()
    assert get_definition("faos").text_status == "installed"
    assert score("faos", [0] * 42).scores["pain"] == 100.0


def test_installing_twice_needs_replace(tmp_path, pack_for):
    install_file(tmp_path, pack_for("moxfq"))
    with pytest.raises(CommandError, match="already installed; use --replace"):
        install_file(tmp_path, pack_for("moxfq"))
    pack = pack_for("moxfq")
    pack["item"][0]["text"] = "Replaced text"
    install_file(tmp_path, pack, "--replace")
    assert get_definition("moxfq").items[0].text == "Replaced text"


def test_wrong_item_count(tmp_path, pack_for):
    pack = pack_for("faos")
    pack["item"].pop()
    assert_refused(tmp_path, pack, "it has 41 items; faos has 42")


def test_wrong_item_ids(tmp_path, pack_for):
    pack = pack_for("faos")
    pack["item"][8]["linkId"] = "P99"
    assert_refused(tmp_path, pack, "item 9 (P2): linkId is 'P99', expected 'P2'")


def test_wrong_options(tmp_path, pack_for):
    pack = pack_for("faos")
    pack["item"][2]["answerOption"].pop()  # no 4
    pack["item"][3]["answerOption"][0]["extension"][0]["valueDecimal"] = 4  # 0 scored as 4
    assert_refused(tmp_path, pack, "item 3 (S3): answer options are [0=0, 1=1, 2=2, 3=3], expected",
                   "item 4 (S4): answer options are")


def test_placeholder_text_left_in_the_pack(tmp_path):
    pack = json.loads((definitions.SHIPPED_DIR / "faos.json").read_text())
    assert_refused(tmp_path, pack, "item 1 (S1): still has the placeholder text")


def test_pack_with_wrong_id_or_type(tmp_path, pack_for):
    pack = pack_for("faos")
    pack["item"][0]["type"] = "integer"
    pack["item"][1]["text"] = ""
    assert_refused(tmp_path, pack, "item 1 (S1): type is 'integer', expected 'choice'", "item 2 (S2): text is missing")


def test_not_json_or_not_a_questionnaire(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"resourceType": ')
    with pytest.raises(CommandError, match=r"not valid JSON .* line 1") as info:
        call_command("instruments", "install", str(path))
    assert info.value.returncode == 2
    path.write_text('{"resourceType": "Patient"}')
    with pytest.raises(CommandError, match="not a FHIR Questionnaire"):
        call_command("instruments", "install", str(path))
    with pytest.raises(CommandError, match="no such file"):
        call_command("instruments", "install", str(tmp_path / "missing.json"))


def test_grouped_pack_items_are_flattened(tmp_path, pack_for):
    pack = pack_for("moxfq")
    pack["item"] = [{"linkId": "g1", "type": "group", "text": "Part one", "item": pack["item"][:7]},
                    {"linkId": "g2", "type": "group", "text": "Part two", "item": pack["item"][7:]}]
    install_file(tmp_path, pack)
    assert get_definition("moxfq").text_status == "installed"


def test_a_pack_edited_after_installation_is_ignored_not_shown(tmp_path, pack_for, caplog):
    install_file(tmp_path, pack_for("lefs"))
    path = definitions.packs_dir() / "lefs.json"
    broken = json.loads(path.read_text())
    broken["item"].pop()
    path.write_text(json.dumps(broken))
    d = get_definition("lefs")
    assert d.text_status == "not installed" and not d.sendable and "it has 19 items; lefs has 20" in d.pack_error
    assert d.licence_status == "licensed text not installed (the installed pack is invalid)"
    assert "Instrument pack ignored" in caplog.text
    path.write_text("{not json")
    assert "not valid JSON" in get_definition("lefs").pack_error
    assert score("lefs", [4] * 20).primary == 80.0  # scoring never depends on a pack


def test_a_broken_site_definition_is_left_out_of_the_list(caplog):
    definitions.site_dir().mkdir(parents=True)
    (definitions.site_dir() / "mine.json").write_text("[]")
    assert "mine" in definitions.available_codes()
    assert "mine" not in [d.code for d in definitions.all_definitions()]
    with pytest.raises(DefinitionError, match="not a FHIR Questionnaire"):
        get_definition("mine")


def test_site_definition_install(tmp_path):
    resource = json.loads((definitions.SHIPPED_DIR / "sane.json").read_text())
    resource["id"] = "clinic-sane"
    d = services.instrument_install(resource=resource)
    assert d.origin == "site" and "clinic-sane" in definitions.available_codes()
    assert score("clinic-sane", [70]).primary == 70.0
    resource["id"] = "patients"
    with pytest.raises(DefinitionError, match="reserved"):
        services.instrument_install(resource=resource)
