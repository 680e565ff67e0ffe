"""Fixtures of the imaging tests: small phantom radiographs as DICOM, PNG and JPEG, and an uploaded image."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from orthoreg.imaging import phantoms, services

SPACING = 0.1


@pytest.fixture(scope="session")
def small_phantom():
    """A 12-bit phantom, 0.1 mm per pixel, joint space 1.0 mm medially widening to 2.5 mm laterally."""
    return phantoms.make_phantom(width_px=300, height_px=220, joint_length_mm=20, gap_medial_mm=1.0,
                                 gap_lateral_mm=2.5, supersample=2, seed=5)


@pytest.fixture(scope="session")
def dicom_bytes(small_phantom):
    return small_phantom.to_dicom(laterality="R", study_date=dt.date(2025, 3, 3), window=(2000, 3600))


@pytest.fixture(scope="session")
def png_bytes(small_phantom):
    eight = (small_phantom.pixels / 16).astype(np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(eight).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def jpeg_bytes(small_phantom):
    eight = (small_phantom.pixels / 16).astype(np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(eight).convert("RGB").save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def as_upload(data: bytes, name: str = "xray.dcm") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data)


def stored_files(settings) -> list:
    root = settings.MEDIA_ROOT
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def image(episode, clinician, dicom_bytes):
    return services.image_upload(episode=episode, file=as_upload(dicom_bytes), view="ap_wb", side="right",
                                 date=dt.date(2025, 3, 3), caption="phantom", user=clinician)


@pytest.fixture
def png_image(episode, clinician, png_bytes):
    return services.image_upload(episode=episode, file=as_upload(png_bytes, "xray.png"), view="ap_wb",
                                 side="right", date=dt.date(2025, 9, 3), user=clinician)

