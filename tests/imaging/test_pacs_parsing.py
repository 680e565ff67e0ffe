"""The PACS's answers as orthoreg reads them (no PACS needed): DICOM JSON values, dates, the view from the header,
and what is refused before anything is asked."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orthoreg.imaging import pacs
from orthoreg.imaging.services import _view_from_header

json_values = st.one_of(st.text(max_size=20), st.integers(), st.floats(allow_nan=True),
                        st.fixed_dictionaries({"Alphabetic": st.text(max_size=20)}), st.none())
elements = st.fixed_dictionaries({"vr": st.sampled_from(["DA", "LO", "PN", "IS", "CS", "UI"])},
                                 optional={"Value": st.lists(json_values, max_size=3)})
KEYWORDS = ["StudyDate", "StudyDescription", "PatientName", "ModalitiesInStudy", "NumberOfStudyRelatedInstances"]
TAGS = ["00080020", "00081030", "00100010", "00080061", "00201208"]


@given(st.text(max_size=30))
def test_a_date_is_a_date_or_none_never_an_error(text):
    value = pacs._date(text)
    assert value is None or isinstance(value, dt.date)


def test_dates_read_as_dicom_writes_them():
    assert pacs._date("20040826") == dt.date(2004, 8, 26)
    assert pacs._date("2004-08-26") is None and pacs._date("") is None and pacs._date("20041301") is None


@given(st.dictionaries(st.sampled_from(TAGS + ["7FE00010"]), elements, max_size=6))
def test_any_dicom_json_answer_is_read_without_an_error(item):
    for keyword in KEYWORDS:
        pacs._value(item, keyword)
    assert pacs._int(pacs._value(item, "NumberOfStudyRelatedInstances")) is None or \
        isinstance(pacs._int(pacs._value(item, "NumberOfStudyRelatedInstances")), int)


def test_values_of_a_real_qido_answer():
    item = {"00100010": {"vr": "PN", "Value": [{"Alphabetic": "Fox^Dana"}]},
            "00080061": {"vr": "CS", "Value": ["CR", "DX"]}, "00201208": {"vr": "IS", "Value": [2]},
            "00081030": {"vr": "LO"}}
    assert pacs._value(item, "PatientName") == "Fox^Dana"
    assert pacs._value(item, "ModalitiesInStudy") == "CR\\DX"
    assert pacs._value(item, "NumberOfStudyRelatedInstances") == 2
    assert pacs._value(item, "StudyDescription") is None


@given(st.text(max_size=6), st.sampled_from("*?\\"), st.text(max_size=6))
def test_a_wildcard_mrn_is_refused_before_the_pacs_is_asked(before, wildcard, after):
    with pytest.raises(pacs.PacsError, match="wildcard"):
        pacs.find_studies(before + wildcard + after)


def test_no_pacs_configured_says_which_variable(settings):
    settings.DICOMWEB_URL = ""
    with pytest.raises(pacs.PacsError, match="ORTHOREG_DICOMWEB_URL"):
        pacs.find_studies("MRN-001")


@pytest.mark.parametrize(("position", "view"), [("LL", "lateral"), ("RL", "lateral"), ("LAT", "lateral"),
                                                ("OBL", "oblique"), ("LAO", "oblique"), ("AP", "other"),
                                                ("PA", "other"), ("", "other")])
def test_the_view_from_the_header(position, view):
    assert _view_from_header(position) == view


def test_objects_that_are_not_images_are_named():
    assert pacs.Instance("s", "r", "i", "1.2.840.10008.5.1.4.1.1.88.34").kind_not_image == "structured report"
    assert pacs.Instance("s", "r", "i", "1.2.840.10008.5.1.4.1.1.11.1").kind_not_image == "presentation state"
    assert pacs.Instance("s", "r", "i", "1.2.840.10008.5.1.4.1.1.1.1").kind_not_image is None
