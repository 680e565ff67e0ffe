"""Read a radiograph from bytes or from a file on disk: DICOM (pydicom), PNG or JPEG (Pillow).

Pure (no Django). `load_image` returns the pixel values to measure on (bone bright, whatever the
photometric interpretation), an 8-bit display rendition (the file's own window/level or VOI LUT;
MONOCHROME1, and MONOCHROME2 with Presentation LUT Shape INVERSE, inverted) and the header facts the
registry keeps. Anything it cannot read raises ImageReadError with a message meant for the person who
uploaded the file, never another exception.

Memory (issue 17 item 4): read from a path, an uncompressed DICOM's pixels are read from the file straight into
one array (never the file's bytes as well), the display rendition is computed a strip of rows at a time, and with
`measure=False` (an upload, which only needs the renditions) no floating-point copy of the image is made: a
20 MB DICOM costs about its pixels plus the 8-bit rendition. A compressed DICOM's decoded array is held by nothing
but the loader (not the dataset's cache too), and a colour image's rendition and luminance are computed a strip of
rows at a time (benchmarks/imaging_memory.py: a colour radiograph's peak went from 15 to 2.6 times its pixels).
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps

from . import render
from .calibration import Spacing, spacing_from_dicom

# 60 megapixels: a 43 x 43 cm detector at 0.056 mm is about 59 MP; anything larger is refused before
# its pixels are decoded, which is what stops a decompression bomb.
MAX_PIXELS = 60_000_000

FORMAT_DICOM = "dicom"
FORMAT_PNG = "png"
FORMAT_JPEG = "jpeg"

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SIGNATURE = b"\xff\xd8\xff"
_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT", "PALETTE COLOR")
_STRIP_ROWS = 32  # the display rendition is windowed this many rows at a time (bounded floating-point copies)

Source = bytes | str | os.PathLike


class ImageReadError(ValueError):
    """The file cannot be used as a radiograph; the message says why and what to do."""


@dataclass
class LoadedImage:
    format: str  # dicom, png or jpeg
    intensities: np.ndarray  # 2-D float32, higher = denser (bone bright): what measurements run on (0 x 0 when
    #                          loaded with measure=False)
    display: np.ndarray  # uint8, H x W (grey) or H x W x 3 (colour): the display rendition
    bits: int  # bits stored per sample
    photometric: str  # DICOM vocabulary: MONOCHROME1, MONOCHROME2, RGB
    spacing: Spacing | None = None
    spacing_messages: list[str] = field(default_factory=list)
    window: str = ""  # how the display rendition was windowed, for the record
    header: dict = field(default_factory=dict)  # modality, laterality, view_position, study_date, ...

    @property
    def height(self) -> int:
        return int(self.display.shape[0])

    @property
    def width(self) -> int:
        return int(self.display.shape[1])


def sniff_format(data: bytes) -> str | None:
    if len(data) >= 132 and data[128:132] == b"DICM":
        return FORMAT_DICOM
    if data.startswith(_PNG_SIGNATURE):
        return FORMAT_PNG
    if data.startswith(_JPEG_SIGNATURE):
        return FORMAT_JPEG
    return None


def decoder_available(transfer_syntax) -> bool:
    """Whether pixel data in this transfer syntax can be decoded with the packages installed."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID

    uid = UID(str(transfer_syntax))
    if not uid.is_compressed:
        return True
    try:
        return get_decoder(uid).is_available
    except NotImplementedError:
        return False


def _head(source: Source, size: int = 132) -> bytes:
    if isinstance(source, bytes):
        return source[:size]
    with open(source, "rb") as fh:
        return fh.read(size)


def _stream(source: Source):
    """A binary stream of the source (a BytesIO over bytes, else the file opened), for `with`."""
    return io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")


