"""Decoding a real radiograph (the ankle CR of pydicom-data, tests/data/README.md) compressed or in colour: the
same pixels, renditions and intensities as before, with fewer whole copies of the image in memory at once
(tracemalloc counts numpy's arrays; no timing). benchmarks/imaging_memory.py prints the same figures."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pydicom
import pytest

from orthoreg.imaging import render
from orthoreg.imaging.dicomio import load_image
from tests.imaging.real_films import film_path, variants


@pytest.fixture(scope="module")
def films(tmp_path_factory):
    return variants(tmp_path_factory.mktemp("films"))


def _peak(path, measure=True):
    load_image(path, measure=measure)  # imports and caches settle
    tracemalloc.start()
    try:
        loaded = load_image(path, measure=measure)
        return loaded, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_rle_decodes_to_the_stored_films_renditions_and_intensities(films):
    stored, rle = load_image(film_path("ankle")), load_image(films["ankle RLE"])
    assert np.array_equal(stored.display, rle.display) and np.array_equal(stored.intensities, rle.intensities)
    assert stored.window == rle.window and stored.photometric == rle.photometric == "MONOCHROME1"
    from_bytes = load_image(films["ankle RLE"].read_bytes())
    assert np.array_equal(from_bytes.display, rle.display) and np.array_equal(from_bytes.intensities, rle.intensities)


@pytest.mark.parametrize("name", ["ankle RGB", "ankle RGB RLE"])
def test_colour_rendition_and_luminance_are_the_whole_image_formulas(films, name):
    loaded = load_image(films[name])
    pixels = pydicom.dcmread(films[name]).pixel_array
    rgb = pixels.astype(np.float32)  # the formulas applied to the whole image at once
    assert np.array_equal(loaded.display, render.to_uint8(np.clip(rgb / 255.0, 0, 1)))
    display = loaded.display.astype(np.float32)
    luminance = display[..., 0] * 0.299 + display[..., 1] * 0.587 + display[..., 2] * 0.114
    assert loaded.intensities.dtype == np.float32 and np.array_equal(loaded.intensities, luminance)
    assert load_image(films[name], measure=False).intensities.size == 0  # an upload needs no intensities


@pytest.mark.parametrize("name, most", [
    ("ankle as stored", 4.0),  # was 4.5 x its pixels (the float copies of the whole image)
    ("ankle RLE", 4.5),  # was 5.8 x (the dataset kept the decoded array while the floats were made)
    ("ankle RGB", 4.0),  # was 15 x (whole float32 copies of the three channels)
    ("ankle RGB RLE", 4.5),  # was 14.5 x
])
def test_peak_memory_of_a_decode(films, name, most):
    path = film_path("ankle") if name == "ankle as stored" else films[name]
    loaded, peak = _peak(path)
    pixels = loaded.height * loaded.width * (3 if loaded.photometric == "RGB" else 2)
    assert peak < most * pixels, f"{name}: peak {peak / 1e6:.1f} MB for {pixels / 1e6:.1f} MB of pixels"
