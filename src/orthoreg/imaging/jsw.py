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
MIN_SEARCH_PX = 20.0  # the profiles' half-length to start with, at least ...
START_SEARCH_MAX_PX = 60.0  # ... and at most
MAX_SEARCH_PX = 400.0  # ... growing up to this when the margins sit at the window's ends
EDGE_MARGIN_PX = 2.0  # a margin this close to the window's end counts as "at the end"
STRADDLE_PX = 3.0  # a space found only by a wider look must lie across the user's line, within this
EDGE_FRACTION = 0.2  # the window grows when more of the measured profiles than this have a margin at its end
DEPTH_NOISE_K = 6.0  # a gap must be this many (smoothed) pixel-noise sigmas deeper than the bone beside it
RUN_DEPTH_K = 35.0  # and, over a run of neighbouring profiles, this deep at the median (see _shallow_runs)
EDGE_NOISE_K = 4.0  # and each margin's slope this many sigmas of the slope noise alone would give
MAX_STEP_PX = 1.0  # a traced path moves at most this far across per profile step along the line ...
BEND_COST = 0.1  # ... and pays this for each sample it moves (costs are relative: 1 = the profile's best edge)
CENTRE_PULL = 0.3  # cost of a gap one starting window away from the line (valleys count relative to the deepest)
NEAR_PULL = 0.01  # cost per px from the gap's centre (slopes count relative to the profile's steepest)
OUTSIDE_COST = 2.0  # a path may cross a profile whose gap was misread (that profile is then dropped)
MIN_MEASURABLE_FRACTION = 0.5  # a third with fewer measurable profiles is "not measurable"
MIN_RUN_PX = 12.0  # a gap found along less of the line than this is taken for bone texture or noise ...
MIN_RUN = 5  # ... (in profiles: at least this many, at most a quarter of the line)
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
    return numbers


def default_search_px(length_px: float) -> float:
    """Half-length of the profiles to start with: a quarter of the joint line, within 20-60 px.

    It grows by itself (see `measure`) when the margins found sit at its ends."""
    return float(min(max(0.25 * length_px, MIN_SEARCH_PX), START_SEARCH_MAX_PX))


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
    grow = search_px is None
    if search_px is None:
        search_px = default_search_px(length)
    elif not (math.isfinite(search_px) and 3 <= search_px <= 1000):
        raise JswError("The search distance must be between 3 and 1000 px.")

    pull_px = float(search_px)
    traced = _trace_margins(image, (x1, y1, x2, y2), float(search_px), pull_px)
    while grow and search_px < MAX_SEARCH_PX:
        measured = int((~np.isnan(traced.widths)).sum())
        if not (traced.at_edge or measured < MIN_MEASURABLE_FRACTION * traced.widths.size):
            break
        # A margin sat on the window's end, or most profiles found no space (one wider than the window looks
        # flat inside it): look further. A wider look is kept only if it finds more, around the user's line.
        wider = min(2 * search_px, MAX_SEARCH_PX)
        candidate = _trace_margins(image, (x1, y1, x2, y2), float(wider), pull_px)
        if traced.at_edge and measured:
            traced, search_px = candidate, wider
            continue
        if (~np.isnan(candidate.widths)).sum() <= measured or not candidate.straddles_line():
            break
        traced, search_px = candidate, wider

    widths, found, t = traced.widths, traced.found, traced.t
    profiles = []
    for k in range(t.size):
        if np.isnan(widths[k]):
            profiles.append(Profile(float(t[k]), None, None, None))
            continue
        lo, hi = found[k]
        cx, cy = traced.centre_x[k] + 0.5, traced.centre_y[k] + 0.5
        nx, ny = traced.normal
        profiles.append(Profile(float(t[k]), float(widths[k]), (cx + lo * nx, cy + lo * ny),
                                (cx + hi * nx, cy + hi * ny)))
    factor = spacing.mm_per_px(*traced.normal) if spacing is not None else None
    summary = summarize([p.t for p in profiles], [p.width_px for p in profiles], factor)
    summary["noise"] = round(traced.noise, 3)  # pixel noise (sigma, image units) the thresholds are built on
    return JswResult((x1, y1, x2, y2), float(search_px), factor, profiles, summary)


@dataclass
class _Traced:
    t: np.ndarray
    centre_x: np.ndarray
    centre_y: np.ndarray
    normal: tuple[float, float]
    found: list
    widths: np.ndarray
    noise: float
    at_edge: bool

    def straddles_line(self, tolerance_px: float = STRADDLE_PX) -> bool:
        """Whether the space found lies across the user's line (its margins on either side, at the median)."""
        pairs = np.array([f for f, w in zip(self.found, self.widths) if f is not None and not np.isnan(w)])
        if not pairs.size:
            return False
        return bool(np.median(pairs[:, 0]) < tolerance_px and np.median(pairs[:, 1]) > -tolerance_px)


