"""Reading radiographs: DICOM windowing, MONOCHROME1, bit depths, compression, PNG/JPEG, and bad input."""

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from orthoreg.imaging import dicomio, phantoms, render
from orthoreg.imaging.dicomio import ImageReadError, load_image


def _dicom(pixels, bits=12, **kwargs):
    return phantoms.dicom_bytes(pixels, bits=bits, **kwargs)


def _ramp(bits=12, shape=(64, 80)):
    top = 2 ** bits - 1
    values = np.linspace(0, top, shape[0] * shape[1]).reshape(shape)
    return np.rint(values).astype(np.uint8 if bits == 8 else np.uint16)


# --- render -------------------------------------------------------------------------------------------

def test_linear_window_follows_the_dicom_formula():
    values = np.array([0, 1000, 1499.5, 2000, 3000], dtype=np.float32)
    out = render.window_linear(values, 2000, 1000)
    assert out[0] == 0 and out[-1] == 1
    assert out[2] == pytest.approx(0.0, abs=1e-3)
    assert out[3] == pytest.approx(0.5 + 0.5 / 999, abs=1e-4)  # c - 0.5 maps to 0.5 exactly
    assert render.window_linear(values, 2000, 1000, exact=True)[3] == pytest.approx(0.5)


def test_sigmoid_window_is_monotone_and_centred():
    values = np.linspace(0, 4000, 50, dtype=np.float32)
    out = render.window_sigmoid(values, 2000, 800)
    assert np.all(np.diff(out) > 0)
    assert render.window_sigmoid(np.array([2000.0]), 2000, 800)[0] == pytest.approx(0.5)


def test_bad_windows_are_refused():
    for call in (lambda: render.window_linear(np.zeros(3), 0, 0.5), lambda: render.window_sigmoid(np.zeros(3), 0, 0),
                 lambda: render.window_linear(np.zeros(3), 0, 0, exact=True)):
        with pytest.raises(ValueError):
            call()


def test_voi_lut_maps_through_the_table():
    table = np.arange(0, 4096, 16)  # 256 entries
    out = render.apply_lut(np.array([-5, 0, 100, 255, 9999]), [256, 0, 16], table)
    assert out[0] == 0 and out[1] == 0 and out[-1] == 1 and out[-2] == 1
    assert out[2] == pytest.approx(100 / 255)


def test_auto_window_spans_the_data():
    centre, width = render.auto_window(_ramp().astype(np.float32))
    assert centre == pytest.approx(2047.5, rel=0.01) and width == pytest.approx(4095 * 0.99, rel=0.01)


def test_png_and_thumbnail_encode():
    pixels = (_ramp() >> 4).astype(np.uint8)
    assert PILImage.open(io.BytesIO(render.encode_png(pixels))).size == (80, 64)
    big = np.zeros((1000, 500), dtype=np.uint8)
    assert PILImage.open(io.BytesIO(render.thumbnail_png(big))).size == (160, 320)


# --- DICOM --------------------------------------------------------------------------------------------

def test_dicom_window_spacing_and_header(small_phantom, dicom_bytes):
    loaded = load_image(dicom_bytes)
    assert (loaded.format, loaded.width, loaded.height, loaded.bits) == ("dicom", 300, 220, 12)
    assert loaded.photometric == "MONOCHROME2"
    assert loaded.spacing.row_mm == 0.1 and loaded.spacing.source == "dicom_imager"
    assert loaded.window.startswith("Linear 2000/3600")
    assert loaded.header["laterality"] == "R" and loaded.header["study_date"] == "2025-03-03"
    assert loaded.header["modality"] == "DX"
    np.testing.assert_array_equal(loaded.intensities, small_phantom.pixels.astype(np.float32))
    expected = render.to_uint8(render.window_linear(small_phantom.pixels, 2000, 3600))
    np.testing.assert_array_equal(loaded.display, expected)


def test_monochrome1_is_inverted_for_display_and_measurement(small_phantom):
    mono2 = load_image(_dicom(small_phantom.pixels, window=None))
    mono1 = load_image(_dicom(small_phantom.pixels, photometric="MONOCHROME1", window=None))
    assert mono1.photometric == "MONOCHROME1"
    # The same picture: stored inverted, displayed the same way round (bone white) ...
    assert np.abs(mono1.display.astype(int) - mono2.display.astype(int)).max() <= 1
    # ... and measured with bone bright.
    assert np.corrcoef(mono1.intensities.ravel(), mono2.intensities.ravel())[0, 1] > 0.999


