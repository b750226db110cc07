"""Post-processing at the network's size stands for the camera's: a mask worked at 640x360 for a
1280x720 (or 1920x1080) camera gives the same grids cell for cell as its enlargement, and the same
polygons, lane points and lane boundaries within a camera pixel or a few centimetres."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from fcn_perception.inference.mask_scale import MaskScale, enlarge_ids, nearest_sources
from fcn_perception.scene.drivable import DrivableConfig, extract_regions
from fcn_perception.scene.fusion import CameraLookup, ClassRoles, FusionConfig
from fcn_perception.scene.ground import CameraModel, GroundConfig, GroundProjector
from fcn_perception.scene.lane_lines import LaneLineConfig, ego_lane
from fcn_perception.scene.lanes import lane_points

SKY, ROAD, PAVEMENT, CAR, LANE = 0, 3, 4, 8, 11
POSE = ((0.0, 0.0, 1.5), (0.0, 0.08, 0.0))  # 1.5 m up, pitched down a little


def camera(w: int, h: int) -> CameraModel:
    f = 0.8 * w
    info = SimpleNamespace(k=[f, 0, w / 2, 0, f, h / 2, 0, 0, 1], d=[0.05, -0.02, 0.0, 0.0, 0.0], width=w, height=h)
    return CameraModel.from_camera_info(info, *POSE)


def render(cam: CameraModel) -> np.ndarray:
    """A road 7 m wide with dashed paint 1.75 m each side of the car, a car on it 12 m ahead,
    pavement beyond, sky past 60 m: the class mask the camera sees of it."""
    u, v = np.meshgrid(np.arange(cam.width) + 0.0, np.arange(cam.height) + 0.0)
    ground, clipped = cam.pixels_to_ground(np.column_stack([u.ravel(), v.ravel()]), 60.0)
    x, y = ground.T
    out = np.full(x.shape, PAVEMENT, np.uint8)
    out[np.abs(y) < 3.5] = ROAD
    out[(np.abs(np.abs(y) - 1.75) < 0.08) & ((x % 6.0) < 3.0)] = LANE
    out[(np.abs(x - 12.0) < 2.0) & (np.abs(y + 0.3) < 0.9)] = CAR
    out[clipped] = SKY
    return out.reshape(cam.height, cam.width)


@pytest.mark.parametrize("work, cam", [((640, 360), (1280, 720)), ((640, 360), (1920, 1080)), ((480, 360), (640, 480)), ((480, 360), (1280, 720))])
def test_a_lookup_reads_the_pixel_the_enlargement_shows(work, cam):
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (work[1], work[0]), np.uint8)
    big = cv2.resize(small, cam, interpolation=cv2.INTER_NEAREST)
    scale = MaskScale(cam, work)
    idx = rng.integers(0, cam[0] * cam[1], 50_000)
    assert np.array_equal(small.reshape(-1)[scale.flat_index(idx)], big.reshape(-1)[idx])
    assert np.array_equal(scale.lift(small), big)
    assert len(nearest_sources(work[0], cam[0])) == cam[0]


@pytest.mark.parametrize("shape", [(360, 640), (90, 160), (1, 1), (7, 3)])
@pytest.mark.parametrize("grow", [(2, 2), (4, 4), (8, 8), (3, 3), (1, 1), (2, 4), (2, 1)])
def test_class_ids_are_enlarged_as_opencvs_nearest_resize_would(shape, grow):
    """The word-copying enlargement (2x, 4x, 8x) and OpenCV's for every other size: the same pixels."""
    ids = np.random.default_rng(1).integers(0, 256, shape, np.uint8)
    size = (shape[1] * grow[0], shape[0] * grow[1])
    out = enlarge_ids(ids, size)
    assert out.dtype == np.uint8 and out.flags.c_contiguous and out.flags.writeable
    assert np.array_equal(out, cv2.resize(ids, size, interpolation=cv2.INTER_NEAREST))


def test_pixel_coordinates_go_to_the_centre_of_their_block_and_back():
    scale = MaskScale((1280, 720), (640, 360))
    pts = np.array([[0, 0], [10, 5], [639, 359]], np.float64)
    cam = scale.to_camera(pts)
    assert np.allclose(cam, [[0.5, 0.5], [20.5, 10.5], [1278.5, 718.5]])
    assert np.array_equal(scale.to_work(cam), pts.astype(np.int64))
    assert np.array_equal(MaskScale((640, 360), (640, 360)).to_work([[3.4, 7.6]]), [[3, 8]])


