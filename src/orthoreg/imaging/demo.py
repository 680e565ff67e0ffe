"""Demo radiographs for DF's right first MTP joint: generated phantoms, labelled as such.

    from orthoreg.imaging.demo import create_demo_images
    before, after = create_demo_images(episode=episode, before_date=..., after_date=..., user=clinician)

Each is an AP weight-bearing phantom with a calibrated DICOM header (ImagerPixelSpacing 0.1 mm), her
dashed circle around the medial joint line and an arrow pointing at it, and an accepted semi-automatic
joint space width. Before: the medial joint space narrowed; after: wider.
"""

from __future__ import annotations

import datetime as dt

from django.core.files.uploadedfile import SimpleUploadedFile

from orthoreg.registry.coding import Side

from . import phantoms, services
from .models import Image

SPACING_MM = 0.1
JOINT_MM = 24.0
BEFORE = {"gap_medial_mm": 0.45, "gap_lateral_mm": 1.7, "seed": 11}
AFTER = {"gap_medial_mm": 1.25, "gap_lateral_mm": 1.9, "seed": 12}
CAPTION = ("Generated phantom radiograph, not a real X-ray: {what}. Made by the demo to show calibration, "
           "annotation and joint space measurement.")


def _phantom(side: str, **gaps) -> phantoms.Phantom:
    return phantoms.make_phantom(
        anatomy="mtp", width_px=640, height_px=720, spacing_mm=SPACING_MM, joint_length_mm=JOINT_MM,
        curvature_mm=1.2, texture=0.03, noise=0.012, blur_px=1.2, bits=12, supersample=2,
        # An AP radiograph is viewed as if facing the patient: a right foot's medial side is on the image's right.
        medial="right" if side != Side.LEFT else "left", **gaps)


def _one(episode, day: dt.date, gaps: dict, what: str, user) -> Image:
    side = episode.side if episode.side in (Side.LEFT, Side.RIGHT) else Side.RIGHT
    phantom = _phantom(side, **gaps)
    data = phantom.to_dicom(laterality="R" if side == Side.RIGHT else "L", study_date=day,
                            window=(2100, 2800), patient_name="PHANTOM^DEMO")
    upload = SimpleUploadedFile(f"demo-first-mtp-{day:%Y%m%d}.dcm", data, content_type="application/dicom")
    image = services.image_upload(episode=episode, file=upload, view=Image.View.AP_WEIGHT_BEARING, side=side,
                                  date=day, caption=CAPTION.format(what=what),
                                  description="Foot radiographs, first MTP joint (generated)", user=user)
    x1, y1, x2, y2 = phantom.line  # medial end first
    toward_medial = 1 if x1 > x2 else -1
    # The medial joint line: where it meets the medial end of the joint, a little inside.
    mx, my = x1 - toward_medial * 0.18 * abs(x1 - x2), y1 - 3
    services.annotation_save(image=image, kind="ellipse", dashed=True, colour="#ffd400", label="",
                             geometry={"cx": mx, "cy": my, "rx": 70, "ry": 48, "angle": 0}, user=user)
    services.annotation_save(image=image, kind="arrow", colour="#ff4d4d", label="medial joint line",
                             geometry={"x1": mx + toward_medial * 150, "y1": my - 170,
                                       "x2": mx + toward_medial * 52, "y2": my - 48}, user=user)
    measurement = services.measurement_run(image=image, line=phantom.line, user=user)
    services.measurement_accept(measurement=measurement, user=user)
    return image


def create_demo_images(*, episode, before_date: dt.date, after_date: dt.date, user=None) -> tuple[Image, Image]:
    """Create DF's before and after phantom radiographs on `episode`; returns (before, after)."""
    before = _one(episode, before_date, BEFORE, "before treatment, medial joint space narrowed", user)
    after = _one(episode, after_date, AFTER, "6 months after treatment, medial joint space wider", user)
    return before, after
