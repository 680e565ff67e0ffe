"""Before/after layout at one physical scale, the width table, the PNG export and the demo images."""

import datetime as dt
import io
from pathlib import Path

import numpy as np
import pytest
from django.template import Context, Template
from PIL import Image as PILImage

from orthoreg.imaging import comparison, phantoms, selectors, services
from orthoreg.imaging.demo import create_demo_images

from .conftest import as_upload


@pytest.fixture
def demo(episode, clinician):
    return create_demo_images(episode=episode, before_date=dt.date(2025, 3, 10), after_date=dt.date(2025, 9, 12),
                              user=clinician)


def test_demo_images(demo, episode):
    before, after = demo
    for image in demo:
        assert image.calibrated and image.view == "ap_wb" and image.side == "right"
        assert "Generated phantom" in image.caption and "not a real X-ray" in image.caption
        kinds = sorted((a.kind, a.dashed) for a in image.annotations.all())
        assert kinds == [("arrow", False), ("ellipse", True)]
        measurement = image.accepted_measurement
        assert measurement.method == "semi_auto" and measurement.unit == "mm"
    b, a = before.accepted_measurement, after.accepted_measurement
    assert b.medial < b.lateral  # narrowed medially
    assert a.medial > b.medial + 0.3 and a.minimum > b.minimum  # wider after
    assert before.study.date < after.study.date


def test_layout_shows_the_same_field_in_mm(demo):
    layout = comparison.comparison_layout(*demo)
    assert layout.to_scale and layout.region == "joint" and not layout.notes
    widths_mm = [p.box[2] * p.image.spacing.col_mm for p in layout.panels]
    assert widths_mm[0] == pytest.approx(widths_mm[1])
    assert [p.relative_width for p in layout.panels] == [pytest.approx(0.5), pytest.approx(0.5)]
    for panel in layout.panels:
        x, y, w, h = panel.box
        line = panel.measurement.line
        assert x <= min(line[0], line[2]) and max(line[0], line[2]) <= x + w  # the joint is in view
        assert panel.scale_bar_mm in (1, 2, 5, 10, 20) and panel.margin_a
    rows = {r["name"]: r for r in layout.rows}
    assert rows["medial"]["change"] > 0.3 and rows["medial"]["change_text"].startswith("+")


def test_whole_images_of_different_spacing_share_one_scale(episode, clinician):
    images = []
    for day, spacing in ((dt.date(2025, 1, 5), 0.1), (dt.date(2025, 7, 5), 0.2)):
        phantom = phantoms.make_phantom(spacing_mm=spacing, width_px=200, height_px=150,
                                        joint_length_mm=120 * spacing, supersample=1)
        images.append(services.image_upload(episode=episode, file=as_upload(phantom.to_dicom(), f"{day}.dcm"),
                                            view="ap_wb", side="right", date=day))
    layout = comparison.comparison_layout(*images, region="whole")
    shares = [p.relative_width for p in layout.panels]
    assert shares[1] == pytest.approx(2 * shares[0])  # twice the mm per pixel: twice as wide on screen
    assert "no joint space width measurement" in " ".join(layout.notes)


def test_an_uncalibrated_image_is_not_to_scale(image, png_image):
    layout = comparison.comparison_layout(image, png_image)
    assert not layout.to_scale and "after image is uncalibrated" in layout.notes[0]


def test_width_rows_only_compare_like_units(image, png_image, small_phantom):
    mm = services.measurement_run(image=image, line=small_phantom.line)
    px = services.measurement_run(image=png_image, line=small_phantom.line)
    rows = selectors.width_rows(mm, px)
    assert all(r["change"] is None for r in rows)
    assert {r["change_text"] for r in rows} <= {"—", "not comparable"} and rows[3]["change_text"] == "not comparable"
    reason = selectors.change_not_comparable(mm, px)
    assert reason.startswith("not comparable: the before image is calibrated (mm) and the after image is not")
    assert rows[0]["before"].endswith(" mm") and rows[0]["after"].endswith("(uncalibrated)")
    assert selectors.width_rows(None, mm)[0]["before"] == "no measurement"