def load_image(source: Source, *, max_pixels: int = MAX_PIXELS, measure: bool = True) -> LoadedImage:
    """Read DICOM, PNG or JPEG, given as bytes or as the path of a file. Raises ImageReadError only.

    With measure=False the intensities are not computed (an empty array): the display rendition and the header
    facts only, in less memory."""
    try:
        head = _head(source)
    except OSError:
        raise ImageReadError("The file cannot be read.") from None
    if not head:
        raise ImageReadError("The file is empty.")
    kind = sniff_format(head)
    try:
        if kind in (FORMAT_PNG, FORMAT_JPEG):
            return _load_raster(source, kind, max_pixels, measure)
        return _load_dicom(source, max_pixels, has_preamble=(kind == FORMAT_DICOM), measure=measure)
    except ImageReadError:
        raise
    except MemoryError:
        raise ImageReadError("The image is too large to process.") from None
    except Exception as exc:
        what = {FORMAT_PNG: "PNG", FORMAT_JPEG: "JPEG", FORMAT_DICOM: "DICOM"}.get(kind)
        if what is None:
            raise ImageReadError(
                "This is not a DICOM, PNG or JPEG image (the file's content was not recognised).") from None
        raise ImageReadError(f"This {what} file is damaged or incomplete and cannot be read ({_short(exc)}).") from None


# A library's message may name an internal object ("<_io.BytesIO object at 0x7f...>"): meaningless to the person
# who uploaded the file, and an internal address besides.
_OBJECT_REPR = re.compile(r"\s*<[^<>]*\bat 0x[0-9a-fA-F]+>")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = _OBJECT_REPR.sub("", text).strip() or type(exc).__name__
    return text[:160]


def _too_big(width: int, height: int, max_pixels: int) -> ImageReadError:
    return ImageReadError(
        f"The image claims {width:,} × {height:,} pixels ({width * height / 1e6:.0f} megapixels), more than the "
        f"{max_pixels / 1e6:.0f} megapixels accepted: it is refused as a possible decompression bomb.")


# --- PNG and JPEG -------------------------------------------------------------------------------------

def _load_raster(source: Source, kind: str, max_pixels: int, measure: bool = True) -> LoadedImage:
    name = "PNG" if kind == FORMAT_PNG else "JPEG"
    with warnings.catch_warnings():
        warnings.simplefilter("error", PILImage.DecompressionBombWarning)
        try:
            image = PILImage.open(io.BytesIO(source) if isinstance(source, bytes) else source, formats=[name])
        except PILImage.DecompressionBombError:
            raise ImageReadError(f"This {name} claims more pixels than accepted: refused as a possible "
                                 "decompression bomb.") from None
        except PILImage.DecompressionBombWarning:
            raise ImageReadError(f"This {name} claims more pixels than accepted: refused as a possible "
                                 "decompression bomb.") from None
        except PILImage.UnidentifiedImageError:
            raise ImageReadError(f"This {name} file is damaged: it starts like a {name} but its header cannot be "
                                 "read. Export or save the image again and upload the new file.") from None
        width, height = image.size
        if width * height > max_pixels:
            raise _too_big(width, height, max_pixels)
        if getattr(image, "n_frames", 1) > 1:
            raise ImageReadError(f"This {name} is animated ({image.n_frames} frames); upload a single still image.")  # type: ignore[attr-defined]
        try:
            image.load()
        except OSError as exc:
            raise ImageReadError(f"This {name} file is truncated or damaged ({_short(exc)}).") from None
        image = ImageOps.exif_transpose(image)  # type: ignore[assignment]  # phone photos: upright, as the viewer sees them

    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image)
        if mode == "I":
            values = np.clip(values, 0, 65535)
        values = values.astype(np.uint16)
        center, width_ = render.auto_window(values)
        display = render.to_uint8(render.window_linear(values, center, width_))
        return LoadedImage(kind, _floats(values, measure), display, 16, "MONOCHROME2",
                           window=f"automatic {center:.0f}/{width_:.0f}")
    if mode in ("1", "L", "LA", "La"):
        display = np.asarray(image.convert("L"))
        return LoadedImage(kind, _floats(display, measure), display, 8, "MONOCHROME2", window="as stored")
    rgb = np.asarray(image.convert("RGB"))
    if _is_grey(rgb):
        display = np.ascontiguousarray(rgb[..., 0])
        return LoadedImage(kind, _floats(display, measure), display, 8, "MONOCHROME2", window="as stored")
    return LoadedImage(kind, _luminance(rgb) if measure else _NOTHING, rgb, 8, "RGB", window="as stored")


