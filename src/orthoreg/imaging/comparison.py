"""Before/after comparison of two radiographs of one episode, at the same physical scale.

`comparison_layout` decides what part of each image is shown and how wide (the web page draws it as SVG);
`comparison_png` composes the same comparison as a clean PNG for reports (matplotlib, no pyplot state):

    from orthoreg.imaging.comparison import comparison_png
    png_bytes = comparison_png(before_image, after_image)
"""

from __future__ import annotations

import io
import math
import textwrap
from dataclasses import dataclass, field

import numpy as np
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse, FancyArrowPatch
from PIL import Image as PILImage

from orthoreg.formats import format_date

from . import calibration, selectors
from . import geometry as geo
from .models import Annotation, Image, Measurement

JOINT = "joint"
WHOLE = "whole"
MIN_FIELD_MM = 12.0  # the joint view shows at least this much around the annotations
PAD_FRACTION = 0.35


@dataclass
class Panel:
    image: Image
    role: str  # "Before" or "After"
    box: tuple[float, float, float, float]  # x, y, width, height in image pixels (may extend past the image)
    measurement: Measurement | None
    annotations: list[Annotation]
    relative_width: float = 1.0  # share of the row's width, so that both panels have the same mm per screen px
    scale_bar_mm: float | None = None
    scale_bar_px: float | None = None

    @property
    def title(self) -> str:
        return f"{self.role} · {format_date(self.image.study.date)}"

    @property
    def subtitle(self) -> str:
        return f"{self.image.get_view_display()}, {self.image.get_side_display().lower()}"

    @property
    def viewbox(self) -> str:
        return " ".join(f"{v:.1f}" for v in self.box)

    @property
    def stroke(self) -> float:
        """A line width (image px) that looks about 2 screen px at the panel's display size."""
        return max(self.box[2], self.box[3]) / 300

    @property
    def font_size(self) -> float:
        return max(self.box[2], self.box[3]) / 40

    @property
    def percent(self) -> str:
        return f"{self.relative_width * 100:.2f}%"

    @property
    def scale_bar(self) -> dict | None:
        """Where the scale bar goes (bottom left), in image pixels, with its label."""
        if not self.scale_bar_px:
            return None
        x, y, w, h = self.box
        x1, bar_y = x + 0.05 * w, y + 0.94 * h
        return {"x1": f"{x1:.1f}", "x2": f"{x1 + self.scale_bar_px:.1f}", "y": f"{bar_y:.1f}",
                "tx": f"{x1 + self.scale_bar_px / 2:.1f}", "ty": f"{bar_y - 0.025 * h:.1f}",
                "width": f"{self.stroke * 2:.2f}", "outline": f"{self.stroke * 3.5:.2f}",
                "font": f"{self.font_size:.1f}", "label": f"{self.scale_bar_mm:g} mm"}

    @property
    def profiles(self) -> list[dict]:
        return self.measurement.results.get("profiles", []) if self.measurement else []

    @property
    def margin_a(self) -> str:
        return _polyline([p["a"] for p in self.profiles])

    @property
    def margin_b(self) -> str:
        return _polyline([p["b"] for p in self.profiles])


@dataclass
class Comparison:
    panels: list[Panel]
    to_scale: bool
    region: str
    rows: list[dict]
    notes: list[str] = field(default_factory=list)
    not_comparable: str = ""  # why no change is shown between the two measurements, else ""


def _polyline(points) -> str:
    """SVG polyline points; a missing point breaks nothing, it is skipped."""
    return " ".join(f"{p[0]:.1f},{p[1]:.1f}" for p in points if p)


def _interest(image: Image, annotations: list[Annotation], measurement: Measurement | None):
    """Bounding box (image px) of what was drawn or measured on an image, or None."""
    boxes = [geo.bounds(a.kind, a.geometry) for a in annotations if a.kind != Annotation.Kind.TEXT]
    if measurement is not None and measurement.line:
        x1, y1, x2, y2 = measurement.line
        boxes.append((min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)))
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def _fit(centre: float, size: float, extent: float) -> float:
    """Start of a window of `size` around `centre`, kept inside [0, extent] where it fits."""
    start = centre - size / 2
    if size >= extent:
        return (extent - size) / 2
    return min(max(start, 0.0), extent - size)


