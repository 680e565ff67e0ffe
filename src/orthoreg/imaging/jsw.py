"""Semi-automatic joint space width (JSW) on a radiograph.

Pure (numpy and scipy, no Django). The user draws a line along the joint, its first point at the medial
end. Intensity profiles are sampled perpendicular to the line (scipy.ndimage.map_coordinates), smoothed
along and across, and differentiated. On each profile the two bone margins are the strongest pair of
opposite-sign gradient edges around a dark gap (bone -> joint space is a fall, joint space -> bone a rise),
located to sub-pixel precision by a parabola through the gradient extremum. The width of a profile is
the distance between its margins, converted to mm with the calibration (else reported in pixels).

A profile where no gap deep enough to be told from noise is found is "not measurable" (None), never 0.
Widths are summarised as the means of the medial, central and lateral thirds of the line and the minimum.

Coordinates are image pixel coordinates with the origin at the top-left corner of the top-left pixel
(pixel centres at +0.5), the convention of the annotation overlay.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .calibration import Spacing

MIN_LINE_PX = 10.0
PROFILE_STEP_PX = 1.0  # distance between neighbouring profiles along the line
SAMPLE_STEP_PX = 0.5  # sampling step along a profile
SMOOTH_ALONG_PX = 1.0  # Gaussian sigma along each profile
SMOOTH_ACROSS_PX = 1.5  # Gaussian sigma across neighbouring profiles
EDGE_WINDOW_PX = 4.0  # how far beyond a margin the bone's peak brightness is looked for
DEPTH_NOISE_K = 6.0  # a gap must be this many noise sigmas deeper than the bone beside it ...
DEPTH_RANGE_FRACTION = 0.05  # ... and at least this fraction of the image's intensity range
MIN_MEASURABLE_FRACTION = 0.5  # a third with fewer measurable profiles is "not measurable"
CANDIDATES_PER_SIGN = 8
MIN_RUN = 5  # fewer neighbouring profiles agreeing on a gap are taken for noise
THIRDS = ("medial", "central", "lateral")


class JswError(ValueError):
    """The line cannot be measured on this image (outside it, too short, not numbers)."""


@dataclass(frozen=True)
class Profile:
    t: float  # position along the line: 0 = medial end, 1 = lateral end
    width_px: float | None
    a: tuple[float, float] | None  # first margin (image coordinates)
    b: tuple[float, float] | None  # second margin


@dataclass(frozen=True)
class JswResult:
    line: tuple[float, float, float, float]
    search_px: float
    mm_per_px: float | None
    profiles: list[Profile]
    summary: dict  # medial, central, lateral, minimum, unit, measurable, count, notes

    @property
    def unit(self) -> str:
        return self.summary["unit"]

    def to_dict(self) -> dict:
        factor = self.mm_per_px or 1.0
        digits = 3 if self.mm_per_px else 2
        return {
            **self.summary,
            "line": [round(v, 2) for v in self.line],
            "search_px": round(self.search_px, 1),
            "mm_per_px": self.mm_per_px,
            "widths": [None if p.width_px is None else round(p.width_px * factor, digits) for p in self.profiles],
            "profiles": [
                {
                    "t": round(p.t, 4),
                    "width_px": None if p.width_px is None else round(p.width_px, 3),
                    "a": None if p.a is None else [round(p.a[0], 2), round(p.a[1], 2)],
                    "b": None if p.b is None else [round(p.b[0], 2), round(p.b[1], 2)],
                }
                for p in self.profiles
            ],
        }


def parse_line(value: str | Sequence) -> tuple[float, float, float, float]:
    """"X1,Y1,X2,Y2" (or four numbers) as a tuple of floats; raises JswError."""
    items = value.replace(";", ",").split(",") if isinstance(value, str) else list(value)
    try:
        numbers = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        raise JswError("The line must be four numbers X1,Y1,X2,Y2 (pixels; the first point is the medial end).") \
            from None
    if len(numbers) != 4 or not all(math.isfinite(v) for v in numbers):
        raise JswError("The line must be four numbers X1,Y1,X2,Y2 (pixels; the first point is the medial end).")
    return numbers  # type: ignore[return-value]


def default_search_px(length_px: float) -> float:
    """Half-length of the profiles: a quarter of the joint line, within 15-200 px."""
    return float(min(max(0.25 * length_px, 15.0), 200.0))


def measure(intensities: np.ndarray, line: Sequence[float], spacing: Spacing | None = None, *,
            search_px: float | None = None) -> JswResult:
    """Measure the joint space along `line` (medial end first) on a 2-D image whose bone is bright."""
    image = np.asarray(intensities)
    if image.ndim != 2 or min(image.shape) < 2:
        raise JswError("A single grey image is needed.")
    x1, y1, x2, y2 = parse_line(line)
    height, width = image.shape
    for x, y in ((x1, y1), (x2, y2)):
        if not (0 <= x <= width and 0 <= y <= height):
            raise JswError(f"The line's end ({x:g}, {y:g}) lies outside the image ({width} × {height} px).")
    length = math.hypot(x2 - x1, y2 - y1)
    if length < MIN_LINE_PX:
        raise JswError(f"The line is {length:.1f} px long; draw it along the whole joint "
                       f"(at least {MIN_LINE_PX:g} px).")
    if search_px is None:
        search_px = default_search_px(length)
    elif not (math.isfinite(search_px) and 3 <= search_px <= 1000):
        raise JswError("The search distance must be between 3 and 1000 px.")

    ux, uy = (x2 - x1) / length, (y2 - y1) / length
    nx, ny = -uy, ux  # unit normal: the direction profiles run in
    count = max(3, int(length / PROFILE_STEP_PX) + 1)
    t = np.linspace(0.0, 1.0, count)
    offsets = np.arange(-search_px, search_px + SAMPLE_STEP_PX / 2, SAMPLE_STEP_PX)
    # Array coordinates (row, column) of pixel centres are image coordinates minus 0.5.
    centre_x = (x1 - 0.5) + t * (x2 - x1)
    centre_y = (y1 - 0.5) + t * (y2 - y1)
    cols = centre_x[:, None] + offsets[None, :] * nx
    rows = centre_y[:, None] + offsets[None, :] * ny
    inside = (cols >= -0.5) & (cols <= width - 0.5) & (rows >= -0.5) & (rows <= height - 0.5)

    r0 = max(int(math.floor(rows.min())) - 2, 0)
    r1 = min(int(math.ceil(rows.max())) + 3, height)
    c0 = max(int(math.floor(cols.min())) - 2, 0)
    c1 = min(int(math.ceil(cols.max())) + 3, width)
    crop = np.asarray(image[r0:r1, c0:c1], dtype=np.float32)
    raw = ndimage.map_coordinates(crop, [rows - r0, cols - c0], order=1, mode="nearest")
    smooth = ndimage.gaussian_filter(raw, (SMOOTH_ACROSS_PX / PROFILE_STEP_PX, SMOOTH_ALONG_PX / SAMPLE_STEP_PX),
                                     mode="nearest")
    gradient = np.gradient(smooth, SAMPLE_STEP_PX, axis=1)

    noise = _noise_sigma(smooth, crop)
    threshold = max(DEPTH_NOISE_K * noise, DEPTH_RANGE_FRACTION * _intensity_range(image), 1e-6)
    window = max(1, int(round(EDGE_WINDOW_PX / SAMPLE_STEP_PX)))
    limit = 0.5 * search_px  # the gap must lie within this distance of the user's line

    found = [_margins(smooth[k], gradient[k], inside[k], offsets, threshold, window, limit) for k in range(count)]
    widths = np.array([np.nan if f is None else f[1] - f[0] for f in found])
    middles = np.array([np.nan if f is None else (f[0] + f[1]) / 2 for f in found])
    widths[_outliers(widths, middles)] = np.nan
    widths[_short_runs(~np.isnan(widths))] = np.nan

    profiles = []
    for k in range(count):
        if np.isnan(widths[k]):
            profiles.append(Profile(float(t[k]), None, None, None))
            continue
        lo, hi = found[k]
        cx, cy = centre_x[k] + 0.5, centre_y[k] + 0.5
        profiles.append(Profile(float(t[k]), float(widths[k]), (cx + lo * nx, cy + lo * ny),
                                (cx + hi * nx, cy + hi * ny)))
    factor = spacing.mm_per_px(nx, ny) if spacing is not None else None
    summary = summarize([p.t for p in profiles], [p.width_px for p in profiles], factor)
    return JswResult((x1, y1, x2, y2), float(search_px), factor, profiles, summary)


def _noise_sigma(smooth: np.ndarray, crop: np.ndarray) -> float:
    """Robust sigma of what is left of noise and bone texture in the smoothed profiles.

    Profiles a few smoothing lengths apart see independent noise and texture but nearly the same joint:
    the spread of their differences (median absolute deviation; the edges, where the joint itself changes,
    are a minority of samples) measures how deep a dip noise and texture alone can make.
    """
    apart = int(round(3 * SMOOTH_ACROSS_PX / PROFILE_STEP_PX))
    if smooth.shape[0] > apart:
        values = (smooth[apart:] - smooth[:-apart]).ravel()
        return float(1.4826 * np.median(np.abs(values - np.median(values))) / math.sqrt(2))
    diffs = [np.diff(crop, axis=axis).ravel() for axis in (0, 1) if crop.shape[axis] > 1]
    values = np.concatenate(diffs) if diffs else np.zeros(1)
    pixel_sigma = 1.4826 * np.median(np.abs(values)) / math.sqrt(2)
    return float(pixel_sigma / math.sqrt(4 * math.pi * SMOOTH_ACROSS_PX * SMOOTH_ALONG_PX))


def _intensity_range(image: np.ndarray) -> float:
    step = max(1, int(math.sqrt(image.size / 250_000)))
    low, high = np.percentile(image[::step, ::step], (1, 99))
    return float(high - low)


def _extrema(values: np.ndarray, allowed: np.ndarray, sign: int) -> np.ndarray:
    """Indices of strict-enough local extrema of `sign * values` above 0, strongest first."""
    v = sign * values
    core = v[1:-1]
    peak = (core > 0) & (core >= v[:-2]) & (core > v[2:]) & allowed[1:-1]
    index = np.nonzero(peak)[0] + 1
    return index[np.argsort(-v[index])][:CANDIDATES_PER_SIGN]


def _subsample(values: np.ndarray, k: int) -> float:
    """Sub-sample position of an extremum at k from a parabola through its neighbours."""
    left, mid, right = values[k - 1], values[k], values[k + 1]
    curvature = left - 2 * mid + right
    if curvature == 0:
        return float(k)
    return float(k + np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))


def _margins(profile, gradient, inside, offsets, threshold, window, limit) -> tuple[float, float] | None:
    """The two margins (offsets along the normal, px) of the strongest gap on one profile, or None."""
    falls = _extrema(gradient, inside, -1)
    rises = _extrema(gradient, inside, +1)
    best, best_score = None, 0.0
    size = profile.size
    for i in falls:
        before = profile[max(0, i - window): i + 1].max()
        for j in rises:
            if j <= i:
                continue
            if offsets[i] > limit or offsets[j] < -limit:
                continue
            score = min(-gradient[i], gradient[j])
            if score <= best_score:
                continue
            after = profile[j: min(size, j + window + 1)].max()
            quarter = (j - i) // 4
            depth = min(before, after) - profile[i + quarter: j - quarter + 1].mean()
            if depth < threshold:
                continue
            best, best_score = (i, j), score
    if best is None:
        return None
    step = offsets[1] - offsets[0]
    lo = offsets[0] + _subsample(gradient, best[0]) * step
    hi = offsets[0] + _subsample(gradient, best[1]) * step
    return (lo, hi) if hi > lo else None


def _running_median(values: np.ndarray, size: int) -> np.ndarray:
    half = size // 2
    padded = np.pad(values, half, mode="constant", constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing window's median is NaN, as meant
        return np.nanmedian(windows, axis=1)


def _outliers(widths: np.ndarray, middles: np.ndarray, size: int = 9) -> np.ndarray:
    """Profiles whose width or gap position jumps away from their neighbours' (another edge was caught)."""
    width_median = _running_median(widths, size)
    middle_median = _running_median(middles, size)
    tolerance = np.maximum(3.0, 0.35 * np.nan_to_num(width_median, nan=0.0))
    with np.errstate(invalid="ignore"):
        jumpy = (np.abs(widths - width_median) > tolerance) | (np.abs(middles - middle_median) > tolerance)
    return jumpy & ~np.isnan(widths)


