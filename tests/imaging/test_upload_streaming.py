"""Uploads in bounded memory (issue 17 item 4): the file goes to disk as it arrives, is decoded from disk and copied
to storage in chunks; the stored original equals the upload byte for byte; a bad file leaves nothing behind, not
even its temporary file. Memory is measured with tracemalloc (allocations, not time)."""

from __future__ import annotations

import datetime as dt
import os
import tracemalloc

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile
from django.urls import reverse

from orthoreg.imaging import dicomio, phantoms, services
from orthoreg.imaging.models import Image

from .conftest import stored_files


@pytest.fixture(scope="module")
def larger_dicom() -> bytes:
    """About 3 MB: 1,600 x 1,000 pixels, 14 bits stored in 16, a window of its own."""
    phantom = phantoms.make_phantom(width_px=1600, height_px=1000, spacing_mm=0.1, joint_length_mm=100, bits=14,
                                    supersample=1, blur_px=1.2, noise=0.02)
    return phantom.to_dicom(laterality="R", study_date=dt.date(2025, 3, 3), window=(8000, 12000))


def _post(client, episode, data: bytes, name: str = "film.dcm"):
    return client.post(reverse("imaging:upload", args=[episode.pk]),
                       {"file": SimpleUploadedFile(name, data), "view": "ap_wb", "side": "right",
                        "date": "2025-03-03"})


def _temp_files(settings) -> list[str]:
    folder = services.upload_temp_dir()
    return sorted(os.listdir(folder))


def test_an_upload_is_spooled_to_disk_decoded_from_its_path_and_stored_byte_for_byte(
        clinician_client, episode, settings, larger_dicom, monkeypatch):
    seen: dict = {}
    real_store, real_load = services._image_store, dicomio.load_image

    def store(**kwargs):
        seen["file"] = kwargs["file"]
        seen["path"] = kwargs["path"]
        return real_store(**kwargs)

    def load(source, **kwargs):
        seen["source"] = source
        return real_load(source, **kwargs)

    def whole_read(self, *args):
        raise AssertionError("the upload was read whole into memory")

    monkeypatch.setattr(services, "_image_store", store)
    monkeypatch.setattr(dicomio, "load_image", load)
    monkeypatch.setattr(TemporaryUploadedFile, "read", whole_read, raising=False)
    response = _post(clinician_client, episode, larger_dicom)
    assert response.status_code == 302, response.content[:500]
    # Django's multipart parser wrote the file to a temporary file under the data directory, 64 KB at a time,
    # and the service decoded it from there (a path, never the bytes).
    assert isinstance(seen["file"], TemporaryUploadedFile)
    assert seen["path"] == seen["source"] and isinstance(seen["source"], str)
    assert os.path.dirname(seen["path"]) == services.upload_temp_dir()
    assert str(settings.DATA_DIR) in seen["path"]
    image = Image.objects.get()
    with image.original.open("rb") as fh:
        assert fh.read() == larger_dicom
    assert image.original_size == len(larger_dicom) and (image.width, image.height) == (1600, 1000)
    assert _temp_files(settings) == []  # the temporary file went with the request


@pytest.mark.parametrize("cut", ["header", "pixels"])
def test_a_truncated_dicom_is_a_form_error_and_leaves_nothing(clinician_client, episode, settings, larger_dicom,
                                                              cut):
    data = larger_dicom[:200] if cut == "header" else larger_dicom[:len(larger_dicom) - 10_000]
    response = _post(clinician_client, episode, data)
    assert response.status_code == 400
    assert b"errorlist" in response.content
    assert any(word in response.content for word in (b"truncated", b"damaged", b"incomplete", b"no image"))
    assert not Image.objects.exists() and stored_files(settings) == [] and _temp_files(settings) == []