_NOTHING = np.empty((0, 0), dtype=np.float32)


def _floats(values: np.ndarray, measure: bool) -> np.ndarray:
    return values.astype(np.float32) if measure else _NOTHING


def _is_grey(rgb: np.ndarray) -> bool:
    sample = rgb[::7, ::7].astype(np.int16)
    return bool(np.abs(sample[..., 0] - sample[..., 1]).max(initial=0) <= 2
                and np.abs(sample[..., 1] - sample[..., 2]).max(initial=0) <= 2)


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """Luminance as float32, computed a strip of rows at a time (no whole float copy of the colour image)."""
    out = np.empty(rgb.shape[:2], dtype=np.float32)
    for top in range(0, rgb.shape[0], _STRIP_ROWS):
        strip = rgb[top:top + _STRIP_ROWS].astype(np.float32)
        out[top:top + _STRIP_ROWS] = strip[..., 0] * 0.299 + strip[..., 1] * 0.587 + strip[..., 2] * 0.114
    return out


# --- DICOM --------------------------------------------------------------------------------------------

_INFLATE_CHUNK = 1 << 20  # the bounded inflater reads and writes at most 1 MiB at a time


def _deflated_dataset_start(stream) -> int | None:  # a binary stream, or bytes
    """Where a deflated dataset starts, found the way pydicom's dcmread finds it; None if not deflated.

    The file meta is parsed element by element (never trusting its group length, which may be absent or
    wrong), then any command set, exactly as dcmread does before it inflates the rest of the file whole.
    """
    from pydicom.filereader import _read_command_set_elements, _read_file_meta_info, read_preamble
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    if isinstance(stream, bytes):
        stream = io.BytesIO(stream)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read_preamble(stream, True)  # past the preamble and 'DICM' if present, else back to the start
            meta = _read_file_meta_info(stream)
            _read_command_set_elements(stream)
            syntax = meta.get("TransferSyntaxUID")
    except Exception:
        return None
    if syntax is None or str(syntax).strip("\x00 ") != DeflatedExplicitVRLittleEndian:
        return None
    return stream.tell()


def _guard_deflate(source: Source, limit: int) -> None:
    """pydicom inflates a deflated dataset whole: first inflate it here, in bounded chunks, counting the bytes,
    and refuse it as soon as it passes `limit` (memory stays about one chunk whatever the file claims)."""
    with _stream(source) as stream:
        start = _deflated_dataset_start(stream)
        if start is None:
            return
        stream.seek(start)
        _inflate_bounded(stream, limit)


def _inflate_bounded(stream, limit: int) -> None:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    try:
        while chunk := stream.read(_INFLATE_CHUNK):
            pending: bytes = chunk
            while True:
                produced = len(inflater.decompress(pending, _INFLATE_CHUNK))
                total += produced
                if total > limit:
                    raise ImageReadError(
                        f"This deflated DICOM file inflates to more than {limit / 1048576:,.0f} MB, more data than "
                        "any accepted image holds: it is refused as a possible decompression bomb.")
                pending = inflater.unconsumed_tail
                if inflater.eof or (not pending and produced < _INFLATE_CHUNK):
                    break
            if inflater.eof:
                break
    except zlib.error:
        raise ImageReadError("This deflated DICOM file is damaged and cannot be inflated.") from None