def _trace_margins(image: np.ndarray, line: tuple[float, float, float, float], search_px: float,
                  pull_px: float) -> _Traced:
    """Sample the profile stack, trace the gap and its two margins as minimal paths, check each profile."""
    x1, y1, x2, y2 = line
    height, width = image.shape
    length = math.hypot(x2 - x1, y2 - y1)
    ux, uy = (x2 - x1) / length, (y2 - y1) / length
    nx, ny = -uy, ux  # unit normal: the direction profiles run in
    count = max(3, int(length / PROFILE_STEP_PX) + 1)
    t = np.linspace(0.0, 1.0, count)
    offsets = np.arange(-search_px, search_px + SAMPLE_STEP_PX / 2, SAMPLE_STEP_PX)
    size = offsets.size
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

    pixel_sigma = _pixel_noise(crop, along_rows=abs(ux) >= abs(uy))
    value_sigma = pixel_sigma / math.sqrt(4 * math.pi * SMOOTH_ALONG_PX * SMOOTH_ACROSS_PX)
    slope_sigma = pixel_sigma / math.sqrt(8 * math.pi * SMOOTH_ALONG_PX ** 3 * SMOOTH_ACROSS_PX)
    depth_min = DEPTH_NOISE_K * value_sigma
    edge_min = EDGE_NOISE_K * slope_sigma
    step = max(1, int(round(MAX_STEP_PX * PROFILE_STEP_PX / SAMPLE_STEP_PX)))
    index = np.arange(size)

    # 1. The gap: the darkest valley bounded by brighter bone on both sides (a black top-hat along each
    #    profile), traced as one path near the user's line.
    closed = np.minimum(np.maximum.accumulate(np.where(inside, smooth, -np.inf), axis=1),
                        np.maximum.accumulate(np.where(inside, smooth, -np.inf)[:, ::-1], axis=1)[:, ::-1])
    valley = np.where(inside, np.maximum(closed - smooth, 0), 0)
    centre_cost = -_relative(valley, inside) + CENTRE_PULL * np.abs(offsets)[None, :] / pull_px
    centre = _minimal_path(centre_cost, step)

    # 2. Each margin: the steepest edge between the gap's centre and the first bone crest beside it (the
    #    edge nearest the gap), traced as one path with bounded movement between neighbouring profiles.
    rows_k = np.arange(count)
    gap_depth = (closed - smooth)[rows_k, centre]
    crest_a, crest_b = _crests(smooth, inside, centre, np.maximum(3 * value_sigma, 0.5 * gap_depth))
    in_a = (index[None, :] > crest_a[:, None]) & (index[None, :] <= centre[:, None])
    in_b = (index[None, :] >= centre[:, None]) & (index[None, :] < crest_b[:, None])
    falls = _relative(np.maximum(-gradient, 0), in_a)
    rises = _relative(np.maximum(gradient, 0), in_b)
    pull = NEAR_PULL * np.abs(index[None, :] - centre[:, None]) * SAMPLE_STEP_PX
    path_a = _minimal_path(np.where(in_a, -falls + pull, OUTSIDE_COST), step)
    path_b = _minimal_path(np.where(in_b, -rises + pull, OUTSIDE_COST), step)

    window = max(1, int(round(EDGE_WINDOW_PX / SAMPLE_STEP_PX)))
    found: list = []
    widths = np.full(count, np.nan)
    middles = np.full(count, np.nan)
    depths = np.full(count, np.nan)
    for k in range(count):
        i = _peak_near(-gradient[k], path_a[k])
        j = _peak_near(gradient[k], path_b[k])
        if not (in_a[k, min(i, size - 1)] and in_b[k, min(j, size - 1)] and j - i >= 2):
            found.append(None)
            continue
        if -gradient[k, i] < edge_min or gradient[k, j] < edge_min:
            found.append(None)
            continue
        profile = smooth[k]
        before = profile[max(0, i - window): i + 1].max()
        after = profile[j: min(size, j + window + 1)].max()
        quarter = (j - i) // 4
        depth = min(before, after) - profile[i + quarter: j - quarter + 1].mean()
        if depth < depth_min:
            found.append(None)
            continue
        lo = offsets[0] + _subsample(gradient[k], i) * SAMPLE_STEP_PX
        hi = offsets[0] + _subsample(gradient[k], j) * SAMPLE_STEP_PX
        if hi <= lo:
            found.append(None)
            continue
        found.append((lo, hi))
        widths[k], middles[k], depths[k] = hi - lo, (lo + hi) / 2, depth / value_sigma
    widths[_outliers(widths, middles)] = np.nan
    shortest = max(MIN_RUN, min(int(round(MIN_RUN_PX / PROFILE_STEP_PX)), count // 4))
    widths[_short_runs(~np.isnan(widths), shortest)] = np.nan
    widths[_shallow_runs(~np.isnan(widths), depths)] = np.nan

    measured = ~np.isnan(widths)
    ends = np.array([(f[0], f[1]) if f is not None else (0.0, 0.0) for f in found])
    near_end = (np.abs(ends) >= search_px - EDGE_MARGIN_PX).any(axis=1)[measured]
    at_edge = bool(near_end.size and near_end.mean() > EDGE_FRACTION)
    return _Traced(t, centre_x, centre_y, (nx, ny), found, widths, pixel_sigma, at_edge)


def _relative(slopes: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Slopes as fractions of the steepest allowed one on their profile (0 where none is allowed)."""
    top = np.where(allowed, slopes, 0).max(axis=1, keepdims=True)
    return np.where(allowed, slopes / np.where(top > 0, top, 1), 0)


def _pixel_noise(crop: np.ndarray, *, along_rows: bool) -> float:
    """Robust sigma of the pixel noise: the median absolute deviation of the second difference along the
    joint line's direction (anatomy changes across the joint, far less along it), at least the quantum."""
    axis = 1 if along_rows else 0
    if crop.shape[axis] >= 3:
        second = np.diff(crop, n=2, axis=axis).ravel()
        sigma = 1.4826 * float(np.median(np.abs(second - np.median(second)))) / math.sqrt(6)
    else:
        sigma = 0.0
    integer = bool(np.all(crop == np.round(crop)))
    span = float(crop.max() - crop.min()) if crop.size else 0.0
    quantum = 1.0 if integer else max(span * 1e-4, 1e-9)
    return max(sigma, quantum / math.sqrt(12))


def _minimal_path(cost: np.ndarray, step: int, bend: float = BEND_COST) -> np.ndarray:
    """The column index on each row of the path of least total cost from the first row to the last that moves
    at most `step` columns between neighbouring rows, each column moved costing `bend` (dynamic programming)."""
    rows, cols = cost.shape
    total = cost[0].astype(np.float64)
    back = np.zeros((rows, cols), dtype=np.int32)
    moves = np.arange(-step, step + 1)
    penalty = bend * np.abs(moves)[None, :]
    padded = np.full(cols + 2 * step, np.inf)
    window = np.lib.stride_tricks.sliding_window_view(padded, 2 * step + 1)  # a view: follows `padded`
    columns = np.arange(cols)
    candidates = np.empty((cols, 2 * step + 1))
    for r in range(1, rows):
        padded[step: step + cols] = total
        # candidates[c, m]: arriving at column c from column c + moves[m]
        np.add(window, penalty, out=candidates)
        choice = candidates.argmin(axis=1)
        back[r] = columns + moves[choice]
        total = candidates[columns, choice] + cost[r]
    path = np.empty(rows, dtype=np.int64)
    path[-1] = int(np.argmin(total))
    for r in range(rows - 1, 0, -1):
        path[r - 1] = back[r, path[r]]
    return path


def _crests(smooth: np.ndarray, inside: np.ndarray, centre: np.ndarray,
            drop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """On each profile, the index of the first bone crest on either side of the gap's centre: walking out
    from the centre, the brightest point before the profile falls back by more than `drop` (per profile: half
    the gap's depth, so that noise inside the gap does not stop the walk)."""
    rows, size = smooth.shape
    index = np.arange(size)
    values = np.where(inside, smooth, -np.inf)
    side_a = np.where(index[None, :] <= centre[:, None], values, -np.inf)[:, ::-1]  # outward = decreasing index
    side_b = np.where(index[None, :] >= centre[:, None], values, -np.inf)
    result = []
    for side, flip in ((side_a, True), (side_b, False)):
        running = np.maximum.accumulate(side, axis=1)
        finite = np.isfinite(side)
        with np.errstate(invalid="ignore"):
            fallen = finite & (running - side > drop[:, None])
        first = np.where(fallen.any(axis=1), fallen.argmax(axis=1), size - 1)
        # The crest is where the running maximum was last raised before the fall.
        before_fall = np.where(index[None, :] <= first[:, None], side, -np.inf)
        crest = before_fall.argmax(axis=1)
        result.append(size - 1 - crest if flip else crest)
    return result[0], result[1]


def _peak_near(values: np.ndarray, k: int, reach: int = 2) -> int:
    """The local maximum of `values` within `reach` samples of k (the path runs on whole samples)."""
    lo, hi = max(1, k - reach), min(values.size - 2, k + reach)
    if hi < lo:
        return int(min(max(k, 1), values.size - 2))
    return lo + int(np.argmax(values[lo: hi + 1]))


def _subsample(values: np.ndarray, k: int) -> float:
    """Sub-sample position of an extremum at k from a parabola through its neighbours."""
    left, mid, right = values[k - 1], values[k], values[k + 1]
    curvature = left - 2 * mid + right
    if curvature == 0:
        return float(k)
    return float(k + np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))


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


def _shallow_runs(found: np.ndarray, depths: np.ndarray) -> np.ndarray:
    """Measured profiles in runs whose median gap depth is under RUN_DEPTH_K noise sigmas: the dark spots
    between trabeculae, or between the cortices of a shaft, are a few to twenty sigmas deep; a joint space
    seen on a radiograph is several tens (60-200 on the reference films in tests/data/README.md)."""
    labels, count = ndimage.label(found)
    shallow = np.zeros_like(found)
    for label in range(1, count + 1):
        run = labels == label
        if np.median(depths[run]) < RUN_DEPTH_K:
            shallow |= run
    return shallow


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
