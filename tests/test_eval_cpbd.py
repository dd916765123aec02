"""CPBD equals the reference ``cpbd`` package on the fixture images (tools/make_metric_fixtures_cpbd.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from singer_core.evaluation.sharpness import cpbd, to_gray, video_cpbd

from .conftest import FIXTURES

TOLERANCE = 1e-6


def _golden():
    values = json.loads((FIXTURES / "metrics" / "cpbd.json").read_text())["values"]
    images = np.load(FIXTURES / "metrics" / "cpbd.npz")
    return [(name, images[name], value) for name, value in values.items()]


@pytest.mark.parametrize("name,image,expected", _golden(), ids=lambda v: v if isinstance(v, str) else "")
def test_cpbd_matches_reference_package(name, image, expected):
    assert cpbd(image) == pytest.approx(expected, abs=TOLERANCE)


@pytest.mark.parametrize("name", ["face_sharp", "edge_wider_than_cap"])
def test_edge_widths_match_reference_package(name):
    from singer_core.evaluation.sharpness import _edge_widths, _sobel_edges

    images = np.load(FIXTURES / "metrics" / "cpbd.npz")
    image = images[name].astype(np.float64)
    widths = _edge_widths(_sobel_edges(image), image)
    np.testing.assert_array_equal(widths, images[f"widths_{name}"].astype(np.float64))
    if name == "edge_wider_than_cap":
        assert widths.max() == 197  # 101 (capped) + 96


def test_cpbd_orders_sharp_above_blurred_and_video_mean():
    images = np.load(FIXTURES / "metrics" / "cpbd.npz")
    assert cpbd(images["face_sharp"]) > cpbd(images["face_blur2"])
    rgb = np.repeat(images["face_sharp"][..., None], 3, axis=-1)
    assert np.array_equal(to_gray(rgb), images["face_sharp"])
    assert video_cpbd([rgb, rgb]) == pytest.approx(cpbd(images["face_sharp"]))
    with pytest.raises(ValueError, match="2-D"):
        cpbd(rgb)