def _scale(image: Image, to_scale: bool) -> tuple[float, float]:
    """mm per pixel along x and y when the comparison is to scale, else 1 (pixels)."""
    spacing = image.spacing
    return (spacing.col_mm, spacing.row_mm) if to_scale else (1.0, 1.0)


def _joint_boxes(images: list[Image], interests: list, to_scale: bool) -> list[tuple[float, float, float, float]]:
    """A window around each image's annotations (or its centre when it has none): the same size in mm for all
    when the comparison is to scale, else each image's own."""
    fields: list = []
    for image, box in zip(images, interests):
        if box is None:
            fields.append(None)
            continue
        sx, sy = _scale(image, to_scale)
        w, h = (box[2] - box[0]) * sx, (box[3] - box[1]) * sy
        pad = max(PAD_FRACTION * max(w, h), MIN_FIELD_MM / 4 if to_scale else 40)
        fields.append((w + 2 * pad, h + 2 * pad))
    if to_scale:
        known = [f for f in fields if f]
        common = (max(MIN_FIELD_MM, *(f[0] for f in known)), max(MIN_FIELD_MM, *(f[1] for f in known)))
        fields = [common] * len(images)
    boxes = []
    for image, box, field_size in zip(images, interests, fields):
        sx, sy = _scale(image, to_scale)
        fw, fh = field_size or (image.width, image.height)
        w, h = fw / sx, fh / sy
        cx, cy = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2) if box else (image.width / 2, image.height / 2)
        boxes.append((_fit(cx, w, image.width), _fit(cy, h, image.height), w, h))
    return boxes


def comparison_layout(before: Image, after: Image, *, region: str = JOINT) -> Comparison:
    """What each panel shows (a box in image pixels), how wide it is, and the table of widths and change."""
    images = [before, after]
    annotations = [list(i.annotations.all()) for i in images]
    measurements = [selectors.measurement_of_record(i) for i in images]
    to_scale = all(i.calibrated for i in images)
    notes = []
    if not to_scale:
        missing = " and ".join(r for r, i in zip(("before", "after"), images) if not i.calibrated)
        notes.append(f"Not to the same scale: the {missing} image is uncalibrated, so its lengths are in pixels.")
    interests = [_interest(i, a, m) for i, a, m in zip(images, annotations, measurements)]
    if region == JOINT and not any(interests):
        region = WHOLE
    if region == WHOLE:
        boxes = [(0.0, 0.0, float(i.width), float(i.height)) for i in images]
    else:
        boxes = _joint_boxes(images, interests, to_scale)
    widths = [box[2] * _scale(image, to_scale)[0] for image, box in zip(images, boxes)]
    shares = [w / sum(widths) for w in widths] if to_scale else [0.5, 0.5]
    panels = []
    for role, image, box, measurement, marks, share in zip(
            ("Before", "After"), images, boxes, measurements, annotations, shares):
        panel = Panel(image, role, box, measurement, marks, share)
        if image.calibrated:
            panel.scale_bar_mm = _nice_length(box[2] * image.spacing.col_mm / 5)
            panel.scale_bar_px = panel.scale_bar_mm / image.spacing.col_mm
        panels.append(panel)
        if measurement is None:
            notes.append(f"The {role.lower()} image has no joint space width measurement.")
        elif not measurement.accepted:
            notes.append(f"The {role.lower()} image's measurement is a draft, not yet accepted.")
    return Comparison(panels, to_scale, region, selectors.width_rows(*measurements), notes,
                      selectors.change_not_comparable(*measurements))


def _nice_length(target_mm: float) -> float:
    """1, 2 or 5 x 10^n mm, at most target_mm."""
    if target_mm <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(target_mm))
    for step in (5, 2, 1):
        if step * power <= target_mm:
            return float(step * power)
    return float(power)


# --- PNG composition ----------------------------------------------------------------------------------

