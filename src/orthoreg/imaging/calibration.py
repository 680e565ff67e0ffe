"""Pixel spacing of a radiograph: from its DICOM header, from a marker of known length, or none.

Pure Python (no Django). A spacing is millimetres per pixel along rows (vertical, between rows) and
columns (horizontal, between columns), as DICOM orders PixelSpacing. Without a spacing every length
is in pixels and labelled "uncalibrated".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# A projection radiograph's detector pixel is 0.05-1 mm; anything outside this range is a wrong header
# or a wrong marker click, not a real pixel.
MIN_SPACING_MM = 0.01
MAX_SPACING_MM = 2.0
MAX_ANISOTROPY = 2.0  # row/column spacing ratio beyond which the header is not believed
MIN_MARKER_PX = 10.0  # a marker drawn shorter than this gives a spacing too imprecise to use
MAX_MARKER_MM = 1000.0

DICOM_IMAGER = "dicom_imager"
DICOM_PIXEL = "dicom_pixel"
MANUAL = "manual"
NONE = "none"

SOURCE_LABELS = {
    DICOM_IMAGER: "DICOM Imager Pixel Spacing (detector plane)",
    DICOM_PIXEL: "DICOM Pixel Spacing",
    MANUAL: "marker of known length",
    NONE: "uncalibrated",
}


class CalibrationError(ValueError):
    """A spacing or a marker that cannot be used; the message says why, for the user."""


@dataclass(frozen=True)
class Spacing:
    row_mm: float  # distance between the centres of adjacent rows (vertical)
    col_mm: float  # distance between the centres of adjacent columns (horizontal)
    source: str

    @property
    def isotropic(self) -> bool:
        return math.isclose(self.row_mm, self.col_mm, rel_tol=1e-6)

    @property
    def mean_mm(self) -> float:
        return (self.row_mm + self.col_mm) / 2

    def mm_per_px(self, dx: float, dy: float) -> float:
        """Millimetres per pixel of length along the direction (dx, dy) (need not be a unit vector)."""
        norm = math.hypot(dx, dy)
        if norm == 0:
            return self.mean_mm
        return math.hypot(dx / norm * self.col_mm, dy / norm * self.row_mm)

    def describe(self) -> str:
        value = f"{self.row_mm:.4g} mm/px" if self.isotropic else f"{self.row_mm:.4g} × {self.col_mm:.4g} mm/px"
        return f"{value} ({SOURCE_LABELS.get(self.source, self.source)})"


def check_spacing(row_mm: float, col_mm: float, *, what: str = "Pixel spacing") -> None:
    """Raise CalibrationError unless both values are a believable radiograph pixel size."""
    for value in (row_mm, col_mm):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise CalibrationError(f"{what} {_fmt(row_mm)} × {_fmt(col_mm)} mm is not a positive number.")
        if not MIN_SPACING_MM <= value <= MAX_SPACING_MM:
            raise CalibrationError(
                f"{what} {_fmt(row_mm)} × {_fmt(col_mm)} mm per pixel is outside the believable range "
                f"{MIN_SPACING_MM}-{MAX_SPACING_MM} mm for a radiograph.")
    if max(row_mm, col_mm) / min(row_mm, col_mm) > MAX_ANISOTROPY:
        raise CalibrationError(
            f"{what} {_fmt(row_mm)} × {_fmt(col_mm)} mm: rows and columns differ more than {MAX_ANISOTROPY}-fold.")


def _fmt(value) -> str:
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return repr(value)


def _pair(value) -> tuple[float, float] | None:
    """A DICOM decimal-string pair (or one value) as two floats; None when absent or unreadable."""
    if value is None or value == "":
        return None
    if isinstance(value, (str, bytes)):
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        items: Sequence = [p for p in text.split("\\") if p.strip()]
    elif isinstance(value, Sequence):
        items = list(value)
    else:
        items = [value]
    try:
        numbers = [float(v) for v in items]
    except (TypeError, ValueError):
        raise CalibrationError(f"{value!r} is not a number pair.") from None
    if len(numbers) == 1:
        numbers = numbers * 2
    if len(numbers) != 2:
        raise CalibrationError(f"{value!r} should hold two numbers (row and column spacing).")
    return numbers[0], numbers[1]


def spacing_from_dicom(header: Mapping) -> tuple[Spacing | None, list[str]]:
    """The spacing a DICOM header states, and messages about any value refused.

    PixelSpacing (calibrated to the patient where the modality provides it) is preferred; otherwise
    ImagerPixelSpacing (at the detector: lengths include the geometric magnification, usually a few %).
    `header` maps DICOM keywords to values (a pydicom Dataset works, so does a dict).
    """
    messages: list[str] = []
    for keyword, source in (("PixelSpacing", DICOM_PIXEL), ("ImagerPixelSpacing", DICOM_IMAGER)):
        raw = header.get(keyword) if hasattr(header, "get") else None
        raw = getattr(raw, "value", raw)  # a pydicom DataElement
        try:
            pair = _pair(raw)
            if pair is None:
                continue
            check_spacing(*pair, what=keyword)
        except CalibrationError as exc:
            messages.append(f"{exc} Not used.")
            continue
        return Spacing(pair[0], pair[1], source), messages
    if not messages:
        messages.append("The DICOM header gives no pixel spacing.")
    return None, messages


def length_px(p1: Sequence[float], p2: Sequence[float]) -> float:
    return math.hypot(p2[0] - p1[0], p2[1] - p1[1])


def spacing_from_marker(p1: Sequence[float], p2: Sequence[float], known_mm: float) -> Spacing:
    """Isotropic spacing from two points (x, y in pixels) on a marker of known length in mm."""
    try:
        known = float(known_mm)
        points = [float(v) for v in (*p1, *p2)]
    except (TypeError, ValueError):
        raise CalibrationError("Give two points and the marker's length as numbers.") from None
    if len(points) != 4 or not all(math.isfinite(v) for v in points):
        raise CalibrationError("Give two points, each with an x and a y.")
    if not math.isfinite(known) or known <= 0:
        raise CalibrationError("The marker's known length must be more than 0 mm.")
    if known > MAX_MARKER_MM:
        raise CalibrationError(f"A marker longer than {MAX_MARKER_MM:g} mm is not believable.")
    pixels = length_px(points[:2], points[2:])
    if pixels < MIN_MARKER_PX:
        raise CalibrationError(
            f"The two points are {pixels:.1f} px apart: mark the ends of the marker at least "
            f"{MIN_MARKER_PX:g} px apart (zoom in and use its full length).")
    mm = known / pixels
    check_spacing(mm, mm, what="The marker gives a spacing of")
    return Spacing(mm, mm, MANUAL)


def distance(p1: Sequence[float], p2: Sequence[float], spacing: Spacing | None) -> tuple[float, str]:
    """Length between two image points: (value, "mm") when calibrated, else (value, "px")."""
    dx, dy = p2[0] - p1[0], p2[1] - p1[1]
    pixels = math.hypot(dx, dy)
    if spacing is None:
        return pixels, "px"
    return pixels * spacing.mm_per_px(dx, dy), "mm"


def format_length(value: float | None, unit: str) -> str:
    """"2.31 mm", "23.1 px (uncalibrated)" or "not measurable" — never a bare 0 for a missing value."""
    if value is None:
        return "not measurable"
    if unit == "mm":
        return f"{value:.2f} mm"
    return f"{value:.1f} px (uncalibrated)"
