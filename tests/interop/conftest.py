"""What every data-in-and-out test shares."""

from __future__ import annotations

import pytest

from orthoreg.instruments import definitions


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path):
    """Instruments installed by an import (a FHIR Questionnaire, a REDCap form) go to a temporary data directory,
    never the real one, and no instrument cached by another test is seen."""
    settings.DATA_DIR = tmp_path / "data"
    definitions.clear_caches()
    yield settings.DATA_DIR
    definitions.clear_caches()
