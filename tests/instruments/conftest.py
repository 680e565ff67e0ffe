"""Fixtures of the instruments tests: a private data directory (packs, site definitions) per test."""

from __future__ import annotations

import copy

import pytest

from orthoreg.instruments import definitions
from orthoreg.instruments.fhir import flat_items


@pytest.fixture(autouse=True)
def instrument_data_dir(settings, tmp_path):
    """Installed packs and site definitions go to a temporary data directory, never the real one."""
    settings.DATA_DIR = tmp_path / "data"
    definitions.clear_caches()
    yield settings.DATA_DIR
    definitions.clear_caches()


def make_pack(code: str) -> dict:
    """A pack for a shipped instrument: its structure with (made-up) text in place of the placeholders."""
    pack = copy.deepcopy(definitions.scoring_definition(code).resource)
    pack["title"] = f"{code.upper()} (test pack)"
    pack["copyright"] = "Test text, not the licensed wording."
    for n, item in enumerate(flat_items(pack["item"]), start=1):
        item["text"] = f"Test question {n} of {code}"
        for option in item.get("answerOption", []):
            option["valueCoding"]["display"] = f"Answer {option['valueCoding']['code']}"
    return pack


@pytest.fixture
def pack_for():
    return make_pack