def _uncalibrated_png(episode, day, phantom):
    buffer = io.BytesIO()
    PILImage.fromarray((phantom.pixels / 16).astype(np.uint8)).save(buffer, format="PNG")
    return services.image_upload(episode=episode, file=as_upload(buffer.getvalue(), f"{day}.png"), view="ap_wb",
                                 side="right", date=day)


def test_pixel_change_only_between_uncalibrated_images_of_the_same_size(episode, png_image, small_phantom):
    before = services.measurement_run(image=png_image, line=small_phantom.line)  # 300 x 220 px
    again = phantoms.make_phantom(width_px=300, height_px=220, joint_length_mm=20, gap_medial_mm=1.0,
                                  gap_lateral_mm=2.5, supersample=2, seed=6)  # the same joint, other noise
    same = _uncalibrated_png(episode, dt.date(2025, 12, 1), again)
    after = services.measurement_run(image=same, line=again.line)
    assert selectors.change_not_comparable(before, after) == ""
    rows = {r["name"]: r for r in selectors.width_rows(before, after)}
    assert rows["minimum"]["change"] == pytest.approx(0, abs=0.5) and rows["minimum"]["change_text"].endswith(" px")

    # The same joint at twice the resolution: its width doubles in pixels, not on the patient.
    fine = phantoms.make_phantom(width_px=600, height_px=440, spacing_mm=0.05, joint_length_mm=20,
                                 gap_medial_mm=1.0, gap_lateral_mm=2.5, supersample=1, seed=5)
    bigger = _uncalibrated_png(episode, dt.date(2026, 1, 5), fine)
    other = services.measurement_run(image=bigger, line=fine.line)
    assert other.unit == "px" and other.minimum > before.minimum * 1.5
    reason = selectors.change_not_comparable(before, other)
    assert reason.startswith("not comparable: both images are uncalibrated and of different sizes")
    assert "300 × 220 px before, 600 × 440 px after" in reason
    rows = selectors.width_rows(before, other)
    assert all(r["change"] is None and r["change_text"] in ("—", "not comparable") for r in rows)
    assert not any(r["change_text"].endswith("px") for r in rows)

    layout = comparison.comparison_layout(png_image, bigger)
    assert layout.not_comparable == reason


def test_default_pair_is_first_and_last_of_the_same_view(episode, dicom_bytes, png_bytes, jpeg_bytes):
    first = services.image_upload(episode=episode, file=as_upload(dicom_bytes), view="ap_wb", side="right",
                                  date=dt.date(2025, 1, 1))
    services.image_upload(episode=episode, file=as_upload(jpeg_bytes, "l.jpg"), view="lateral", side="right",
                          date=dt.date(2025, 2, 1))
    last = services.image_upload(episode=episode, file=as_upload(png_bytes, "b.png"), view="ap_wb", side="right",
                                 date=dt.date(2025, 8, 1))
    before, after, images = selectors.pick_pair(episode, None, None)
    assert (before, after) == (first, last) and len(images) == 3


def test_comparison_png_is_a_clean_picture(demo):
    png = comparison.comparison_png(*demo)
    picture = PILImage.open(io.BytesIO(png))
    assert picture.format == "PNG" and picture.size[0] >= 1000
    pixels = np.asarray(picture.convert("RGB"))
    assert pixels.std() > 20  # not blank
    whole = PILImage.open(io.BytesIO(comparison.comparison_png(*demo, region="whole")))
    assert whole.size == picture.size
    artifacts = Path(__file__).resolve().parents[2] / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    picture.save(artifacts / "imaging-compare-export.png")  # to look at


def test_comparison_png_says_which_changes_are_within_measurement_error(demo):
    figure = comparison.comparison_figure(*demo)
    text = " ".join(t.get_text() for ax in figure.axes for t in ax.texts)
    cells = " ".join(c.get_text().get_text() for ax in figure.axes for table in ax.tables
                     for c in table.get_celld().values())
    assert "Smallest detectable change for this pair of films: 0.69 mm" in text and "J Rheumatol 1999;26:1359" in text
    assert "(within measurement error)" in cells  # the lateral third: +0.30 mm


