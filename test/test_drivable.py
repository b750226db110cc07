import cv2
import numpy as np
import pytest

from fcn_perception.scene.drivable import DrivableConfig, MaskSmoother, class_lut, drivable_mask, ego_region, signed_area
from fcn_perception.scene.drivable import extract_regions as _extract

ROAD = 3
LUT = class_lut([ROAD])


def extract_regions(mask, lut, cfg):
    return _extract(drivable_mask(mask, lut), cfg)


def _mask(h=360, w=480):
    return np.zeros((h, w), np.uint8)


def test_trapezoid_road_gives_that_trapezoid():
    m = _mask()
    trapezoid = np.array([[40, 359], [440, 359], [270, 200], [210, 200]])
    cv2.fillPoly(m, [trapezoid], ROAD)
    regions = extract_regions(m, LUT, DrivableConfig())
    assert len(regions) == 1
    outer = regions[0].outer
    assert len(outer) == 4
    for corner in trapezoid:  # every true corner has a vertex within 2 px
        assert np.min(np.linalg.norm(outer - corner, axis=1)) <= 2.0
    assert signed_area(outer) > 0 and tuple(outer[0]) == (40.0, 359.0)  # documented order and start


def test_car_on_the_road_is_a_hole_and_small_specks_are_not():
    m = _mask()
    m[200:, :] = ROAD
    m[260:300, 200:280] = 8  # a car
    m[330:333, 100:103] = 8  # a 9-pixel speck: filled
    regions = extract_regions(m, LUT, DrivableConfig(hole_fill_px=100))
    assert len(regions) == 1 and len(regions[0].holes) == 1
    hole = regions[0].holes[0]
    assert signed_area(hole) < 0
    assert hole[:, 0].min() == pytest.approx(199, abs=1.5) and hole[:, 0].max() == pytest.approx(280, abs=1.5)


def test_two_regions_and_the_ego_choice():
    m = _mask()
    m[300:, 180:300] = ROAD  # ahead of the bumper
    m[100:150, 10:100] = ROAD  # elsewhere, bigger
    m[100:200, 380:470] = ROAD
    cfg = DrivableConfig()
    regions = extract_regions(m, LUT, cfg)
    assert len(regions) == 3
    ego = ego_region(regions, 480, 360, cfg)
    assert ego.outer[:, 1].max() == 359


def test_empty_full_and_border_cases():
    cfg = DrivableConfig()
    assert extract_regions(_mask(), LUT, cfg) == []
    assert ego_region([], 480, 360, cfg) is None
    full = extract_regions(np.full((360, 480), ROAD, np.uint8), LUT, cfg)
    assert len(full) == 1 and full[0].area_px == pytest.approx(479 * 359)
    m = _mask()
    m[:, :100] = ROAD  # touches three borders
    (r,) = extract_regions(m, LUT, cfg)
    assert r.outer[:, 0].min() == 0 and r.outer[:, 1].max() == 359


def test_vertex_budget_holds_for_any_mask():
    rng = np.random.default_rng(0)
    m = (rng.random((360, 480)) > 0.5).astype(np.uint8) * ROAD
    m = cv2.dilate(m, np.ones((3, 3), np.uint8))
    for r in extract_regions(m, LUT, DrivableConfig(max_vertices=12, min_area_px=0)):
        assert len(r.outer) <= 12 and all(len(h) <= 12 for h in r.holes)


def test_config_is_validated():
    with pytest.raises(ValueError):
        DrivableConfig(max_vertices=2)
    with pytest.raises(ValueError):
        DrivableConfig(ego_point=(0.5, 1.5))


def test_temporal_smoothing_holds_a_one_frame_dropout_and_follows_a_lasting_change():
    on = np.ones((4, 4), np.uint8)
    off = np.zeros((4, 4), np.uint8)
    smooth = MaskSmoother(0.6)
    assert smooth(on).all()
    assert smooth(off).all()  # one flickering frame does not erase the road
    assert not smooth(off).any()  # a second one does
    assert MaskSmoother(0.0)(off) is off  # off by default: no cost, no lag
    with pytest.raises(ValueError):
        MaskSmoother(1.0)
