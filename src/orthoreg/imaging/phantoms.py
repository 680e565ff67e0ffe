"""Radiograph phantoms with a known joint space, for accuracy tests, benchmarks and the demo (always labelled
as generated where shown).

Pure (numpy, scipy, pydicom, Pillow; no Django). A phantom is two bone ends with cortical margins facing
each other across a joint space whose width varies linearly from the medial to the lateral end of the
joint; or, fused, one bone with no space at all. It is drawn analytically at sub-pixel resolution
(exact partial-volume edges at any rotation), then blurred, given noise and quantised to 8-16 bits.

Coordinates: image pixel coordinates with the origin at the top-left corner of the top-left pixel
(pixel centres at +0.5), as the annotation overlay uses. `Phantom.line` runs along the middle of the joint
from its medial end to its lateral end, and `Phantom.true_width_mm(t)` is the width at fraction t of it.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image as PILImage
from scipy import ndimage

# Densities (display brightness, 0..1 before blur): air, soft tissue, trabecular bone, cortical bone.
AIR = 0.04
SOFT_TISSUE = 0.26
TRABECULAR = 0.60
CORTEX = 0.90


@dataclass(frozen=True)
class PhantomSpec:
    width_px: int = 480
    height_px: int = 360
    spacing_mm: float = 0.1
    gap_medial_mm: float = 1.0  # below 0: the space has closed before the medial end (obliterated there)
    gap_lateral_mm: float = 2.5
    joint_length_mm: float = 30.0  # length of the joint line (medial to lateral end)
    cortex_mm: float = 0.8
    curvature_mm: float = 0.0  # how far the middle of the joint bulges toward the upper bone
    rotation_deg: float = 0.0  # counter-clockwise on screen
    blur_px: float = 1.0  # Gaussian sigma of the imaging chain, in pixels
    noise: float = 0.01  # Gaussian noise sigma as a fraction of full scale
    texture: float = 0.0  # trabecular texture amplitude as a fraction of full scale
    bits: int = 12
    medial: str = "left"  # side of the (unrotated) image where the medial end of the joint lies
    fused: bool = False  # no joint space: the bones are one, with a faint sclerotic line
    anatomy: str = "block"  # "block": straight bone ends; "mtp": first metatarsal head and proximal phalanx
    supersample: int = 4
    seed: int = 0

    def __post_init__(self):
        if self.bits not in range(8, 17):
            raise ValueError("bits must be 8 to 16")
        if self.medial not in ("left", "right"):
            raise ValueError("medial must be 'left' or 'right'")
        if self.anatomy not in ("block", "mtp"):
            raise ValueError("anatomy must be 'block' or 'mtp'")
        if max(self.gap_medial_mm, self.gap_lateral_mm) <= 0 and not self.fused:
            raise ValueError("a joint space needs a width above 0 somewhere (or fused=True)")


@dataclass
class Phantom:
    spec: PhantomSpec
    pixels: np.ndarray  # uint8 (8 bits) or uint16 (9-16 bits), bone bright
    line: tuple[float, float, float, float]  # medial end x, y, lateral end x, y (image pixel coordinates)

    @property
    def bits(self) -> int:
        return self.spec.bits

    @property
    def spacing_mm(self) -> float:
        return self.spec.spacing_mm

    def true_width_mm(self, t):
        """The joint space width at fraction t (0 = medial end, 1 = lateral end) of the line; 0 if fused."""
        s = self.spec
        if s.fused:
            return np.zeros_like(np.asarray(t, dtype=float))
        t = np.clip(np.asarray(t, dtype=float), 0, 1)
        return np.maximum(s.gap_medial_mm + (s.gap_lateral_mm - s.gap_medial_mm) * t, 0.0)

    def to_png(self) -> bytes:
        buffer = io.BytesIO()
        PILImage.fromarray(self.pixels).save(buffer, format="PNG")
        return buffer.getvalue()

    def to_dicom(self, **kwargs) -> bytes:
        """DICOM bytes with ImagerPixelSpacing; keyword arguments as for `dicom_bytes`."""
        kwargs.setdefault("spacing_mm", self.spec.spacing_mm)
        return dicom_bytes(self.pixels, bits=self.spec.bits, **kwargs)


def make_phantom(spec: PhantomSpec | None = None, **changes) -> Phantom:
    spec = replace(spec or PhantomSpec(), **changes)
    density = _density(spec)
    if spec.texture:
        rng = np.random.default_rng(spec.seed + 7)
        grain = ndimage.gaussian_filter(rng.standard_normal(density.shape), 2.0)
        grain /= grain.std() or 1
        bone = density > (SOFT_TISSUE + TRABECULAR) / 2
        density = density + bone * grain * spec.texture
    if spec.blur_px > 0:
        density = ndimage.gaussian_filter(density, spec.blur_px, mode="nearest")
    if spec.noise > 0:
        density = density + np.random.default_rng(spec.seed).normal(0, spec.noise, density.shape)
    top = 2 ** spec.bits - 1
    pixels = np.rint(np.clip(density, 0, 1) * top).astype(np.uint8 if spec.bits == 8 else np.uint16)
    return Phantom(spec, pixels, _line(spec))


def _frame(spec: PhantomSpec, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image coordinates (pixels) to joint coordinates (mm): u along the joint, medial to lateral; v across it,
    toward the lower bone."""
    cx, cy = spec.width_px / 2, spec.height_px / 2
    angle = math.radians(spec.rotation_deg)
    cos, sin = math.cos(angle), math.sin(angle)
    dx, dy = x - cx, y - cy
    # Screen y points down, so a counter-clockwise rotation on screen is clockwise in (x, y).
    u = (dx * cos - dy * sin) * spec.spacing_mm
    v = (dx * sin + dy * cos) * spec.spacing_mm
    if spec.medial == "right":
        u = -u
    return u, v


