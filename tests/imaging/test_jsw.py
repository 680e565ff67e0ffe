"""Semi-automatic joint space width on phantoms of known width: accuracy, "not measurable", units."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orthoreg.imaging import calibration, jsw, phantoms
from orthoreg.imaging.calibration import Spacing

SPACING = Spacing(0.1, 0.1, calibration.DICOM_IMAGER)
TOLERANCE_MM = 0.1  # mean absolute error allowed at 0.1 mm per pixel


def _errors(phantom, result):
    t = np.array([p.t for p in result.profiles])
    measured = np.array([np.nan if p.width_px is None else p.width_px * result.mm_per_px for p in result.profiles])
    return measured - phantom.true_width_mm(t)


def _third_truth(phantom, index):
    t = np.linspace(index / 3, (index + 1) / 3, 1001)
    return float(phantom.true_width_mm(t).mean())


CASES = [
    # blur px, noise, rotation deg, bits, texture
    (0.5, 0.0, 0.0, 16, 0.0),
    (1.0, 0.01, 0.0, 12, 0.0),
    (1.5, 0.02, 17.0, 12, 0.02),
    (2.0, 0.03, -33.0, 8, 0.0),
    (2.5, 0.02, 90.0, 16, 0.03),
    (1.0, 0.04, 135.0, 12, 0.04),
    (1.5, 0.01, -71.0, 8, 0.02),
    (2.0, 0.02, 200.0, 16, 0.0),
]


@pytest.mark.parametrize("blur, noise, rotation, bits, texture", CASES)
@pytest.mark.parametrize("medial", ["left", "right"])
def test_accuracy_on_phantoms(blur, noise, rotation, bits, texture, medial):
    phantom = phantoms.make_phantom(blur_px=blur, noise=noise, rotation_deg=rotation, bits=bits, texture=texture,
                                    medial=medial, gap_medial_mm=0.8, gap_lateral_mm=2.4, supersample=3,
                                    seed=int(blur * 10 + abs(rotation)))
    result = jsw.measure(phantom.pixels, phantom.line, SPACING)
    errors = _errors(phantom, result)
    measured = ~np.isnan(errors)
    assert measured.mean() >= 0.95
    assert np.nanmean(np.abs(errors)) <= TOLERANCE_MM
    summary = result.summary
    assert summary["unit"] == "mm"
    for index, name in enumerate(jsw.THIRDS):
        assert summary[name] == pytest.approx(_third_truth(phantom, index), abs=TOLERANCE_MM)
    assert summary["minimum"] == pytest.approx(0.8, abs=TOLERANCE_MM)
    assert summary["medial"] < summary["central"] < summary["lateral"]  # the first point is the medial end


@pytest.mark.parametrize("noise, texture, blur, seed", [(0.0, 0.0, 1.0, 1), (0.02, 0.0, 1.5, 2), (0.03, 0.05, 2.0, 3),
                                                        (0.05, 0.08, 1.0, 4)])
@pytest.mark.parametrize("bits", [8, 12, 16])
def test_fused_joint_is_not_measurable_never_zero(noise, texture, blur, seed, bits):
    phantom = phantoms.make_phantom(fused=True, noise=noise, texture=texture, blur_px=blur, bits=bits, seed=seed,
                                    supersample=2)
    result = jsw.measure(phantom.pixels, phantom.line, SPACING)
    summary = result.summary
    assert all(summary[name] is None for name in (*jsw.THIRDS, "minimum"))
    assert summary["measurable"] <= 0.05 * summary["count"]
    assert "not measurable" in " ".join(summary["notes"]).lower()
    widths = result.to_dict()["widths"]
    assert 0 not in widths and 0.0 not in widths


def test_a_partly_obliterated_joint_gives_no_minimum():
    # The space closes a third of the way from the medial end: the medial third is gone.
    phantom = phantoms.make_phantom(gap_medial_mm=-1.2, gap_lateral_mm=2.4, noise=0.01, supersample=2)
    summary = jsw.measure(phantom.pixels, phantom.line, SPACING).summary
    assert summary["lateral"] == pytest.approx(_third_truth(phantom, 2), abs=TOLERANCE_MM)
    assert summary["medial"] is None and summary["minimum"] is None
    assert any("minimum" in note for note in summary["notes"])


def test_uncalibrated_results_are_in_pixels():
    phantom = phantoms.make_phantom(supersample=2)
    result = jsw.measure(phantom.pixels, phantom.line, None)
    assert result.unit == "px" and result.mm_per_px is None
    assert result.summary["minimum"] == pytest.approx(10, abs=1)  # 1.0 mm at 0.1 mm/px
    assert "Uncalibrated" in " ".join(result.summary["notes"])


def test_anisotropic_spacing_uses_the_profile_direction():
    phantom = phantoms.make_phantom(supersample=2)  # joint horizontal: profiles run vertically, along columns
    result = jsw.measure(phantom.pixels, phantom.line, Spacing(0.1, 0.05, calibration.DICOM_PIXEL))
    assert result.mm_per_px == pytest.approx(0.1)


def test_margins_lie_on_either_side_of_the_line():
    phantom = phantoms.make_phantom(supersample=2)
    result = jsw.measure(phantom.pixels, phantom.line, SPACING)
    y_line = phantom.line[1]
    found = [p for p in result.profiles if p.a]
    assert all(min(p.a[1], p.b[1]) < y_line < max(p.a[1], p.b[1]) for p in found)
    middle = found[len(found) // 2]
    assert abs(abs(middle.b[1] - middle.a[1]) - 17.5) < 1  # 1.75 mm at the middle


def test_search_distance_and_to_dict():
    phantom = phantoms.make_phantom(supersample=2)
    result = jsw.measure(phantom.pixels, phantom.line, SPACING, search_px=40)
    data = result.to_dict()
    assert data["search_px"] == 40
    assert set(data) >= {"medial", "central", "lateral", "minimum", "unit", "widths", "profiles", "notes"}
    assert len(data["widths"]) == len(data["profiles"]) == data["count"]


@pytest.mark.parametrize("line, message", [
    ("1,2,3", "four numbers"), ("a,b,c,d", "four numbers"), ([0, 0, float("nan"), 0], "four numbers"),
    ((10, 10, 12, 12), "at least"), ((-5, 10, 200, 10), "outside"), ((10, 10, 100, 5000), "outside"),
])
def test_bad_lines_are_refused(line, message):
    with pytest.raises(jsw.JswError, match=message):
        jsw.measure(np.zeros((100, 200)), line)


def test_bad_search_distance_is_refused():
    with pytest.raises(jsw.JswError, match="search"):
        jsw.measure(np.zeros((100, 200)), (10, 50, 150, 50), search_px=0.5)


def test_a_blank_image_is_not_measurable():
    summary = jsw.measure(np.full((100, 200), 7.0), (10, 50, 190, 50)).summary
    assert summary["measurable"] == 0 and summary["minimum"] is None


def test_summarize_needs_half_of_a_third():
    t = np.linspace(0, 1, 9)
    widths = [None, None, 3.0, 4.0, 4.0, 4.0, 5.0, 5.0, 5.0]
    summary = jsw.summarize(t, widths, 0.1)
    assert summary["medial"] is None and summary["central"] == pytest.approx(0.4)
    assert summary["lateral"] == pytest.approx(0.5) and summary["minimum"] is None


@settings(max_examples=25, deadline=None)
@given(x1=st.floats(-50, 350), y1=st.floats(-50, 270), x2=st.floats(-50, 350), y2=st.floats(-50, 270))
def test_any_line_gives_a_result_or_a_clear_refusal(small_phantom, x1, y1, x2, y2):
    try:
        result = jsw.measure(small_phantom.pixels, (x1, y1, x2, y2), SPACING)
    except jsw.JswError as exc:
        assert str(exc)
        return
    for name in (*jsw.THIRDS, "minimum"):
        value = result.summary[name]
        assert value is None or value > 0


MTP = dict(anatomy="mtp", width_px=640, height_px=720, spacing_mm=0.1, joint_length_mm=24, curvature_mm=1.2,
           texture=0.03, noise=0.012, blur_px=1.2, bits=12, supersample=2, medial="right")


def test_the_first_mtp_phantom_is_measured_and_fused_is_not():
    phantom = phantoms.make_phantom(gap_medial_mm=0.45, gap_lateral_mm=1.7, seed=11, **MTP)
    summary = jsw.measure(phantom.pixels, phantom.line, SPACING).summary
    for index, name in enumerate(jsw.THIRDS):
        assert summary[name] == pytest.approx(_third_truth(phantom, index), abs=TOLERANCE_MM)
    fused = phantoms.make_phantom(fused=True, seed=11, **MTP)
    assert jsw.measure(fused.pixels, fused.line, SPACING).summary["measurable"] == 0


def test_the_first_mtp_phantom_shows_a_tubular_shaft_and_two_sesamoids():
    phantom = phantoms.make_phantom(**{**MTP, "noise": 0.0, "texture": 0.0, "medial": "left"})
    pixels = phantom.pixels.astype(float)
    x1, y1, x2, y2 = phantom.line  # medial end on the left
    # The metatarsal shaft, 25 mm below the joint: cortices (edges) brighter than the marrow between them.
    row = pixels[int(y1) + 250]
    bone = np.nonzero(row > 0.5 * row.max())[0]  # above the soft tissue
    assert row[bone[0]: bone[0] + 15].max() > row[(bone[0] + bone[-1]) // 2] + 200
    # Marrow in the shaft, cancellous bone in the head: the shaft's middle is darker than the head's.
    middle = int((x1 + x2) / 2)
    assert pixels[int(y1) + 30, middle] > pixels[int(y1) + 250, middle] + 50
    # Sesamoids under the head (8 mm below the joint), medial and lateral: brighter than the head between them.
    y = int(y1) + 80
    medial, lateral = pixels[y, int(middle - 0.38 * 120)], pixels[y + 8, int(middle + 0.40 * 120)]
    assert min(medial, lateral) > pixels[y, middle] + 150


def test_a_space_wider_than_the_first_window_is_found_by_growing_it():
    # 5-6 mm (50-60 px) wide; a short line (80 px) starts with profiles reaching 20 px each side.
    phantom = phantoms.make_phantom(gap_medial_mm=5.0, gap_lateral_mm=6.0, noise=0.01, supersample=2)
    x1, y1, x2, y2 = phantom.line
    result = jsw.measure(phantom.pixels, (x1 + 100, y1, x1 + 180, y1), SPACING)
    assert result.search_px > jsw.default_search_px(80)
    truth = float(phantom.true_width_mm(np.array([140 / (x2 - x1)]))[0])
    assert result.summary["central"] == pytest.approx(truth, abs=TOLERANCE_MM)
    assert result.summary["measurable"] >= 0.95 * result.summary["count"]
