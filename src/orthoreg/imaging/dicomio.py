"""Read a radiograph from bytes: DICOM (pydicom), PNG or JPEG (Pillow).

Pure (no Django). `load_image` returns the pixel values to measure on (bone bright, whatever the
photometric interpretation), an 8-bit display rendition (the file's own window/level or VOI LUT;
MONOCHROME1, and MONOCHROME2 with Presentation LUT Shape INVERSE, inverted) and the header facts the
registry keeps. Anything it cannot read raises ImageReadError with a message meant for the person who
uploaded the file, never another exception.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import warnings
import zlib
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


class ImageReadError(ValueError):
    """The file cannot be used as a radiograph; the message says why and what to do."""


@dataclass
class LoadedImage:
    format: str  # dicom, png or jpeg
    intensities: np.ndarray  # 2-D float32, higher = denser (bone bright): what measurements run on
    display: np.ndarray  # uint8, H x W (grey) or H x W x 3 (colour): the display rendition
    bits: int  # bits stored per sample
    photometric: str  # DICOM vocabulary: MONOCHROME1, MONOCHROME2, RGB
    spacing: Spacing | None = None
    spacing_messages: list[str] = field(default_factory=list)
    window: str = ""  # how the display rendition was windowed, for the record
    header: dict = field(default_factory=dict)  # modality, laterality, view_position, study_date, ...

    @property
    def height(self) -> int:
        return int(self.intensities.shape[0])

    @property
    def width(self) -> int:
        return int(self.intensities.shape[1])


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


def load_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> LoadedImage:
    """Read DICOM, PNG or JPEG bytes. Raises ImageReadError only."""
    if not data:
        raise ImageReadError("The file is empty.")
    kind = sniff_format(data)
    try:
        if kind in (FORMAT_PNG, FORMAT_JPEG):
            return _load_raster(data, kind, max_pixels)
        return _load_dicom(data, max_pixels, has_preamble=(kind == FORMAT_DICOM))
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

def _load_raster(data: bytes, kind: str, max_pixels: int) -> LoadedImage:
    name = "PNG" if kind == FORMAT_PNG else "JPEG"
    with warnings.catch_warnings():
        warnings.simplefilter("error", PILImage.DecompressionBombWarning)
        try:
            image = PILImage.open(io.BytesIO(data), formats=[name])
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
        return LoadedImage(kind, values.astype(np.float32), display, 16, "MONOCHROME2",
                           window=f"automatic {center:.0f}/{width_:.0f}")
    if mode in ("1", "L", "LA", "La"):
        display = np.asarray(image.convert("L"))
        return LoadedImage(kind, display.astype(np.float32), display, 8, "MONOCHROME2", window="as stored")
    rgb = np.asarray(image.convert("RGB"))
    if _is_grey(rgb):
        display = np.ascontiguousarray(rgb[..., 0])
        return LoadedImage(kind, display.astype(np.float32), display, 8, "MONOCHROME2", window="as stored")
    return LoadedImage(kind, _luminance(rgb), rgb, 8, "RGB", window="as stored")


def _is_grey(rgb: np.ndarray) -> bool:
    sample = rgb[::7, ::7].astype(np.int16)
    return bool(np.abs(sample[..., 0] - sample[..., 1]).max(initial=0) <= 2
                and np.abs(sample[..., 1] - sample[..., 2]).max(initial=0) <= 2)


def _luminance(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.float32)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


# --- DICOM --------------------------------------------------------------------------------------------

_INFLATE_CHUNK = 1 << 20  # the bounded inflater reads and writes at most 1 MiB at a time


def _deflated_dataset_start(data: bytes) -> int | None:
    """Where a deflated dataset starts, found the way pydicom's dcmread finds it; None if not deflated.

    The file meta is parsed element by element (never trusting its group length, which may be absent or
    wrong), then any command set, exactly as dcmread does before it inflates the rest of the file whole.
    """
    from pydicom.filereader import _read_command_set_elements, _read_file_meta_info, read_preamble
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    stream = io.BytesIO(data)
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


def _guard_deflate(data: bytes, limit: int) -> None:
    """pydicom inflates a deflated dataset whole: first inflate it here, in bounded chunks, counting the bytes,
    and refuse it as soon as it passes `limit` (memory stays about one chunk whatever the file claims)."""
    start = _deflated_dataset_start(data)
    if start is None:
        return
    view = memoryview(data)[start:]
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    try:
        for offset in range(0, len(view), _INFLATE_CHUNK):
            pending: bytes | memoryview = view[offset:offset + _INFLATE_CHUNK]
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


def _load_dicom(data: bytes, max_pixels: int, *, has_preamble: bool) -> LoadedImage:
    import pydicom
    from pydicom.pixels import apply_modality_lut

    _guard_deflate(data, max_pixels * 6 + (1 << 20))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), force=not has_preamble)
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
        if len(ds.PixelData) < expected:
            raise ImageReadError(
                f"This DICOM's image data is incomplete ({len(ds.PixelData):,} of {expected:,} bytes): "
                "the file looks truncated. Upload it again from the original source.")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pixels = ds.pixel_array
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
        rgb = pixels.astype(np.float32)
        top = float(2 ** bits_stored - 1) if photometric != "PALETTE COLOR" else float(max(rgb.max(), 1))
        display = render.to_uint8(np.clip(rgb / top, 0, 1))
        return LoadedImage(FORMAT_DICOM, _luminance(display), display, bits_stored, "RGB", spacing,
                           spacing_messages, "as stored", header)

    values = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float32)
    unit, window = _voi(values, ds)
    invert = _inverted(photometric, ds)
    if invert and photometric == "MONOCHROME2":
        window = f"{window}, inverted (Presentation LUT Shape INVERSE)"
    display = render.to_uint8(unit, invert=invert)
    intensities = (np.float32(values.max()) - values) if invert else values
    return LoadedImage(FORMAT_DICOM, intensities, display, bits_stored, photometric, spacing, spacing_messages,
                       window, header)


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


def _voi(values: np.ndarray, ds) -> tuple[np.ndarray, str]:
    """The DICOM's own VOI LUT or window, else an automatic window; returns 0..1 floats and a description."""
    sequence = ds.get("VOILUTSequence")
    if sequence:
        item = sequence[0]
        try:
            descriptor = [int(v) for v in item.LUTDescriptor]
            lut = item.LUTData
            if isinstance(lut, bytes):
                lut = np.frombuffer(lut, dtype="<u2" if descriptor[2] > 8 else np.uint8)
            return render.apply_lut(values, descriptor, lut), "VOI LUT"
        except (AttributeError, IndexError, TypeError, ValueError):
            pass  # a broken LUT: fall back to the window, then to automatic
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR")
    if center is not None and width is not None:
        try:
            return render.apply_window(values, center, width, function), f"{function.title()} {center:g}/{width:g}"
        except ValueError:
            pass
    center, width = render.auto_window(values)
    return render.window_linear(values, center, width), f"automatic {center:.0f}/{width:.0f}"


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
