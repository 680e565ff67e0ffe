"""`orthoreg imaging ...`: radiograph tools for scripts.

    orthoreg imaging measure FILE --line X1,Y1,X2,Y2 [--spacing MM] [--search PX]
        Semi-automatic joint space width along the line (first point = medial end). Prints JSON with
        medial, central, lateral, minimum (numbers, or null where not measurable), unit ("mm" or "px"),
        the per-profile widths and the margins found. Spacing: --spacing, else the DICOM header, else pixels.
    orthoreg imaging info FILE
        What the file is: format, size, bits, photometric interpretation, calibration, header facts (JSON).
    orthoreg imaging phantom OUT [--gap-medial MM] [--gap-lateral MM] [--rotation DEG] [--bits N] ...
        Write a phantom radiograph of known joint space (DICOM with ImagerPixelSpacing, or PNG by extension).

Exit status 2, with a message on stderr, for a file that cannot be read or a bad argument.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from orthoreg.imaging import calibration, dicomio, jsw, phantoms


def _fail(message: str) -> CommandError:
    return CommandError(message, returncode=2)


def _read(path: str) -> dicomio.LoadedImage:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise _fail(f"{path}: cannot read the file ({exc.strerror or exc}).") from None
    try:
        return dicomio.load_image(data)
    except dicomio.ImageReadError as exc:
        raise _fail(f"{path}: {exc}") from None


class Command(BaseCommand):
    help = "Radiograph tools: measure joint space width, describe a file, write a phantom."
    requires_system_checks: list = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

        measure = actions.add_parser("measure", help="Semi-automatic joint space width along a line")
        measure.add_argument("file", help="DICOM, PNG or JPEG radiograph")
        measure.add_argument("--line", required=True, help="X1,Y1,X2,Y2 in pixels; the first point is the medial end")
        measure.add_argument("--spacing", help="Pixel spacing in mm (overrides the DICOM header)")
        measure.add_argument("--search", help="Half-length of the profiles in pixels (default: a quarter of the line)")
        measure.add_argument("--compact", action="store_true", help="One line of JSON")

        info = actions.add_parser("info", help="Describe a radiograph file")
        info.add_argument("file")

        phantom = actions.add_parser("phantom", help="Write a phantom radiograph of known joint space")
        phantom.add_argument("out", help="Output file: .dcm for DICOM, .png for PNG")
        phantom.add_argument("--gap-medial", type=float, default=1.0, help="mm (default 1.0)")
        phantom.add_argument("--gap-lateral", type=float, default=2.5, help="mm (default 2.5)")
        phantom.add_argument("--spacing", type=float, default=0.1, help="mm per pixel (default 0.1)")
        phantom.add_argument("--rotation", type=float, default=0.0, help="degrees counter-clockwise")
        phantom.add_argument("--blur", type=float, default=1.0, help="Gaussian sigma in pixels")
        phantom.add_argument("--noise", type=float, default=0.01, help="fraction of full scale")
        phantom.add_argument("--bits", type=int, default=12, choices=range(8, 17), metavar="8-16")
        phantom.add_argument("--size", default="480x360", help="WIDTHxHEIGHT in pixels")
        phantom.add_argument("--anatomy", default="block", choices=["block", "mtp"])
        phantom.add_argument("--fused", action="store_true", help="No joint space")

    def handle(self, *args, action: str, **options):
        return getattr(self, f"_{action}")(**options)

    # --- measure ------------------------------------------------------------------------------------------
    def _measure(self, *, file: str, line: str, spacing: str | None, search: str | None, compact: bool, **_):
        try:
            points = jsw.parse_line(line)
        except jsw.JswError as exc:
            raise _fail(f"--line: {exc}") from None
        search_px = None
        if search is not None:
            try:
                search_px = float(search)
            except ValueError:
                raise _fail("--search must be a number of pixels.") from None
        loaded = _read(file)
        used, source = loaded.spacing, loaded.spacing.source if loaded.spacing else calibration.NONE
        if spacing is not None:
            try:
                mm = float(spacing)
            except ValueError:
                raise _fail("--spacing must be a number of mm.") from None
            try:
                calibration.check_spacing(mm, mm, what="--spacing")
            except calibration.CalibrationError as exc:
                raise _fail(str(exc)) from None
            used, source = calibration.Spacing(mm, mm, "command_line"), "command_line"
        try:
            result = jsw.measure(loaded.intensities, points, used, search_px=search_px)
        except jsw.JswError as exc:
            raise _fail(f"--line: {exc}") from None
        out = result.to_dict()
        out = {"file": file, "calibration": source,
               "spacing_mm": [used.row_mm, used.col_mm] if used else None,
               **{key: out[key] for key in ("medial", "central", "lateral", "minimum", "unit")},
               "measurable": out["measurable"], "count": out["count"], "notes": out["notes"],
               "line": out["line"], "search_px": out["search_px"], "widths": out["widths"],
               "profiles": out["profiles"]}
        if loaded.spacing_messages and spacing is None and not used:
            out["notes"] = out["notes"] + loaded.spacing_messages
        self.stdout.write(json.dumps(out, separators=(",", ":")) if compact else json.dumps(out, indent=2))

    # --- info ---------------------------------------------------------------------------------------------
    def _info(self, *, file: str, **_):
        loaded = _read(file)
        spacing = loaded.spacing
        out = {"file": file, "format": loaded.format, "width": loaded.width, "height": loaded.height,
               "bits": loaded.bits, "photometric": loaded.photometric, "window": loaded.window,
               "calibration": spacing.source if spacing else calibration.NONE,
               "spacing_mm": [spacing.row_mm, spacing.col_mm] if spacing else None,
               "calibration_messages": loaded.spacing_messages, "header": loaded.header}
        self.stdout.write(json.dumps(out, indent=2))

    # --- phantom ------------------------------------------------------------------------------------------
    def _phantom(self, *, out: str, gap_medial: float, gap_lateral: float, spacing: float, rotation: float,
                 blur: float, noise: float, bits: int, size: str, anatomy: str, fused: bool, **_):
        try:
            width, height = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise _fail("--size must be WIDTHxHEIGHT, e.g. 480x360.") from None
        if not (64 <= width <= 8000 and 64 <= height <= 8000):
            raise _fail("--size: each side must be 64 to 8000 pixels.")
        if not all(math.isfinite(v) for v in (gap_medial, gap_lateral, spacing, rotation, blur, noise)):
            raise _fail("Every number must be finite.")
        try:
            calibration.check_spacing(spacing, spacing, what="--spacing")
            phantom = phantoms.make_phantom(
                width_px=width, height_px=height, spacing_mm=spacing, gap_medial_mm=gap_medial,
                gap_lateral_mm=gap_lateral, joint_length_mm=0.6 * width * spacing, rotation_deg=rotation,
                blur_px=blur, noise=noise, bits=bits, anatomy=anatomy, fused=fused, supersample=2)
        except ValueError as exc:
            raise _fail(str(exc)) from None
        target = Path(out)
        data = phantom.to_png() if target.suffix.lower() == ".png" else phantom.to_dicom()
        try:
            target.write_bytes(data)
        except OSError as exc:
            raise _fail(f"{out}: cannot write ({exc.strerror or exc}).") from None
        x1, y1, x2, y2 = phantom.line
        self.stdout.write(json.dumps({"file": out, "line": f"{x1:.1f},{y1:.1f},{x2:.1f},{y2:.1f}",
                                      "gap_medial_mm": gap_medial, "gap_lateral_mm": gap_lateral,
                                      "spacing_mm": spacing, "fused": fused}))
