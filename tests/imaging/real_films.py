"""Real radiographs shipped in PyPI packages of the `test` extra, with reference joint space margins marked by
hand (derivation in tests/data/README.md). Shared by tests/imaging/test_jsw_real.py and benchmarks/imaging_bench.py."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Joint:
    name: str
    film: str
    line: tuple[float, float, float, float]
    # (t along the line, first margin, second margin): offsets in px along the profile normal from the line.
    reference: tuple[tuple[float, float, float], ...] = ()

    def reference_widths(self) -> tuple[np.ndarray, np.ndarray]:
        t = np.array([r[0] for r in self.reference])
        return t, np.array([r[2] - r[1] for r in self.reference])


FILMS = {
    # pydicom-data (MIT): CR of a right ankle, MONOCHROME1, 10 bits, no pixel spacing.
    "ankle": ("data_store", "data/RG3_UNCI.dcm"),
    # deid-data (MIT): DX of a cat, lateral chest and abdomen, 12 bits, 0.14 mm pixel spacing.
    "cat": ("deid_data", "data/animals/cat.dcm"),
    # pydicom-data (MIT): CR chest PA.
    "chest": ("data_store", "data/RG1_UNCI.dcm"),
}

JOINTS = (
    Joint("ankle tibiotalar", "ankle", (775, 1409, 850, 1409),
          ((0.1, -10.2, 9.3), (0.3, -5.6, 10.6), (0.5, -3.5, 10.8), (0.7, -6.4, 9.1), (0.9, -7.6, 8.4))),
    Joint("ankle medial clear space", "ankle", (754, 1425, 741, 1455),
          ((0.1, -11.9, 7.0), (0.3, -11.4, 7.1), (0.5, -10.7, 6.9), (0.7, -11.0, 7.3), (0.9, -8.9, 7.1))),
    Joint("cat lumbar disc space 1", "cat", (2172, 712, 2180, 745),
          ((0.1, -5.2, 3.8), (0.3, -5.4, 4.6), (0.5, -7.4, 5.0), (0.7, -8.5, 4.5), (0.9, -8.4, 3.4))),
    Joint("cat lumbar disc space 2", "cat", (2364, 680, 2372, 712),
          ((0.1, -3.6, 5.3), (0.3, -2.1, 5.1), (0.5, -1.8, 5.7), (0.7, -3.8, 6.4), (0.9, -3.6, 7.0))),
)

NO_JOINT = (
    Joint("talus body (solid bone)", "ankle", (800, 1470, 860, 1470)),
    Joint("leg soft tissue", "ankle", (560, 1000, 640, 1000)),
    Joint("cat vertebral body (solid bone)", "cat", (2250, 740, 2320, 730)),
    Joint("chest, lung field", "chest", (700, 700, 780, 700)),
)


def film_path(film: str) -> Path:
    package, name = FILMS[film]
    return Path(str(resources.files(package).joinpath(name)))


@cache
def film(film: str):
    """The film loaded as the application loads an upload (orthoreg.imaging.dicomio)."""
    from orthoreg.imaging import dicomio

    return dicomio.load_image(film_path(film).read_bytes())


def width_errors(joint: Joint, result) -> np.ndarray:
    """Measured minus reference width (px) at the reference positions (NaN where not measured)."""
    t = np.array([p.t for p in result.profiles])
    widths = np.array([np.nan if p.width_px is None else p.width_px for p in result.profiles])
    ref_t, ref_w = joint.reference_widths()
    nearest = np.abs(t[None, :] - ref_t[:, None]).argmin(axis=1)
    return widths[nearest] - ref_w


def draw(joint: Joint, result, path: Path, scale: int = 8, pad: int = 25) -> None:
    """A crop of the film around the line, upscaled, with the line (yellow), the detected margins (red, blue)
    and the reference margins (green circles)."""
    from PIL import Image, ImageDraw

    pixels = film(joint.film).intensities
    x1, y1, x2, y2 = joint.line
    x0, y0 = int(max(min(x1, x2) - pad, 0)), int(max(min(y1, y2) - pad, 0))
    xe, ye = int(min(max(x1, x2) + pad, pixels.shape[1])), int(min(max(y1, y2) + pad, pixels.shape[0]))
    crop = pixels[y0:ye, x0:xe].astype(float)
    lo, hi = np.percentile(crop, (0.5, 99.5))
    grey = (np.clip((crop - lo) / max(hi - lo, 1e-9), 0, 1) * 255).astype("uint8")
    image = Image.fromarray(grey).convert("RGB").resize(((xe - x0) * scale, (ye - y0) * scale), Image.NEAREST)
    canvas = ImageDraw.Draw(image)

    def at(x, y):
        return (x - x0) * scale, (y - y0) * scale

    canvas.line([at(x1, y1), at(x2, y2)], fill=(255, 255, 0))
    for profile in result.profiles:
        if profile.a:
            for point, colour in ((profile.a, (255, 40, 40)), (profile.b, (40, 160, 255))):
                x, y = at(*point)
                canvas.rectangle([x - 1, y - 1, x + 1, y + 1], fill=colour)
    length = math.hypot(x2 - x1, y2 - y1)
    nx, ny = -(y2 - y1) / length, (x2 - x1) / length
    for t, a, b in joint.reference:
        cx, cy = x1 + t * (x2 - x1), y1 + t * (y2 - y1)
        for offset in (a, b):
            x, y = at(cx + offset * nx, cy + offset * ny)
            canvas.ellipse([x - 4, y - 4, x + 4, y + 4], outline=(0, 255, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def variants(folder: Path) -> dict[str, Path]:
    """The ankle film re-encoded (pixels unchanged): RLE Lossless, and as 8-bit RGB (three different channels
    made from its pixels), uncompressed and RLE; written under `folder`."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless

    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    ds = pydicom.dcmread(film_path("ankle"))
    ds.compress(RLELossless, encoding_plugin="pydicom")
    files["ankle RLE"] = folder / "ankle-rle.dcm"
    ds.save_as(files["ankle RLE"], enforce_file_format=True)
    ds = pydicom.dcmread(film_path("ankle"))
    grey = ds.pixel_array.astype(np.float32)
    grey = np.rint(255 * (grey - grey.min()) / max(float(np.ptp(grey)), 1)).astype(np.uint8)
    ds.PhotometricInterpretation = "RGB"
    ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    for keyword in ("WindowCenter", "WindowWidth", "RescaleSlope", "RescaleIntercept", "PresentationLUTShape"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PixelData = np.stack([grey, grey // 2, 255 - grey], axis=-1).tobytes()
    files["ankle RGB"] = folder / "ankle-rgb.dcm"
    ds.save_as(files["ankle RGB"], enforce_file_format=True)
    ds.compress(RLELossless, encoding_plugin="pydicom")
    files["ankle RGB RLE"] = folder / "ankle-rgb-rle.dcm"
    ds.save_as(files["ankle RGB RLE"], enforce_file_format=True)
    return files
