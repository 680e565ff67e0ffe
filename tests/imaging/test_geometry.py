import pytest

from orthoreg.imaging import geometry as geo
from orthoreg.imaging.geometry import GeometryError


def test_clean_geometry_rounds_and_keeps_only_known_fields():
    clean = geo.clean_geometry("arrow", {"x1": 1.23456, "y1": 2, "x2": 50, "y2": "60", "junk": 1}, 100, 100)
    assert clean == {"x1": 1.23, "y1": 2.0, "x2": 50.0, "y2": 60.0}


def test_ellipse_angle_and_caliper_region():
    assert geo.clean_geometry("ellipse", {"cx": 5, "cy": 5, "rx": 3, "ry": 2, "angle": 370}, 10, 10)["angle"] == 10
    assert geo.clean_geometry("caliper", {"x1": 0, "y1": 0, "x2": 9, "y2": 0, "region": "medial"}, 10, 10)["region"] \
        == "medial"


@pytest.mark.parametrize("kind, geometry, field", [
    ("arrow", {"x1": 0, "y1": 0, "x2": 1, "y2": 0}, "geometry"),  # too short
    ("arrow", {"x1": "a", "y1": 0, "x2": 5, "y2": 5}, "x1"),
    ("arrow", {"x1": True, "y1": 0, "x2": 5, "y2": 5}, "x1"),
    ("circle", {"cx": 5, "cy": 5, "r": 0}, "r"),
    ("circle", {"cx": 5, "cy": 5, "r": float("inf")}, "r"),
    ("ellipse", {"cx": 5, "cy": 5, "rx": 2, "ry": 500}, "ry"),
    ("text", {"x": 1000, "y": 5}, "x"),
    ("caliper", {"x1": 0, "y1": 0, "x2": 9, "y2": 0, "region": "distal"}, "region"),
    ("star", {}, "kind"),
    ("arrow", None, "geometry"),
])
def test_bad_geometry_names_the_field(kind, geometry, field):
    with pytest.raises(GeometryError) as info:
        geo.clean_geometry(kind, geometry, 100, 100)
    assert field in info.value.errors


def test_colour_and_label():
    assert geo.clean_colour("#FFAA00") == "#ffaa00"
    assert geo.clean_colour("") == geo.DEFAULT_COLOUR
    for bad in ("red", "#fff", "#12345g", 7):
        with pytest.raises(GeometryError):
            geo.clean_colour(bad)
    with pytest.raises(GeometryError):
        geo.clean_label("text", "  ")
    with pytest.raises(GeometryError):
        geo.clean_label("arrow", "x" * 201)
    assert geo.clean_label("arrow", "  spur ") == "spur"


def test_arrow_head_points_back_along_the_shaft():
    tip, left, right = geo.arrow_head(0, 0, 10, 0, 4)
    assert tip == (10, 0)
    assert left[0] < 10 and right[0] < 10 and left[1] == pytest.approx(-right[1])


def test_bounds():
    assert geo.bounds("circle", {"cx": 10, "cy": 10, "r": 2}) == (8, 8, 12, 12)
    x0, y0, x1, y1 = geo.bounds("ellipse", {"cx": 0, "cy": 0, "rx": 4, "ry": 1, "angle": 90})
    assert (x1 - x0, y1 - y0) == (pytest.approx(2), pytest.approx(8))