def _short_runs(found: np.ndarray, shortest: int = MIN_RUN) -> np.ndarray:
    """Measured profiles in runs shorter than `shortest`: a joint space is continuous, a noise dip is not."""
    labels, _ = ndimage.label(found)
    sizes = np.bincount(labels.ravel())
    return found & (sizes[labels] < shortest)


def summarize(t: Sequence[float], widths_px: Sequence[float | None], mm_per_px: float | None) -> dict:
    """Means of the medial, central and lateral thirds and the minimum, in mm (calibrated) or px.

    A third with fewer than half of its profiles measurable is None ("not measurable"); the minimum is
    given only when every third is measurable, since elsewhere the narrowest point may be the one missing.
    """
    positions = np.asarray(t, dtype=float)
    values = np.array([np.nan if w is None else float(w) for w in widths_px], dtype=float)
    factor = mm_per_px if mm_per_px else 1.0
    unit = "mm" if mm_per_px else "px"
    digits = 3 if mm_per_px else 2
    bins = np.minimum((positions * 3).astype(int), 2)
    result: dict = {"unit": unit}
    notes: list[str] = []
    for index, name in enumerate(THIRDS):
        part = values[bins == index]
        measured = part[~np.isnan(part)]
        if part.size and measured.size / part.size >= MIN_MEASURABLE_FRACTION:
            result[name] = round(float(measured.mean()) * factor, digits)
        else:
            result[name] = None
            notes.append(f"The {name} third is not measurable: no joint space was found on most of its profiles.")
    if all(result[name] is not None for name in THIRDS):
        robust = _running_median(values, 5)
        robust = robust[~np.isnan(values)]
        result["minimum"] = round(float(np.nanmin(robust)) * factor, digits) if robust.size else None
    else:
        result["minimum"] = None
        if any(result[name] is not None for name in THIRDS):
            notes.append("No minimum is given: part of the joint is not measurable, and may be where it is narrowest.")
    measurable = int((~np.isnan(values)).sum())
    if measurable == 0:
        notes = ["Not measurable: no joint space was found along the line. Check that the line runs along the "
                 "joint, between the two bone ends; where the joint space is gone it cannot be measured."]
    if not mm_per_px:
        notes.append("Uncalibrated: widths are in pixels.")
    result.update(measurable=measurable, count=int(values.size), notes=notes)
    return result
