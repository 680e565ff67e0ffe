"""Template tags of the imaging app.

    {% load imaging_tags %}{% episode_images episode %}   radiograph thumbnails of an episode, with links
    {% svg_annotation annotation panel %}                  one annotation as SVG (comparison page)
"""

from __future__ import annotations

from django import template
from django.utils.html import format_html, format_html_join

from .. import calibration, pacs, selectors
from .. import geometry as geo
from ..models import Annotation

register = template.Library()


@register.inclusion_tag("imaging/_episode_images.html")
def episode_images(episode):
    images = list(selectors.episode_images(episode))
    for image in images:
        image.record = selectors.measurement_of_record(image)
    return {"episode": episode, "images": images, "can_compare": len(images) >= 2, "pacs": pacs.configured()}


def _n(value: float) -> str:
    return f"{value:.2f}"


@register.simple_tag
def svg_annotation(annotation: Annotation, panel) -> str:
    """SVG markup of an annotation at the panel's line width and font size (image pixel coordinates)."""
    g, colour, stroke = annotation.geometry, annotation.colour, panel.stroke
    dash = f"{_n(stroke * 4)} {_n(stroke * 3)}" if annotation.dashed else "none"
    common = format_html('stroke="{}" stroke-width="{}" stroke-dasharray="{}" fill="none"', colour, _n(stroke), dash)
    kind = annotation.kind
    parts = []
    if kind in (Annotation.Kind.ARROW, Annotation.Kind.CALIPER):
        parts.append(format_html('<line x1="{}" y1="{}" x2="{}" y2="{}" {} stroke-linecap="round"/>',
                                 _n(g["x1"]), _n(g["y1"]), _n(g["x2"]), _n(g["y2"]), common))
        if kind == Annotation.Kind.ARROW:
            head = geo.arrow_head(g["x1"], g["y1"], g["x2"], g["y2"], stroke * 7)
            parts.append(format_html('<polygon points="{}" fill="{}"/>',
                                     " ".join(f"{_n(x)},{_n(y)}" for x, y in head), colour))
        else:
            value, unit = annotation.length()
            parts.append(_text((g["x1"] + g["x2"]) / 2 + stroke * 3, (g["y1"] + g["y2"]) / 2,  # type: ignore[arg-type]
                               calibration.format_length(value, unit), colour, panel.font_size))
    elif kind == Annotation.Kind.CIRCLE:
        parts.append(format_html('<circle cx="{}" cy="{}" r="{}" {}/>', _n(g["cx"]), _n(g["cy"]), _n(g["r"]), common))
    elif kind == Annotation.Kind.ELLIPSE:
        parts.append(format_html('<ellipse cx="{}" cy="{}" rx="{}" ry="{}" transform="rotate({} {} {})" {}/>',
                                 _n(g["cx"]), _n(g["cy"]), _n(g["rx"]), _n(g["ry"]), _n(g.get("angle", 0)),
                                 _n(g["cx"]), _n(g["cy"]), common))
    if annotation.label:
        if kind == Annotation.Kind.TEXT:
            x, y = g["x"], g["y"]
        elif kind == Annotation.Kind.ARROW:
            x, y = g["x1"], g["y1"]
        else:
            x0, y0, x1, _y1 = geo.bounds(kind, g)
            x, y = x1, y0
        box_x, _y, box_w, _h = panel.box
        anchor = "end" if x > box_x + 0.6 * box_w else "start"
        parts.append(_text(x, y, annotation.label, colour, panel.font_size, anchor))  # type: ignore[arg-type]
    return format_html('<g class="ann ann-{}">{}</g>', kind, format_html_join("", "{}", ((p,) for p in parts)))


def _text(x: float, y: float, text: str, colour: str, size: float, anchor: str = "start") -> str:
    return format_html('<text x="{}" y="{}" fill="{}" font-size="{}" text-anchor="{}" class="ann-text">{}</text>',
                       _n(x), _n(y), colour, _n(size), anchor, text)