def _with_presentation_lut_shape(data: bytes, shape: str) -> bytes:
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(data))
    ds.PresentationLUTShape = shape
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_monochrome2_with_inverse_presentation_lut_is_inverted_for_display_and_measurement(small_phantom):
    plain = load_image(_dicom(small_phantom.pixels, window=None))
    # Stored with bone dark, MONOCHROME2, and a Presentation LUT Shape saying the display is inverted.
    stored = (2 ** 12 - 1 - small_phantom.pixels.astype(np.int64)).astype(np.uint16)
    loaded = load_image(_with_presentation_lut_shape(_dicom(stored, window=None), "INVERSE"))
    assert loaded.photometric == "MONOCHROME2"
    assert "inverted (Presentation LUT Shape INVERSE)" in loaded.window
    assert np.abs(loaded.display.astype(int) - plain.display.astype(int)).max() <= 1  # bone white
    assert np.corrcoef(loaded.intensities.ravel(), plain.intensities.ravel())[0, 1] > 0.999  # bone bright


def test_monochrome1_is_inverted_once_whatever_its_presentation_lut_shape(small_phantom):
    mono1 = _dicom(small_phantom.pixels, photometric="MONOCHROME1", window=None)  # says INVERSE
    inverse = load_image(mono1)
    identity = load_image(_with_presentation_lut_shape(mono1, "IDENTITY"))
    plain = load_image(_dicom(small_phantom.pixels, window=None))
    for loaded in (inverse, identity):
        assert np.abs(loaded.display.astype(int) - plain.display.astype(int)).max() <= 1
        np.testing.assert_array_equal(loaded.intensities, inverse.intensities)
        assert "inverted" not in loaded.window


@pytest.mark.parametrize("bits", [8, 10, 12, 14, 16])
def test_bit_depths_8_to_16(bits):
    pixels = _ramp(bits)
    loaded = load_image(_dicom(pixels, bits=bits))
    assert loaded.bits == bits
    assert loaded.intensities.max() == 2 ** bits - 1
    assert loaded.display.dtype == np.uint8 and loaded.display.min() == 0 and loaded.display.max() == 255
    assert loaded.window.startswith("automatic")


def test_voi_lut_sequence_wins_over_the_window():
    pixels = _ramp(12)
    lut = np.clip(np.arange(4096) * 2, 0, 4095)  # saturates at half range
    loaded = load_image(_dicom(pixels, window=(100, 10), voi_lut=lut))
    assert loaded.window == "VOI LUT"
    assert loaded.display[pixels >= 2048].min() == 255
    assert loaded.display[0, 0] == 0


def test_rescale_is_applied_before_the_window():
    pixels = _ramp(12)
    loaded = load_image(_dicom(pixels, rescale=(2, -1000), window=(3095, 8190)))
    assert loaded.intensities.min() == -1000 and loaded.intensities.max() == 2 * 4095 - 1000
    assert loaded.display.min() == 0 and loaded.display.max() == 255


def test_dicom_without_preamble_is_read(small_phantom):
    loaded = load_image(_dicom(small_phantom.pixels, preamble=False))
    assert loaded.format == "dicom" and loaded.width == 300


def test_rle_compressed_dicom_decodes_to_the_same_pixels(small_phantom):
    from pydicom.uid import RLELossless

    loaded = load_image(_dicom(small_phantom.pixels, transfer_syntax=RLELossless))
    np.testing.assert_array_equal(loaded.intensities, small_phantom.pixels.astype(np.float32))
    assert loaded.header["transfer_syntax"] == "RLE Lossless"


def test_jpeg2000_compressed_dicom_decodes_when_a_decoder_is_installed(small_phantom):
    from pydicom.pixels import get_encoder
    from pydicom.uid import JPEG2000Lossless

    if not get_encoder(JPEG2000Lossless).is_available or not dicomio.decoder_available(JPEG2000Lossless):
        pytest.skip("pylibjpeg-openjpeg is not installed: JPEG 2000 cannot be written or read here")
    loaded = load_image(_dicom(small_phantom.pixels, transfer_syntax=JPEG2000Lossless))
    np.testing.assert_array_equal(loaded.intensities, small_phantom.pixels.astype(np.float32))