def test_an_in_memory_file_is_copied_to_disk_in_chunks_and_removed(episode, clinician, settings, larger_dicom):
    """A file that is not already on disk (the PACS import hands over bytes) takes the same path."""
    image = services.image_upload(episode=episode, file=SimpleUploadedFile("pacs.dcm", larger_dicom), view="ap_wb",
                                  side="right", user=clinician)
    with image.original.open("rb") as fh:
        assert fh.read() == larger_dicom
    assert _temp_files(settings) == []
    with pytest.raises(services.ValidationError):
        services.image_upload(episode=episode, file=SimpleUploadedFile("cut.dcm", larger_dicom[:5000]),
                              view="ap_wb", side="right", user=clinician)
    assert _temp_files(settings) == [] and Image.objects.count() == 1


def test_an_upload_allocates_less_than_twice_the_file(episode, clinician, settings, larger_dicom, dicom_bytes,
                                                      tmp_path):
    """The old path held the bytes, the pixels, three float32 copies and the rendition (about 9x the file)."""
    spooled = tmp_path / "film.dcm"
    spooled.write_bytes(larger_dicom)
    services.image_upload(episode=episode, file=SimpleUploadedFile("warm.dcm", dicom_bytes),
                          view="ap_wb", side="right", user=clinician, date=dt.date(2025, 1, 1))  # imports, caches
    upload = TemporaryUploadedFile("film.dcm", "application/dicom", len(larger_dicom), None)
    with open(spooled, "rb") as fh:
        upload.write(fh.read())
    upload.flush()
    tracemalloc.start()
    try:
        services.image_upload(episode=episode, file=upload, view="ap_wb", side="right", user=clinician,
                              date=dt.date(2025, 1, 2))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        upload.close()
    assert peak < 2 * len(larger_dicom), f"peak {peak / 1e6:.1f} MB for a {len(larger_dicom) / 1e6:.1f} MB file"


@pytest.mark.parametrize("bits, signed, slope, photometric", [
    (14, False, None, "MONOCHROME2"), (16, False, None, "MONOCHROME1"), (12, True, None, "MONOCHROME2"),
    (12, False, 2.0, "MONOCHROME2"), (8, False, None, "MONOCHROME2")])
def test_decoding_from_a_path_equals_decoding_the_bytes(tmp_path, bits, signed, slope, photometric):
    """The file path way (pixels read straight into one array, the rendition a strip at a time) gives exactly
    what the bytes way gives (pydicom's pixel_array, the whole image at once)."""
    import io

    import pydicom

    phantom = phantoms.make_phantom(width_px=300, height_px=211, spacing_mm=0.1, bits=8 if bits == 8 else 16,
                                    supersample=1, noise=0.05)
    ds = pydicom.dcmread(io.BytesIO(phantom.to_dicom()))
    pixels = phantom.pixels
    if bits not in (8, 16):
        pixels = (pixels >> (16 - bits)).astype(np.uint16)
        if signed:
            pixels = (pixels.astype(np.int32) - 2 ** (bits - 1)).astype(np.int16)
        ds.BitsStored, ds.HighBit = bits, bits - 1
        if not signed:
            pixels[::7, ::5] |= np.uint16(0xF000)  # garbage in the unused high bits: cleared both ways
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = pixels.tobytes()
    ds.PhotometricInterpretation = photometric
    for keyword in ("WindowCenter", "WindowWidth"):
        if keyword in ds:
            delattr(ds, keyword)
    if slope:
        ds.RescaleSlope, ds.RescaleIntercept = slope, -100
    path = tmp_path / "film.dcm"
    ds.save_as(path, enforce_file_format=True)
    data = path.read_bytes()
    from_bytes = dicomio.load_image(data)
    from_path = dicomio.load_image(str(path))
    assert np.array_equal(from_bytes.display, from_path.display)
    assert np.array_equal(from_bytes.intensities, from_path.intensities)
    assert from_bytes.window == from_path.window and from_bytes.header == from_path.header
    light = dicomio.load_image(str(path), measure=False)
    assert np.array_equal(light.display, from_bytes.display) and light.intensities.size == 0
    assert (light.width, light.height) == (300, 211)