def _to_image(spec: PhantomSpec, u: float, v: float) -> tuple[float, float]:
    if spec.medial == "right":
        u = -u
    angle = math.radians(spec.rotation_deg)
    cos, sin = math.cos(angle), math.sin(angle)
    du, dv = u / spec.spacing_mm, v / spec.spacing_mm
    return spec.width_px / 2 + du * cos + dv * sin, spec.height_px / 2 - du * sin + dv * cos


def _line(spec: PhantomSpec) -> tuple[float, float, float, float]:
    half = spec.joint_length_mm / 2
    x1, y1 = _to_image(spec, -half, _centre(spec, np.array(-half)).item())
    x2, y2 = _to_image(spec, half, _centre(spec, np.array(half)).item())
    return (x1, y1, x2, y2)


def _gap(spec: PhantomSpec, u: np.ndarray) -> np.ndarray:
    if spec.fused:
        return np.zeros_like(u)
    t = np.clip((u + spec.joint_length_mm / 2) / spec.joint_length_mm, 0, 1)
    return np.maximum(spec.gap_medial_mm + (spec.gap_lateral_mm - spec.gap_medial_mm) * t, 0.0)


def _centre(spec: PhantomSpec, u: np.ndarray) -> np.ndarray:
    """The middle of the joint space (v), bulging toward the upper bone in the middle when curved."""
    half = spec.joint_length_mm / 2
    return -spec.curvature_mm * (1 - np.clip(u / half, -1, 1) ** 2)


def _bone_end(distance_from_margin: np.ndarray, u: np.ndarray, *, head: float, shaft: float, corner: float,
              flare: float, centre: float = 0.0) -> np.ndarray:
    """Mask of a long bone's end: `head` half-width at the joint, rounded corners, narrowing to `shaft`."""
    d = distance_from_margin
    half_width = shaft + (head - shaft) * np.exp(-np.maximum(d - corner, 0) ** 2 / (2 * flare ** 2))
    rounding = np.where(d < corner, corner - np.sqrt(np.maximum(corner ** 2 - (corner - d) ** 2, 0)), 0)
    return (d >= 0) & (np.abs(u - centre) <= half_width - rounding)