def _dataset_bytes(transfer_syntax, pixel_data, rows=8, cols=8, frames=None, **extra):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, 1
    ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = \
        "MONOCHROME2", 16, 12, 11, 0
    if frames:
        ds.NumberOfFrames = frames
    for key, value in extra.items():
        setattr(ds, key, value)
    if pixel_data is not None:
        ds.PixelData = pixel_data
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_a_compression_without_decoder_gives_a_clear_message():
    from pydicom.encaps import encapsulate

    data = _dataset_bytes("1.2.840.10008.1.2.4.100", encapsulate([b"\x00" * 64]))  # MPEG-2 video
    with pytest.raises(ImageReadError, match="cannot decode.*export the radiograph uncompressed"):
        load_image(data)


def test_truncated_dicom_is_refused(dicom_bytes):
    with pytest.raises(ImageReadError, match="truncated"):
        load_image(dicom_bytes[: len(dicom_bytes) // 2])
    with pytest.raises(ImageReadError):
        load_image(dicom_bytes[:300])


def test_dicom_without_image_multiframe_and_float_are_refused():
    with pytest.raises(ImageReadError, match="no pixel data"):
        load_image(_dataset_bytes("1.2.840.10008.1.2.1", None))
    with pytest.raises(ImageReadError, match="2 frames"):
        load_image(_dataset_bytes("1.2.840.10008.1.2.1", b"\x00" * 256, frames=2))
    with pytest.raises(ImageReadError, match="8 to 16 bits"):
        load_image(_dataset_bytes("1.2.840.10008.1.2.1", b"\x00" * 256, BitsAllocated=32, BitsStored=32))


def test_dicom_claiming_too_many_pixels_is_refused_before_decoding():
    data = _dataset_bytes("1.2.840.10008.1.2.1", b"\x00" * 256, rows=60000, cols=60000)
    with pytest.raises(ImageReadError, match="decompression bomb"):
        load_image(data)


def test_deflated_dicom_is_read_and_a_deflate_bomb_is_refused():
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    zeros = np.zeros((1000, 1200), dtype=np.uint16)
    data = _dataset_bytes(DeflatedExplicitVRLittleEndian, zeros.tobytes(), rows=1000, cols=1200)
    assert len(data) < 100_000
    assert load_image(data).width == 1200
    with pytest.raises(ImageReadError, match="decompression bomb"):
        load_image(data, max_pixels=1000)


# --- PNG and JPEG -------------------------------------------------------------------------------------

def test_png_8_bit(png_bytes):
    loaded = load_image(png_bytes)
    assert (loaded.format, loaded.bits, loaded.photometric, loaded.spacing) == ("png", 8, "MONOCHROME2", None)
    np.testing.assert_array_equal(loaded.display, loaded.intensities.astype(np.uint8))


def test_png_16_bit_is_windowed_automatically(small_phantom):
    buffer = io.BytesIO()
    PILImage.fromarray(small_phantom.pixels).save(buffer, format="PNG")
    loaded = load_image(buffer.getvalue())
    assert loaded.bits == 16 and loaded.window.startswith("automatic")
    np.testing.assert_array_equal(loaded.intensities, small_phantom.pixels.astype(np.float32))


def test_grey_jpeg_saved_as_rgb_is_grey(jpeg_bytes):
    loaded = load_image(jpeg_bytes)
    assert (loaded.format, loaded.photometric, loaded.display.ndim) == ("jpeg", "MONOCHROME2", 2)


def test_colour_png_keeps_its_colour():
    rgb = np.zeros((20, 30, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format="PNG")
    loaded = load_image(buffer.getvalue())
    assert loaded.photometric == "RGB" and loaded.display.shape == (20, 30, 3)
    assert loaded.intensities.shape == (20, 30)


def test_truncated_png_and_jpeg_are_refused(png_bytes, jpeg_bytes):
    for data in (png_bytes[: len(png_bytes) // 2], jpeg_bytes[: len(jpeg_bytes) // 3]):
        with pytest.raises(ImageReadError, match="truncated|damaged"):
            load_image(data)


def _png_claiming(width, height) -> bytes:
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + \
        chunk(b"IEND", b"")


@pytest.mark.parametrize("width, height", [(50000, 50000), (10000, 7000)])
def test_png_decompression_bomb_is_refused(width, height):
    with pytest.raises(ImageReadError, match="decompression bomb"):
        load_image(_png_claiming(width, height))


def test_the_pixel_limit_is_a_parameter(png_bytes):
    with pytest.raises(ImageReadError, match="decompression bomb"):
        load_image(png_bytes, max_pixels=10_000)


@pytest.mark.parametrize("data", [b"", b"hello world", b"%PDF-1.7\n" + b"0" * 500, b"GIF89a" + b"\x00" * 100,
                                  b"\x00" * 132, b"\x00" * 128 + b"DICM" + b"\xff" * 50])
def test_not_an_image_is_refused_clearly(data):
    with pytest.raises(ImageReadError) as info:
        load_image(data)
    assert info.value.args[0]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes_raise_only_the_loaders_own_error(data):
    try:
        load_image(data)
    except ImageReadError as exc:
        assert str(exc)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_files_raise_only_the_loaders_own_error(data, dicom_bytes, png_bytes, jpeg_bytes):
    original = bytearray(data.draw(st.sampled_from([dicom_bytes, png_bytes, jpeg_bytes])))
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(original) - 1))
        original[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(original)))
    try:
        loaded = load_image(bytes(original[:cut]))
    except ImageReadError as exc:
        assert str(exc)
    else:
        assert loaded.display.dtype == np.uint8 and loaded.intensities.ndim == 2


# --- deflated DICOM: the inflate guard whatever the file meta looks like (issue 12, finding 2) ------------

def _deflated(pixel_bytes: int, layout: str) -> bytes:
    """A deflated DICOM whose small 8 x 8 header hides `pixel_bytes` of zeros, with the file meta laid out as
    `layout` says: 'standard', 'no_group_length', 'wrong_group_length' or 'no_preamble'."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    data = _dataset_bytes(DeflatedExplicitVRLittleEndian, bytes(pixel_bytes))
    assert data[132:138] == b"\x02\x00\x00\x00UL"  # (0002,0000) UL, as pydicom writes it
    if layout == "no_group_length":
        data = data[:132] + data[144:]
    elif layout == "wrong_group_length":
        data = data[:140] + struct.pack("<I", 10) + data[144:]
    elif layout == "no_preamble":
        data = data[132:]
    return data


_LAYOUTS = ["standard", "no_group_length", "wrong_group_length", "no_preamble"]


@pytest.mark.parametrize("layout", _LAYOUTS)
def test_a_small_deflated_dicom_reads_whatever_its_meta_layout(layout):
    loaded = load_image(_deflated(8 * 8 * 2, layout))
    assert (loaded.format, loaded.width, loaded.height) == ("dicom", 8, 8)


@pytest.mark.parametrize("layout", _LAYOUTS)
def test_a_deflate_bomb_is_refused_whatever_its_meta_layout_in_bounded_memory(layout):
    import tracemalloc

    max_pixels = 1_000_000
    limit = max_pixels * 6 + (1 << 20)  # what load_image allows a dataset to inflate to (7 MB here)
    inflated = 64 * 1024 * 1024
    data = _deflated(inflated, layout)
    assert len(data) < inflated // 500  # a real bomb: a few tens of KB inflating to 64 MB
    tracemalloc.start()
    try:
        with pytest.raises(ImageReadError, match=r"deflated DICOM file inflates to more than 7 MB.*decompression bomb"):
            load_image(data, max_pixels=max_pixels)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < limit / 2, f"inflating the refused file took {peak:,} bytes at its peak"


def test_a_damaged_deflate_stream_is_refused_with_a_clear_message():
    data = bytearray(_deflated(8 * 8 * 2, "no_group_length"))
    start = dicomio._deflated_dataset_start(bytes(data))
    assert start is not None
    data[start:] = b"\xff" * (len(data) - start)  # not a deflate stream
    with pytest.raises(ImageReadError, match="deflated DICOM file is damaged"):
        load_image(bytes(data))


# --- messages name no internal objects (issue 12, finding 10) ------------------------------------------

@pytest.mark.parametrize("signature", [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"])
@pytest.mark.parametrize("rest", [b"\x00" * 50, b"garbage" * 10, b"IHDR" + b"\xff" * 40])
def test_a_damaged_png_or_jpeg_header_gets_a_plain_message(signature, rest):
    with pytest.raises(ImageReadError) as caught:
        load_image(signature + rest)
    message = str(caught.value)
    assert "damaged" in message or "truncated" in message
    assert "0x" not in message and "<" not in message and "object" not in message, message


def test_library_messages_lose_object_addresses():
    assert dicomio._short(OSError("cannot identify image file <_io.BytesIO object at 0x7f3fec37cea0>")) == \
        "cannot identify image file"
    assert dicomio._short(ValueError("<PIL.PngImagePlugin.PngImageFile image mode=L size=4x4 at 0x7F1>")) == \
        "ValueError"
