"""Annotation geometry: validation and normalisation of the data the editor sends, and small shape helpers.

Pure (no Django). All coordinates are image pixel coordinates (origin at the top-left corner of the image,
x to the right, y down), whatever the zoom the annotation was drawn at.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

ARROW = "arrow"
ELLIPSE = "ellipse"
CIRCLE = "circle"
CALIPER = "caliper"
TEXT = "text"
KINDS = (ARROW, ELLIPSE, CIRCLE, CALIPER, TEXT)
REGIONS = ("medial", "central", "lateral")  # a caliper may be a manual joint-space width in one of these

COLOUR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
DEFAULT_COLOUR = "#ffd400"
MAX_LABEL = 200
_FIELDS = {
    ARROW: ("x1", "y1", "x2", "y2"),
    CALIPER: ("x1", "y1", "x2", "y2"),
    ELLIPSE: ("cx", "cy", "rx", "ry"),
    CIRCLE: ("cx", "cy", "r"),
    TEXT: ("x", "y"),
}


class GeometryError(ValueError):
    """Annotation data that cannot be stored; `errors` maps a field to its message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(errors.values()))


def clean_geometry(kind: str, geometry, width: int, height: int) -> dict:
    """Validated geometry for an annotation of `kind` on a width x height image; raises GeometryError.

    Points may lie at most one image size outside the image (a label placed beside it); radii are positive
    and at most the image's larger side; an ellipse's angle is in degrees.
    """
    if kind not in KINDS:
        raise GeometryError({"kind": f"Unknown annotation kind {kind!r}; choose one of {', '.join(KINDS)}."})
    if not isinstance(geometry, Mapping):
        raise GeometryError({"geometry": "The shape's geometry is missing."})
    clean: dict = {}
    errors: dict[str, str] = {}
    for name in _FIELDS[kind]:
        value = _number(geometry.get(name))
        if value is None:
            errors[name] = f"{name} must be a number."
            continue
        if name in ("rx", "ry", "r"):
            if not 0 < value <= max(width, height):
                errors[name] = f"{name} must be above 0 and at most {max(width, height)} px."
        else:
            extent = width if name.startswith(("x", "cx")) else height
            if not -extent <= value <= 2 * extent:
                errors[name] = f"{name} lies too far outside the image."
        clean[name] = round(value, 2)
    if kind == ELLIPSE:
        angle = _number(geometry.get("angle", 0))
        if angle is None:
            errors["angle"] = "angle must be a number of degrees."
        else:
            clean["angle"] = round(math.remainder(angle, 360.0), 2)
    if kind in (ARROW, CALIPER) and not errors \
            and math.hypot(clean["x2"] - clean["x1"], clean["y2"] - clean["y1"]) < 2:
        errors["geometry"] = "The line is too short: drag from one end to the other."
    if kind == CALIPER:
        region = geometry.get("region") or ""
        if region not in ("", *REGIONS):
            errors["region"] = f"The region must be one of {', '.join(REGIONS)}, or none."
        elif region:
            clean["region"] = region
    if errors:
        raise GeometryError(errors)
    return clean


def clean_colour(value) -> str:
    if not value:
        return DEFAULT_COLOUR
    if not isinstance(value, str) or not COLOUR_RE.match(value):
        raise GeometryError({"colour": "The colour must be written #rrggbb."})
    return value.lower()


def clean_label(kind: str, value) -> str:
    text = "" if value is None else str(value).strip()
    if len(text) > MAX_LABEL:
        raise GeometryError({"label": f"The label is longer than {MAX_LABEL} characters."})
    if kind == TEXT and not text:
        raise GeometryError({"label": "A text annotation needs its text."})
    return text


def _number(value) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def arrow_head(x1: float, y1: float, x2: float, y2: float, size: float) -> list[tuple[float, float]]:
    """The three corners of the arrow head at (x2, y2) for an arrow from (x1, y1)."""
    angle = math.atan2(y2 - y1, x2 - x1)
    spread = math.radians(25)
    return [
        (x2, y2),
        (x2 - size * math.cos(angle - spread), y2 - size * math.sin(angle - spread)),
        (x2 - size * math.cos(angle + spread), y2 - size * math.sin(angle + spread)),
    ]


def bounds(kind: str, geometry: Mapping) -> tuple[float, float, float, float]:
    """Bounding box (x0, y0, x1, y1) of a shape; a text label counts as its anchor point."""
    if kind in (ARROW, CALIPER):
        xs, ys = (geometry["x1"], geometry["x2"]), (geometry["y1"], geometry["y2"])
        return min(xs), min(ys), max(xs), max(ys)
    if kind == CIRCLE:
        r = geometry["r"]
        return geometry["cx"] - r, geometry["cy"] - r, geometry["cx"] + r, geometry["cy"] + r
    if kind == ELLIPSE:
        a = math.radians(geometry.get("angle", 0))
        rx, ry = geometry["rx"], geometry["ry"]
        half_w = math.hypot(rx * math.cos(a), ry * math.sin(a))
        half_h = math.hypot(rx * math.sin(a), ry * math.cos(a))
        return geometry["cx"] - half_w, geometry["cy"] - half_h, geometry["cx"] + half_w, geometry["cy"] + half_h
    return geometry["x"], geometry["y"], geometry["x"], geometry["y"]
