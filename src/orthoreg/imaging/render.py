"""Display renditions: DICOM windowing (PS3.3 C.11.2), VOI lookup tables, 8-bit PNG encoding, thumbnails.

Pure (numpy and Pillow, no Django). Every function takes and returns plain arrays or bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image as PILImage

THUMBNAIL_SIDE = 320
AUTO_WINDOW_PERCENTILES = (0.5, 99.5)
PNG_COMPRESS_LEVEL = 3  # renditions are re-creatable: favour speed over the last few % of size


def window_linear(values: np.ndarray, center: float, width: float, *, exact: bool = False) -> np.ndarray:
    """Map values to 0..1 with the DICOM LINEAR (or LINEAR_EXACT) window function."""
    values = np.asarray(values, dtype=np.float32)
    if exact:
        if width <= 0:
            raise ValueError("A LINEAR_EXACT window needs a width above 0.")
        out = (values - np.float32(center)) / np.float32(width) + np.float32(0.5)
    else:
        if width < 1:
            raise ValueError("A LINEAR window needs a width of at least 1.")
        if width == 1:  # a threshold at the centre
            return (values > center - 0.5).astype(np.float32)
        out = (values - np.float32(center - 0.5)) / np.float32(width - 1) + np.float32(0.5)
    return np.clip(out, 0, 1, out=out)


def window_sigmoid(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """Map values to 0..1 with the DICOM SIGMOID window function."""
    if width <= 0:
        raise ValueError("A SIGMOID window needs a width above 0.")
    values = np.asarray(values, dtype=np.float32)
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-4.0 * (values - np.float32(center)) / np.float32(width)))).astype(np.float32)


def apply_window(values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    function = (function or "LINEAR").strip().upper()
    if function == "SIGMOID":
        return window_sigmoid(values, center, width)
    return window_linear(values, center, width, exact=(function == "LINEAR_EXACT"))


def apply_lut(values: np.ndarray, descriptor: Sequence[int], data: Sequence[int] | np.ndarray) -> np.ndarray:
    """Map values through a DICOM VOI LUT (descriptor = entries, first value mapped, bits) to 0..1."""
    table = np.asarray(data, dtype=np.float32).ravel()
    if table.size == 0:
        raise ValueError("The VOI LUT holds no data.")
    first = int(descriptor[1])
    index = np.clip(np.rint(np.asarray(values, dtype=np.float64)) - first, 0, table.size - 1).astype(np.intp)
    low, high = float(table.min()), float(table.max())
    if high <= low:
        raise ValueError("The VOI LUT is flat.")
    return (table[index] - low) / (high - low)


def auto_window(values: np.ndarray) -> tuple[float, float]:
    """A window (centre, width) spanning the 0.5th-99.5th percentiles, estimated on a subsample."""
    values = np.asarray(values)
    step = max(1, int(math.sqrt(values.size / 1_000_000)))  # about a million samples at most
    sample = values[::step, ::step] if values.ndim >= 2 else values[::step]
    low, high = np.percentile(sample, AUTO_WINDOW_PERCENTILES)
    if high <= low:
        high = low + 1
    return float(low + high) / 2, float(high - low)


def to_uint8(unit: np.ndarray, *, invert: bool = False) -> np.ndarray:
    """0..1 floats to 0..255 bytes, inverted for MONOCHROME1."""
    scaled = np.asarray(unit, dtype=np.float32) * np.float32(255)
    if invert:
        scaled = np.float32(255) - scaled
    return np.rint(scaled, out=scaled).astype(np.uint8)


def encode_png(array: np.ndarray) -> bytes:
    """An 8-bit grey (H x W) or RGB (H x W x 3) array as PNG bytes."""
    buffer = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def thumbnail_png(array: np.ndarray, max_side: int = THUMBNAIL_SIDE) -> bytes:
    image = PILImage.fromarray(np.ascontiguousarray(array))
    image.thumbnail((max_side, max_side), PILImage.Resampling.LANCZOS, reducing_gap=3.0)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