@pytest.mark.parametrize("cam_size", [(1280, 720), (1920, 1080)])
def test_the_ground_grid_and_the_fused_view_from_the_small_mask_equal_the_enlarged_ones(cam_size):
    big_cam, small_cam = camera(*cam_size), camera(640, 360)
    small = render(small_cam)
    big = MaskScale(cam_size, (640, 360)).lift(small)
    projector = GroundProjector(big_cam, GroundConfig())
    drivable = np.isin(small, (ROAD, LANE)).astype(np.uint8)
    assert np.array_equal(projector.grid.fill(drivable), projector.grid.fill(np.isin(big, (ROAD, LANE)).astype(np.uint8)))
    assert (projector.grid.fill(drivable) == 0).sum() > 1000  # the road is there, seen

    lookup = CameraLookup(big_cam, FusionConfig(), projector.grid)
    roles = ClassRoles(drivable={ROAD, LANE}, lane={LANE}, flat={PAVEMENT}, ignore={SKY}).tables()
    conf = (np.arange(small.size, dtype=np.int64) % 256).astype(np.uint8).reshape(small.shape)
    a = lookup.view(small, conf, roles, 0, cam_size)
    b = lookup.view(big, MaskScale(cam_size, (640, 360)).lift(conf), roles, 0)
    assert np.array_equal(a.weight, b.weight) and np.array_equal(a.drivable, b.drivable) and np.array_equal(a.lane, b.lane)
    assert a.lane.any() and (a.weight > 0).any()
    with pytest.raises(ValueError, match="does not match CameraInfo"):
        lookup.view(small, None, roles, 0, (1280, 700))


def test_polygons_from_the_small_mask_are_the_enlarged_ones_within_a_camera_pixel():
    small = render(camera(640, 360))
    big = MaskScale((1280, 720), (640, 360)).lift(small)
    cfg = DrivableConfig(epsilon_px=0.0, max_vertices=10_000)  # the contours themselves, unsimplified
    a = extract_regions(np.isin(small, (ROAD, LANE)).astype(np.uint8), cfg, MaskScale((1280, 720), (640, 360)))
    b = extract_regions(np.isin(big, (ROAD, LANE)).astype(np.uint8), cfg)
    assert len(a) == len(b) >= 1 and len(a[0].holes) == len(b[0].holes) == 1  # the road, the car its hole
    assert a[0].area_px == pytest.approx(b[0].area_px, rel=0.01)
    for ring_a, ring_b in [(a[0].outer, b[0].outer), (a[0].holes[0], b[0].holes[0])]:
        dist = [abs(cv2.pointPolygonTest(ring_b.reshape(-1, 1, 2), (float(x), float(y)), True)) for x, y in ring_a]
        assert max(dist) <= 1.0


def test_lane_points_and_boundaries_from_the_small_mask_match_the_enlarged_ones():
    big_cam = camera(1280, 720)
    small = render(camera(640, 360))
    big = MaskScale((1280, 720), (640, 360)).lift(small)
    projector = GroundProjector(big_cam, GroundConfig())
    a = lane_points(small, LANE, projector, 2000, (1280, 720))
    b = lane_points(big, LANE, projector, 100_000)
    assert 200 < len(a.ground) <= 2000 and len(b.ground) > len(a.ground)
    assert a.pixels.max(0)[0] < 1280 and a.pixels.max(0)[1] < 720  # the camera's pixels
    near = np.min(np.linalg.norm(a.ground[:, None, :2] - b.ground[None, ::7, :2], axis=2), axis=1)
    assert np.percentile(near, 95) < 0.15  # on the same paint
    la, lb = (ego_lane(p.ground[:, :2], LaneLineConfig()) for p in (a, b))
    assert la.found == lb.found == 2
    x = np.arange(5.0, 15.0)
    for side in ("left", "right"):
        ba, bb = getattr(la, side), getattr(lb, side)
        assert np.max(np.abs(ba.y(x) - bb.y(x))) < 0.05
        assert abs(abs(ba.y(np.array([10.0]))[0]) - 1.75) < 0.1