def _density(spec: PhantomSpec) -> np.ndarray:
    s = max(1, int(spec.supersample))
    xs = (np.arange(spec.width_px * s) + 0.5) / s
    ys = (np.arange(spec.height_px * s) + 0.5) / s
    x, y = np.meshgrid(xs, ys)
    u, v = _frame(spec, x, y)
    del x, y
    centre = _centre(spec, u)
    half_gap = _gap(spec, u) / 2
    below = v - (centre + half_gap)  # distance (mm, along v) into the lower bone
    above = (centre - half_gap) - v  # distance into the upper bone
    half = spec.joint_length_mm / 2
    step_mm = spec.spacing_mm / s
    if spec.anatomy == "mtp":
        density = _mtp_density(spec, u, v, centre, half_gap, below, above)
    else:
        width = half + 5.0
        lower = (below >= 0) & (np.abs(u) <= width)
        upper = (above >= 0) & (np.abs(u) <= width)
        density = np.full_like(u, SOFT_TISSUE)
        if spec.fused:
            bone = lower | upper
            density = _add_bone(density, bone, spec.cortex_mm, step_mm)
            density = density + 0.08 * (np.abs(v - centre) <= spec.cortex_mm / 2) * bone  # sclerotic fusion line
        else:
            for mask in (lower, upper):
                density = _add_bone(density, mask, spec.cortex_mm, step_mm)
    density = density.reshape(spec.height_px, s, spec.width_px, s).mean(axis=(1, 3))
    return density


# Attenuation per mm of path (display units) for the projected first MTP: cortical bone, cancellous bone at the
# bone ends, fatty marrow in the shafts, the subchondral plate, and the sesamoids.
MU_CORTEX = 0.07
MU_CANCELLOUS = 0.0105
MU_MARROW = 0.004
MU_PLATE = 0.016
PLATE_MM = 0.5


