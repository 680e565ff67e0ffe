import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from orthoreg.imaging import calibration
from orthoreg.imaging.calibration import CalibrationError, Spacing


def test_pixel_spacing_is_preferred_to_imager_pixel_spacing():
    spacing, messages = calibration.spacing_from_dicom({"PixelSpacing": ["0.139", "0.139"],
                                                        "ImagerPixelSpacing": ["0.15", "0.15"]})
    assert spacing == Spacing(0.139, 0.139, calibration.DICOM_PIXEL)
    assert messages == []


def test_imager_pixel_spacing_when_pixel_spacing_is_missing():
    spacing, _ = calibration.spacing_from_dicom({"ImagerPixelSpacing": "0.1\\0.12"})
    assert (spacing.row_mm, spacing.col_mm, spacing.source) == (0.1, 0.12, calibration.DICOM_IMAGER)


@pytest.mark.parametrize("value", [["0", "0"], ["0.1", "0"], ["-0.1", "-0.1"], ["25", "25"], ["0.001", "0.001"],
                                   ["nan", "nan"], ["0.1", "0.5"], "abc", ["0.1", "0.1", "0.1"]])
def test_zero_absurd_or_unreadable_spacing_is_refused_with_a_message(value):
    spacing, messages = calibration.spacing_from_dicom({"ImagerPixelSpacing": value})
    assert spacing is None
    assert len(messages) == 1 and "Not used" in messages[0]


def test_a_refused_pixel_spacing_falls_back_to_imager_pixel_spacing_and_says_so():
    header = {"PixelSpacing": ["0", "0"], "ImagerPixelSpacing": ["0.1", "0.1"]}
    spacing, messages = calibration.spacing_from_dicom(header)
    assert spacing.source == calibration.DICOM_IMAGER
    assert "PixelSpacing" in messages[0]


def test_missing_spacing_says_so():
    assert calibration.spacing_from_dicom({}) == (None, ["The DICOM header gives no pixel spacing."])


def test_marker_calibration():
    spacing = calibration.spacing_from_marker((10, 10), (110, 10), 10)
    assert spacing == Spacing(0.1, 0.1, calibration.MANUAL)
    assert calibration.distance((0, 0), (30, 40), spacing) == (pytest.approx(5.0), "mm")


@pytest.mark.parametrize("points, known, message", [
    ((0, 0, 5, 0), 10, "apart"),
    ((0, 0, 100, 0), 0, "more than 0"),
    ((0, 0, 100, 0), -3, "more than 0"),
    ((0, 0, 100, 0), 5000, "not believable"),
    ((0, 0, 100, 0), 900, "believable range"),  # 9 mm per pixel
    ((0, 0, "x", 0), 10, "numbers"),
    ((0, 0, 100, 0), "ten", "numbers"),
])
def test_bad_markers_are_refused(points, known, message):
    with pytest.raises(CalibrationError, match=message):
        calibration.spacing_from_marker(points[:2], points[2:], known)


def test_uncalibrated_lengths_are_pixels_and_labelled():
    value, unit = calibration.distance((0, 0), (3, 4), None)
    assert (value, unit) == (5.0, "px")
    assert calibration.format_length(value, unit) == "5.0 px (uncalibrated)"
    assert calibration.format_length(None, "mm") == "not measurable"
    assert calibration.format_length(2.345, "mm") == "2.35 mm"


def test_anisotropic_spacing_follows_the_direction():
    spacing = Spacing(0.2, 0.1, calibration.DICOM_PIXEL)  # rows 0.2 mm apart, columns 0.1 mm
    assert spacing.mm_per_px(1, 0) == pytest.approx(0.1)
    assert spacing.mm_per_px(0, 1) == pytest.approx(0.2)
    assert calibration.distance((0, 0), (10, 10), spacing)[0] == pytest.approx(math.hypot(1, 2))


coordinates = st.floats(min_value=0, max_value=5000, allow_nan=False)


@given(x1=coordinates, y1=coordinates, x2=coordinates, y2=coordinates,
       known=st.floats(min_value=0.5, max_value=200, allow_nan=False))
def test_a_marker_measures_its_own_known_length(x1, y1, x2, y2, known):
    pixels = math.hypot(x2 - x1, y2 - y1)
    assume(pixels >= calibration.MIN_MARKER_PX)
    assume(calibration.MIN_SPACING_MM <= known / pixels <= calibration.MAX_SPACING_MM)
    spacing = calibration.spacing_from_marker((x1, y1), (x2, y2), known)
    value, unit = calibration.distance((x1, y1), (x2, y2), spacing)
    assert unit == "mm"
    assert value == pytest.approx(known, rel=1e-9)


@given(row=st.floats(min_value=0.01, max_value=2.0), col=st.floats(min_value=0.01, max_value=2.0),
       dx=st.floats(min_value=-1000, max_value=1000), dy=st.floats(min_value=-1000, max_value=1000))
def test_lengths_are_between_the_row_and_column_scales(row, col, dx, dy):
    spacing = Spacing(row, col, calibration.DICOM_PIXEL)
    value, _ = calibration.distance((0, 0), (dx, dy), spacing)
    pixels = math.hypot(dx, dy)
    assert min(row, col) * pixels * (1 - 1e-9) <= value <= max(row, col) * pixels * (1 + 1e-9)


@given(st.one_of(st.none(), st.text(max_size=30), st.lists(st.text(max_size=8), max_size=4),
                 st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=4), st.integers()))
def test_any_header_value_gives_a_spacing_or_a_message(value):
    spacing, messages = calibration.spacing_from_dicom({"ImagerPixelSpacing": value})
    if spacing is None:
        assert messages
    else:
        calibration.check_spacing(spacing.row_mm, spacing.col_mm)