def _crop(image: Image, box) -> np.ndarray:
    with image.rendition.open("rb") as fh:
        picture = PILImage.open(fh)
        picture.load()
    x, y, w, h = box
    crop = picture.convert("RGB").crop((round(x), round(y), round(x + w), round(y + h)))  # outside: black
    return np.asarray(crop)


def _outline(width: float):
    return [patheffects.withStroke(linewidth=width + 2.0, foreground="black", alpha=0.7)]


LINE_WIDTH_PT = 1.8
FONT_PT = 9


def _draw_annotation(ax, annotation: Annotation) -> None:
    g, colour, kind = annotation.geometry, annotation.colour, annotation.kind
    style = (0, (4, 3)) if annotation.dashed else "solid"
    effects = _outline(LINE_WIDTH_PT)
    if kind in (Annotation.Kind.ARROW, Annotation.Kind.CALIPER):
        arrow = kind == Annotation.Kind.ARROW
        ax.add_patch(FancyArrowPatch((g["x1"], g["y1"]), (g["x2"], g["y2"]), arrowstyle="-|>" if arrow else "|-|",
                                     mutation_scale=(6 if arrow else 3) * LINE_WIDTH_PT, color=colour,
                                     linewidth=LINE_WIDTH_PT, linestyle=style, path_effects=effects))
        if not arrow:
            ax.text((g["x1"] + g["x2"]) / 2, (g["y1"] + g["y2"]) / 2,
                    " " + calibration.format_length(*annotation.length()), color=colour, fontsize=FONT_PT,
                    ha="left", va="center", path_effects=effects)
    elif kind in (Annotation.Kind.ELLIPSE, Annotation.Kind.CIRCLE):
        rx, ry = g.get("rx", g.get("r")), g.get("ry", g.get("r"))
        ax.add_patch(Ellipse((g["cx"], g["cy"]), 2 * rx, 2 * ry, angle=g.get("angle", 0), fill=False,
                             edgecolor=colour, linewidth=LINE_WIDTH_PT, linestyle=style, path_effects=effects))
    if annotation.label:
        x, y = (g["x"], g["y"]) if kind == Annotation.Kind.TEXT else _label_anchor(kind, g)
        left, right = ax.get_xlim()
        ha = "right" if x > left + 0.6 * (right - left) else "left"  # keep labels near the edge inside the panel
        ax.text(x, y, annotation.label, color=colour, fontsize=FONT_PT, ha=ha, va="bottom", path_effects=effects)


def _label_anchor(kind: str, g: dict) -> tuple[float, float]:
    if kind == Annotation.Kind.ARROW:
        return g["x1"], g["y1"]
    if kind == Annotation.Kind.CALIPER:
        return g["x2"], g["y2"]
    x0, y0, x1, _ = geo.bounds(kind, g)
    return x1, y0


def comparison_figure(before: Image, after: Image, *, region: str = JOINT, title: str | None = None) -> Figure:
    """A matplotlib Figure of the comparison (for a report's PDF or a PNG)."""
    comparison = comparison_layout(before, after, region=region)
    figure = Figure(figsize=(11, 7.9), dpi=110, facecolor="white")
    grid = figure.add_gridspec(2, 2, height_ratios=[4.2, 1.9],
                               width_ratios=[p.relative_width for p in comparison.panels],
                               left=0.03, right=0.97, top=0.9, bottom=0.04, hspace=0.3, wspace=0.06)
    episode = before.study.episode
    figure.suptitle(title or f"{episode.patient.initials} · {episode} — radiographs before and after",
                    fontsize=13, fontweight="bold")
    for index, panel in enumerate(comparison.panels):
        ax = figure.add_subplot(grid[0, index])
        x, y, w, h = panel.box
        ax.imshow(_crop(panel.image, panel.box), extent=(x, x + w, y + h, y), interpolation="lanczos")
        spacing = panel.image.spacing
        ax.set_aspect(spacing.row_mm / spacing.col_mm if spacing else 1.0)
        ax.set_xlim(x, x + w)
        ax.set_ylim(y + h, y)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_facecolor("black")
        for annotation in panel.annotations:
            _draw_annotation(ax, annotation)
        _draw_measurement(ax, panel)
        if panel.scale_bar_mm:
            _scale_bar(ax, panel)
        else:
            ax.text(0.02, 0.02, "uncalibrated", transform=ax.transAxes, color="white", fontsize=9,
                    path_effects=_outline(1))
        status = ""
        if panel.measurement is not None and not panel.measurement.accepted:
            status = " (draft measurement)"
        ax.set_title(f"{panel.title}\n{panel.subtitle}{status}", fontsize=10.5)
        if panel.image.caption:
            width = max(30, int(110 * panel.relative_width))
            ax.text(0.5, -0.02, textwrap.fill(panel.image.caption, width), transform=ax.transAxes, ha="center",
                    va="top", fontsize=8, color="#5d6b7a")
    _table(figure.add_subplot(grid[1, :]), comparison)
    return figure