def _load_dicom(source: Source, max_pixels: int, *, has_preamble: bool, measure: bool = True) -> LoadedImage:
    import pydicom
    from pydicom.pixels import apply_modality_lut

    _guard_deflate(source, max_pixels * 6 + (1 << 20))
    on_disk = not isinstance(source, bytes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # From a file, large values (the pixel data) are left on disk until asked for.
            ds = pydicom.dcmread(io.BytesIO(source) if isinstance(source, bytes) else source,
                                 force=not has_preamble, defer_size="256 KB" if on_disk else None)
    except Exception:
        if has_preamble:
            raise ImageReadError("This DICOM file is damaged or truncated: its header cannot be read.") from None
        raise ImageReadError(
            "This is not a DICOM, PNG or JPEG image (the file's content was not recognised).") from None
    if "PixelData" not in ds:
        if not has_preamble and "FloatPixelData" not in ds:
            raise ImageReadError("This is not a DICOM, PNG or JPEG image (the file's content was not recognised).")
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise ImageReadError("This DICOM holds floating-point pixel data, which is not a radiograph; "
                                 "export the image as integer (8-16 bit) DICOM.")
        raise ImageReadError("This DICOM file holds no image (no pixel data): it may be a report or a "
                             "presentation state. Upload the radiograph itself.")

    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows <= 0 or cols <= 0:
        raise ImageReadError("This DICOM file does not say how many rows and columns its image has.")
    if rows * cols > max_pixels:
        raise _too_big(cols, rows, max_pixels)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ImageReadError(f"This DICOM holds {frames} frames (a multi-frame series); upload a single radiograph.")
    bits_allocated = int(ds.get("BitsAllocated", 0) or 0)
    bits_stored = int(ds.get("BitsStored", bits_allocated) or bits_allocated)
    if bits_allocated not in (8, 16) or not 1 <= bits_stored <= 16:
        raise ImageReadError(f"This DICOM stores {bits_stored or bits_allocated}-bit pixels in "
                             f"{bits_allocated} bits; 8 to 16 bits are supported.")
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if photometric not in _MONOCHROME + _COLOUR:
        raise ImageReadError(f"This DICOM's photometric interpretation {photometric or '(none)'} is not supported.")

    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None:
        raise ImageReadError("This DICOM file does not say how its pixels are encoded (no transfer syntax).")
    if syntax.is_compressed:
        if not decoder_available(syntax):
            raise ImageReadError(
                f"This DICOM is compressed as “{syntax.name}”, which this installation cannot decode. "
                "Ask the administrator to install the optional decoders (pip install pylibjpeg "
                "pylibjpeg-libjpeg pylibjpeg-openjpeg), or export the radiograph uncompressed.")
    else:
        expected = rows * cols * int(ds.get("SamplesPerPixel", 1) or 1) * (bits_allocated // 8)
        stored = _pixel_data_length(ds, source)
        if stored < expected:
            raise ImageReadError(
                f"This DICOM's image data is incomplete ({stored:,} of {expected:,} bytes): "
                "the file looks truncated. Upload it again from the original source.")

    try:
        pixels = _native_pixels(ds, source, rows, cols, bits_allocated, bits_stored)
        if pixels is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pixels = ds.pixel_array
            # The dataset keeps the decoded array (its cache) and the encoded bytes: only `pixels` may hold them,
            # so that each copy below is freed as soon as it is done with.
            del ds.PixelData
    except Exception as exc:
        raise ImageReadError(f"The DICOM image data cannot be decoded ({_short(exc)}); the file may be "
                             "truncated or damaged.") from None
    if pixels.ndim not in (2, 3) or pixels.shape[:2] != (rows, cols):
        raise ImageReadError("The DICOM image data does not match its stated size.")

    spacing, spacing_messages = spacing_from_dicom(ds)  # type: ignore[arg-type]
    header = _header_facts(ds, syntax)
    if photometric in _COLOUR:
        if photometric == "PALETTE COLOR":
            from pydicom.pixels import apply_color_lut

            pixels = apply_color_lut(pixels, ds)
        top = float(2 ** bits_stored - 1) if photometric != "PALETTE COLOR" else float(max(pixels.max(), 1))
        display = np.empty(pixels.shape, dtype=np.uint8)  # a strip of rows at a time: no whole float copy
        for first in range(0, pixels.shape[0], _STRIP_ROWS):
            strip = pixels[first:first + _STRIP_ROWS].astype(np.float32)
            display[first:first + _STRIP_ROWS] = render.to_uint8(np.clip(strip / top, 0, 1))
        del pixels
        return LoadedImage(FORMAT_DICOM, _luminance(display) if measure else _NOTHING, display, bits_stored, "RGB",
                           spacing, spacing_messages, "as stored", header)

    def modality(block: np.ndarray) -> np.ndarray:
        return np.asarray(apply_modality_lut(block, ds), dtype=np.float32)

    step = max(1, int(np.sqrt(pixels.size / 1_000_000)))  # the sample render.auto_window would take
    voi, window = _voi(modality(pixels[:1]), lambda: modality(pixels[::step, ::step]), ds)
    invert = _inverted(photometric, ds)
    if invert and photometric == "MONOCHROME2":
        window = f"{window}, inverted (Presentation LUT Shape INVERSE)"
    display = np.empty(pixels.shape[:2], dtype=np.uint8)
    for top in range(0, pixels.shape[0], _STRIP_ROWS):
        display[top:top + _STRIP_ROWS] = render.to_uint8(voi(modality(pixels[top:top + _STRIP_ROWS])), invert=invert)
    intensities = _NOTHING
    if measure:  # the modality values a strip at a time (a rescale works in float64), inverted in place
        intensities = np.empty(pixels.shape[:2], dtype=np.float32)
        for top in range(0, pixels.shape[0], _STRIP_ROWS):
            intensities[top:top + _STRIP_ROWS] = modality(pixels[top:top + _STRIP_ROWS])
        del pixels
        if invert:
            np.subtract(np.float32(intensities.max()), intensities, out=intensities)
    return LoadedImage(FORMAT_DICOM, intensities, display, bits_stored, photometric, spacing, spacing_messages,
                       window, header)


def _pixel_data_length(ds, source: Source) -> int:
    """How many bytes of pixel data the file holds (read from a file, without reading them)."""
    element = ds.get_item("PixelData", keep_deferred=True)
    if getattr(element, "value", None) is not None or isinstance(source, bytes):
        return len(ds.PixelData)
    available = os.path.getsize(source) - int(element.value_tell)
    return max(0, min(int(element.length), available))


def _native_pixels(ds, source: Source, rows: int, cols: int, bits_allocated: int,
                   bits_stored: int) -> np.ndarray | None:
    """An uncompressed, little-endian, single-sample image read from its file straight into one array, with the
    unused high bits cleared (or the sign extended) as pydicom does; None when pydicom must decode it."""
    if isinstance(source, bytes):
        return None
    syntax = ds.file_meta.TransferSyntaxUID
    element = ds.get_item("PixelData", keep_deferred=True)
    if (syntax.is_compressed or not syntax.is_little_endian or int(ds.get("SamplesPerPixel", 1) or 1) != 1
            or getattr(element, "value", None) is not None or getattr(element, "value_tell", None) is None
            or ds.get("PixelPaddingRangeLimit") is not None):
        return None
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    pixels = np.empty((rows, cols), dtype=np.dtype(f"<{'i' if signed else 'u'}{bits_allocated // 8}"))
    with open(source, "rb") as fh:
        fh.seek(int(element.value_tell))
        if fh.readinto(memoryview(pixels).cast("B")) != pixels.nbytes:  # type: ignore[arg-type]
            raise ImageReadError("This DICOM's image data is incomplete: the file looks truncated. Upload it again "
                                 "from the original source.")
    shift = bits_allocated - bits_stored
    if shift:
        np.left_shift(pixels, shift, out=pixels)
        np.right_shift(pixels, shift, out=pixels)
    return pixels.astype(pixels.dtype.newbyteorder("="), copy=False)


def _inverted(photometric: str, ds) -> bool:
    """Whether the lowest value is shown white (and so measured as least dense).

    MONOCHROME1 is always inverted: PS3.3 C.11.6.1.1 pairs it with Presentation LUT Shape INVERSE, which
    accounts for the MONOCHROME1 itself and is not a second inversion (a MONOCHROME1 file wrongly saying
    IDENTITY is still shown inverted). MONOCHROME2 is inverted when its Presentation LUT Shape says INVERSE.
    """
    if photometric == "MONOCHROME1":
        return True
    shape = ds.get("PresentationLUTShape", "")
    return str(shape or "").strip().upper() == "INVERSE"


def _voi(probe: np.ndarray, sample: Callable[[], np.ndarray], ds):
    """The DICOM's own VOI LUT or window, else an automatic window (its percentiles taken on `sample()`, the
    subsample of the modality values render.auto_window takes, computed only then): a function from modality values
    to 0..1 floats, applied a strip at a time, and a description. Each candidate is tried on `probe` (a row of the
    modality values) first, so a broken LUT or window falls back here, not half-way through the image."""
    sequence = ds.get("VOILUTSequence")
    if sequence:
        item = sequence[0]
        try:
            descriptor = [int(v) for v in item.LUTDescriptor]
            lut = item.LUTData
            if isinstance(lut, bytes):
                lut = np.frombuffer(lut, dtype="<u2" if descriptor[2] > 8 else np.uint8)
            render.apply_lut(probe, descriptor, lut)
            return (lambda values: render.apply_lut(values, descriptor, lut)), "VOI LUT"
        except (AttributeError, IndexError, TypeError, ValueError):
            pass  # a broken LUT: fall back to the window, then to automatic
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR")
    if center is not None and width is not None:
        try:
            render.apply_window(probe, center, width, function)
            return ((lambda values: render.apply_window(values, center, width, function)),
                    f"{function.title()} {center:g}/{width:g}")
        except ValueError:
            pass
    center, width = render.auto_window(sample())
    return (lambda values: render.window_linear(values, center, width)), f"automatic {center:.0f}/{width:.0f}"


def _first(value) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        if not len(value):
            return None
        value = value[0]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _header_facts(ds, syntax) -> dict:
    def text(keyword: str) -> str:
        value = ds.get(keyword, "")
        return str(value).strip() if value is not None else ""

    study_date = None
    for keyword in ("StudyDate", "AcquisitionDate", "ContentDate", "SeriesDate"):
        raw = text(keyword)
        if raw:
            try:
                study_date = dt.datetime.strptime(raw[:8], "%Y%m%d").date().isoformat()
                break
            except ValueError:
                continue
    laterality = (text("ImageLaterality") or text("Laterality")).upper()
    return {
        "modality": text("Modality"),
        "laterality": laterality if laterality in ("L", "R", "B") else "",
        "view_position": text("ViewPosition").upper(),
        "body_part": text("BodyPartExamined"),
        "study_date": study_date,
        "transfer_syntax": str(getattr(syntax, "name", syntax)),
        "manufacturer": text("Manufacturer"),
        "magnification": _first(ds.get("EstimatedRadiographicMagnificationFactor")),
        # Where the image lives in a PACS (an SR of its measurements references it by these).
        "sop_class_uid": text("SOPClassUID"),
        "sop_instance_uid": text("SOPInstanceUID"),
        "study_instance_uid": text("StudyInstanceUID"),
        "series_instance_uid": text("SeriesInstanceUID"),
    }