def test_episode_images_tag(demo, episode):
    html = Template("{% load imaging_tags %}{% episode_images episode %}").render(Context({"episode": episode}))
    assert html.count("<img ") == 2 and "Before / after" in html and "+ Radiograph" in html
    assert "min 0." in html and "mm" in html


def test_svg_annotation_tag_escapes_labels(demo):
    before = demo[0]
    arrow = before.annotations.get(kind="arrow")
    arrow.label = '<script>alert(1)</script>'
    layout = comparison.comparison_layout(*demo)
    template = Template("{% load imaging_tags %}{% svg_annotation a p %}")
    html = template.render(Context({"a": arrow, "p": layout.panels[0]}))
    assert "<script>" not in html and "&lt;script&gt;" in html and "<polygon" in html


def _pair(before_header, after_header, *, views=("ap_wb", "ap_wb"), sources=("dicom_imager", "dicom_imager"),
          unit="mm", widths=(1.0, 1.5)):
    from orthoreg.imaging.models import Image, Measurement

    pair = []
    for header, view, source, width in zip((before_header, after_header), views, sources, widths):
        image = Image(header=header, view=view, width=100, height=100)
        pair.append(Measurement(image=image, unit=unit, calibration_source=source, medial=width, central=width,
                                lateral=width, minimum=width))
    return pair


SIEMENS, FUJI = {"manufacturer": "Siemens"}, {"manufacturer": "Fujifilm"}


@pytest.mark.parametrize("headers, kw, sdc", [
    ((SIEMENS, SIEMENS), {}, 0.69),  # same unit, projection, calibration: SEm 0.25 mm
    ((SIEMENS, SIEMENS), {"views": ("ap_wb", "ap")}, 0.89),  # projection differs: 0.32 mm
    ((SIEMENS, SIEMENS), {"sources": ("dicom_imager", "manual")}, 0.89),  # calibration differs
    ((SIEMENS, FUJI), {}, 1.25),  # between units: 0.45 mm
    (({}, {}), {}, 1.25),  # device unknown (PNG uploads): not assumed the same
    (({"manufacturer": ""}, {"manufacturer": ""}), {}, 1.25),
])
def test_smallest_detectable_change_depends_on_the_pair(headers, kw, sdc):
    before, after = _pair(*headers, **kw)
    result = selectors.smallest_detectable_change(before, after)
    assert result["sdc_mm"] == pytest.approx(sdc) and result["source"] == "J Rheumatol 1999;26:1359"


def test_a_change_below_the_sdc_is_within_measurement_error():
    rows = {r["name"]: r for r in selectors.width_rows(*_pair(SIEMENS, SIEMENS, widths=(1.0, 1.5)))}
    assert rows["medial"]["change"] == pytest.approx(0.5) and rows["medial"]["within_error"]
    assert "within measurement error" in rows["medial"]["error_text"] and "0.69 mm" in rows["medial"]["error_text"]
    rows = {r["name"]: r for r in selectors.width_rows(*_pair(SIEMENS, SIEMENS, widths=(1.0, 1.8)))}
    assert not rows["medial"]["within_error"] and rows["medial"]["error_text"] == ""
    # The same 0.8 mm between two devices is within error (SDC 1.25 mm).
    rows = {r["name"]: r for r in selectors.width_rows(*_pair(SIEMENS, FUJI, widths=(1.0, 1.8)))}
    assert rows["medial"]["within_error"]


def test_the_clinic_can_set_its_own_sem(settings):
    settings.JSW_SEM_MM = 0.1
    result = selectors.smallest_detectable_change(*_pair(SIEMENS, FUJI))
    assert result["sdc_mm"] == pytest.approx(0.28) and "ORTHOREG_JSW_SEM_MM" in result["source"]
    rows = {r["name"]: r for r in selectors.width_rows(*_pair(SIEMENS, FUJI, widths=(1.0, 1.5)))}
    assert not rows["medial"]["within_error"]


def test_pixels_have_no_smallest_detectable_change():
    before, after = _pair(SIEMENS, SIEMENS, unit="px", widths=(10, 10.5))
    assert selectors.smallest_detectable_change(before, after) is None
    assert not any(r["within_error"] for r in selectors.width_rows(before, after))