def _draw_measurement(ax, panel: Panel) -> None:
    if panel.measurement is None:
        return
    for key in ("a", "b"):
        points = [p[key] for p in panel.profiles]
        segments: list[list] = []
        current: list = []
        for point in points:
            if point is None:
                if current:
                    segments.append(current)
                current = []
            else:
                current.append(point)
        if current:
            segments.append(current)
        for segment in segments:
            xs, ys = zip(*segment)
            ax.plot(xs, ys, color="#00e5ff", linewidth=1.0, alpha=0.9)
    for caliper in panel.measurement.results.get("calipers", []):
        x1, y1, x2, y2 = caliper["points"]
        ax.plot([x1, x2], [y1, y2], color="#00e5ff", linewidth=1.0)


def _scale_bar(ax, panel: Panel) -> None:
    x, y, w, h = panel.box
    x0, y0 = x + 0.05 * w, y + 0.94 * h
    ax.plot([x0, x0 + panel.scale_bar_px], [y0, y0], color="white", linewidth=3, solid_capstyle="butt",
            path_effects=_outline(3))
    ax.text(x0 + panel.scale_bar_px / 2, y0 - 0.015 * h, f"{panel.scale_bar_mm:g} mm", color="white", ha="center",
            va="bottom", fontsize=9, path_effects=_outline(1))


def _table(ax, comparison: Comparison) -> None:
    ax.axis("off")
    before, after = comparison.panels
    header = ["Joint space width", f"Before ({format_date(before.image.study.date)})",
              f"After ({format_date(after.image.study.date)})", "Change"]
    cells = [[r["label"], r["before"], r["after"],
              r["change_text"] + (" (within measurement error)" if r["within_error"] else "")]
             for r in comparison.rows]
    table = ax.table(cellText=cells, colLabels=header, loc="upper center", cellLoc="left", colLoc="left",
                     colWidths=[0.22, 0.2, 0.2, 0.38])
    table.auto_set_font_size(False)
    table.set_fontsize(9.5)
    table.scale(1, 1.35)
    for (row, _col), cell in table.get_celld().items():
        cell.set_edgecolor("#d9e0e7")
        if row == 0:
            cell.set_text_props(fontweight="bold", color="#5d6b7a")
            cell.set_facecolor("#fafbfc")
    notes = list(comparison.notes)
    if comparison.not_comparable:
        notes.append(f"Change {comparison.not_comparable}")
    sdc_mm = next((r["sdc_mm"] for r in comparison.rows if r.get("sdc_mm")), None)
    if sdc_mm:
        notes.append(f"Smallest detectable change for this pair of films: {sdc_mm:.2f} mm (2.77 x the standard error "
                     f"of measurement, {selectors.SDC_SOURCE}); a smaller change is within measurement error.")
    notes.append(f"Calibration: before {before.image.calibration_label}; after {after.image.calibration_label}.")
    text = "\n".join(textwrap.fill(note, 160) for note in notes)
    ax.text(0.0, 0.32, text, transform=ax.transAxes, fontsize=8, color="#5d6b7a", va="top")  # under the table


def comparison_png(before: Image, after: Image, *, region: str = JOINT, dpi: int = 110) -> bytes:
    """The comparison as PNG bytes (for reports and the download button)."""
    figure = comparison_figure(before, after, region=region)
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()