def _tube(x: np.ndarray, radius: np.ndarray, wall: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Path lengths (mm) of an AP ray at distance x from the axis of a tube: through its wall, and inside."""
    outer = 2 * np.sqrt(np.maximum(radius ** 2 - x ** 2, 0))
    inner = 2 * np.sqrt(np.maximum((radius - wall) ** 2 - x ** 2, 0))
    return outer - inner, inner


def _long_bone(d: np.ndarray, u: np.ndarray, *, head: float, shaft: float, corner: float, flare: float,
               centre: float = 0.0, plate: bool = True) -> np.ndarray:
    """Projected density of a long bone's end seen AP: a tube whose cortex thickens from the subchondral plate
    into the shaft, cancellous bone at the end giving way to marrow, and the subchondral plate seen edge-on."""
    half_width = shaft + (head - shaft) * np.exp(-np.maximum(d - corner, 0) ** 2 / (2 * flare ** 2))
    rounding = np.where(d < corner, corner - np.sqrt(np.maximum(corner ** 2 - (corner - d) ** 2, 0)), 0)
    radius = np.where(d >= 0, np.maximum(half_width - rounding, 0), 0)
    wall = 0.35 + 1.6 * (1 - np.exp(-(np.maximum(d, 0) / 14) ** 2))
    cortex, inside = _tube(u - centre, radius, np.minimum(wall, radius))
    end = np.exp(-np.maximum(d, 0) / 9)
    chord = cortex + inside
    plate = (d >= 0) & (d <= PLATE_MM) & plate  # type: ignore[assignment]
    return (MU_CORTEX * cortex + (MU_CANCELLOUS * end + MU_MARROW * (1 - end)) * inside
            + MU_PLATE * chord * plate)


def _ellipsoid(u: np.ndarray, v: np.ndarray, cu: float, cv: float, au: float, av: float, depth: float,
               shell: float) -> np.ndarray:
    """Projected density of a sesamoid: an ellipsoid (semi-axes au, av, depth mm) with a cortical shell."""
    r2 = ((u - cu) / au) ** 2 + ((v - cv) / av) ** 2
    outer = 2 * depth * np.sqrt(np.maximum(1 - r2, 0))
    scale = 1 - shell / min(au, av)
    inner = 2 * depth * scale * np.sqrt(np.maximum(1 - r2 / scale ** 2, 0))
    return MU_CORTEX * 0.8 * (outer - inner) + MU_CANCELLOUS * inner


def _mtp_density(spec: PhantomSpec, u, v, centre, half_gap, below, above) -> np.ndarray:
    """First MTP joint, AP view: base of the proximal phalanx above, first metatarsal head below, the two
    sesamoids (the medial, tibial one larger) projected over the head, in the soft tissue of the forefoot."""
    half = spec.joint_length_mm / 2
    envelope = np.abs(u + 0.5 * np.tanh(v / 20)) <= half + 10.0 + 1.5 * np.tanh(v / 15)
    density = np.where(envelope, SOFT_TISSUE, AIR)
    if spec.fused:  # one bone: the space filled, the subchondral plates remodelled away
        below, above = below + half_gap, above + half_gap
    plate = not spec.fused
    # Head and base half-widths leave the joint line on the flat part of both bone ends, inside the corners.
    bones = (_long_bone(below, u, head=half + 4.5, shaft=0.55 * half, corner=4.0, flare=9.0, plate=plate)
             + _long_bone(above, u, head=half + 3.2, shaft=0.5 * half, corner=3.0, flare=6.0, centre=-0.6,
                          plate=plate))
    density = density + bones
    if spec.fused:  # a faint sclerotic line where the joint was
        density = density + 0.08 * (np.abs(v - centre) <= spec.cortex_mm / 2) * (bones > 0)
    head_v = centre + half_gap + 8.0  # the sesamoids lie under the metatarsal head, proximal to the joint
    density = density + _ellipsoid(u, v, -0.38 * half, head_v, 4.2, 5.6, 4.0, 0.5)  # tibial (medial)
    density = density + _ellipsoid(u, v, 0.40 * half, head_v + 0.8, 3.4, 4.6, 3.3, 0.5)  # fibular (lateral)
    return density


def _add_bone(density: np.ndarray, mask: np.ndarray, cortex_mm: float, step_mm: float) -> np.ndarray:
    if not mask.any():
        return density
    depth = ndimage.distance_transform_edt(mask) * step_mm
    cortical = mask & (depth <= cortex_mm)
    return np.where(cortical, CORTEX, np.where(mask, TRABECULAR, density))


# --- DICOM writing ------------------------------------------------------------------------------------

def dicom_bytes(pixels: np.ndarray, *, bits: int, spacing_mm: float | tuple[float, float] | None = 0.1,
                spacing_keyword: str = "ImagerPixelSpacing", photometric: str = "MONOCHROME2",
                window: tuple[float, float] | None = None, voi_lut: np.ndarray | None = None,
                rescale: tuple[float, float] | None = None, laterality: str = "", view_position: str = "AP",
                study_date: dt.date | None = None, patient_name: str = "PHANTOM^GENERATED",
                body_part: str = "FOOT", transfer_syntax: str | None = None, preamble: bool = True) -> bytes:
    """A single-frame DX DICOM of `pixels` (bone bright; stored inverted for MONOCHROME1)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    pixels = np.asarray(pixels)
    if pixels.ndim != 2:
        raise ValueError("a single grey image is expected")
    top = 2 ** bits - 1
    stored = (top - pixels.astype(np.int64)) if photometric == "MONOCHROME1" else pixels.astype(np.int64)
    stored = stored.astype(np.uint8 if bits == 8 else np.uint16)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # type: ignore[assignment]  # Digital X-Ray Image Storage - For Presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "DX"
    ds.PatientName = patient_name
    ds.PatientID = "PHANTOM"
    ds.BodyPartExamined = body_part
    ds.ViewPosition = view_position
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.Manufacturer = "orthoreg phantom generator"
    if laterality:
        ds.ImageLaterality = laterality
    if study_date:
        ds.StudyDate = study_date.strftime("%Y%m%d")
    if spacing_mm is not None:
        row, col = spacing_mm if isinstance(spacing_mm, tuple) else (spacing_mm, spacing_mm)
        setattr(ds, spacing_keyword, [f"{row:.6g}", f"{col:.6g}"])
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if bits == 8 else 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.PresentationLUTShape = "INVERSE" if photometric == "MONOCHROME1" else "IDENTITY"
    if rescale:
        ds.RescaleSlope, ds.RescaleIntercept = f"{rescale[0]:g}", f"{rescale[1]:g}"
    if window:
        ds.WindowCenter, ds.WindowWidth = f"{window[0]:g}", f"{window[1]:g}"
    if voi_lut is not None:
        item = Dataset()
        item.LUTDescriptor = [len(voi_lut), 0, 16]
        item.add_new("LUTData", "OW", np.asarray(voi_lut, dtype="<u2").tobytes())
        ds.VOILUTSequence = [item]
    ds.PixelData = stored.tobytes()
    if transfer_syntax and transfer_syntax != ExplicitVRLittleEndian:
        ds.compress(transfer_syntax)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    return data if preamble else data[132:]
