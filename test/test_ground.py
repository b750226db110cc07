"""Projection onto the ground against a hand-computed camera; the grid against the polygon."""

import importlib.util
import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from fcn_perception.scene.ground import CameraModel, GridSpec, GroundGrid, rpy_matrix

F, CX, CY, H = 500.0, 320.0, 240.0, 1.5
PITCH = math.radians(10)  # camera looks 10 degrees down


def camera(d=None):
    k = np.array([[F, 0, CX], [0, F, CY], [0, 0, 1]])
    return CameraModel(k, np.zeros(5) if d is None else np.asarray(d), 640, 480, np.array([0.0, 0.0, H]), rpy_matrix(0.0, PITCH, 0.0))


def analytic_pixel(x, y):
    """Pinhole projection worked by hand for pitch-only rotation (y left, optical x right)."""
    # camera-relative point in base axes, then rotate by -pitch about y into the camera body frame
    px, py, pz = x, y, -H
    bx = math.cos(PITCH) * px - math.sin(PITCH) * pz
    bz = math.sin(PITCH) * px + math.cos(PITCH) * pz
    by = py
    return CX + F * (-by) / bx, CY + F * (-bz) / bx


def test_ground_pixel_lands_within_a_centimetre_at_ten_metres():
    cam = camera()
    for y in (0.0, 2.0, -3.5):
        u, v = analytic_pixel(10.0, y)
        ground, clipped = cam.pixels_to_ground(np.array([[u, v]]), max_range=50.0)
        assert not clipped[0]
        assert np.linalg.norm(ground[0] - [10.0, y]) < 0.01


def test_distortion_is_removed_before_projecting():
    d = [-0.3, 0.1, 0.001, -0.002, 0.0]
    cam = camera(d)
    target = np.array([[12.0, 1.5]])
    px, in_front = cam.ground_to_pixels(target)  # distorted pixel of a known ground point
    assert in_front[0]
    back, _ = cam.pixels_to_ground(px, max_range=50.0)
    assert np.linalg.norm(back[0] - target[0]) < 0.01


def test_points_at_or_above_the_horizon_are_clipped_to_max_range():
    cam = camera()
    horizon_v = CY - F * math.tan(PITCH)
    pixels = np.array([[CX, horizon_v - 50], [CX + 100, horizon_v], [CX, 470.0]])
    ground, clipped = cam.pixels_to_ground(pixels, max_range=30.0)
    assert clipped.tolist() == [True, True, False]
    assert np.linalg.norm(ground[0]) == pytest.approx(30.0)
    assert ground[1][1] < 0  # right of centre in the image -> negative y (REP-103 y left)
    assert 0 < ground[2][0] < 10


def test_degenerate_camera_info_is_refused():
    class Info:
        k = [0.0] * 9
        d = [0.0] * 5
        width, height = 640, 480

    with pytest.raises(ValueError, match="focal"):
        CameraModel.from_camera_info(Info, (0, 0, 1.5), (0, 0, 0))
    Info.k = [500.0, 0, 320, 0, 500, 240, 0, 0, 1, 0]
    with pytest.raises(ValueError, match="9 values"):
        CameraModel.from_camera_info(Info, (0, 0, 1.5), (0, 0, 0))


def test_grid_cells_agree_with_the_drivable_mask():
    cam = camera()
    spec = GridSpec(resolution=0.25, x_min=0.0, x_max=30.0, half_width=10.0)
    grid = GroundGrid(cam, spec, max_range=30.0)
    # drivable: a 4 m wide lane from 5 m to 25 m ahead, drawn through the projection of its corners
    corners = np.array([[5.0, 2.0], [25.0, 2.0], [25.0, -2.0], [5.0, -2.0]])
    px, _ = cam.ground_to_pixels(corners)
    mask = np.zeros((480, 640), np.uint8)
    cv2.fillPoly(mask, [np.round(px).astype(np.int32)], 1)
    out = grid.fill(mask)
    assert out.shape == spec.shape and out.dtype == np.int8
    centres = spec.cell_centres().reshape(*spec.shape, 2)
    inside = (centres[..., 0] > 5.5) & (centres[..., 0] < 24.5) & (np.abs(centres[..., 1]) < 1.7)
    assert np.all(out[inside] == 0)
    behind = centres[..., 0] < 2.0  # under the bumper: the camera cannot see it
    assert np.all(out[behind] == -1)
    outside = (np.abs(centres[..., 1]) > 2.5) & (centres[..., 0] > 8) & (centres[..., 0] < 20)
    assert np.all(out[outside & (out != -1)] == 100) and np.any(out[outside] == 100)


# -- polygons onto the ground (regions -> base_link metres) ------------------------------------------

from fcn_perception.scene.drivable import DrivableConfig, extract_regions, signed_area  # noqa: E402
from fcn_perception.scene.ground import GroundConfig, GroundProjector, quaternion_matrix  # noqa: E402
from fcn_perception.scene.pipeline import CameraState  # noqa: E402


def _draw(cam, ground_corners, value=1, mask=None):
    px, _ = cam.ground_to_pixels(np.asarray(ground_corners, float))
    mask = np.zeros((480, 640), np.uint8) if mask is None else mask
    cv2.fillPoly(mask, [np.round(px).astype(np.int32)], value)
    return mask


def _pixel_footprint(cam, point, pixels):
    """How far a ground point moves when its image point moves ``pixels`` up or sideways: the resolution there."""
    px, _ = cam.ground_to_pixels(np.asarray([point], float))
    u, v = px[0]
    moved, _ = cam.pixels_to_ground(np.array([[u, v - pixels], [u + pixels, v]]), 1e3)
    return float(np.max(np.linalg.norm(moved - point, axis=1))) + 0.01


def test_trapezoid_road_with_a_car_lands_on_its_ground_rectangle_with_a_hole():
    cam = camera()
    lane = [[4.0, 2.0], [30.0, 2.0], [30.0, -2.0], [4.0, -2.0]]
    car = [[10.0, 0.9], [14.5, 0.9], [14.5, -0.9], [10.0, -0.9]]  # a car-sized obstacle on the lane
    mask = _draw(cam, car, 0, _draw(cam, lane))
    cfg = DrivableConfig(epsilon_px=1.0)
    regions = extract_regions(mask, cfg)
    (region,) = regions
    res = GroundProjector(cam, GroundConfig(max_range=50.0)).project(regions, region, mask)
    g = res.ego
    assert g is res.regions[0] and signed_area(g.outer) > 0  # counter-clockwise seen from above (x forward, y left)
    for corner in lane:  # every corner within the ground footprint of 1.5 pixels (1 cm at 4 m, 1.7 m at 30 m)
        assert np.min(np.linalg.norm(g.outer - corner, axis=1)) <= _pixel_footprint(cam, corner, 1.5)
    (hole,) = g.holes
    assert signed_area(hole) < 0
    for corner in car:
        assert np.min(np.linalg.norm(hole - corner, axis=1)) <= _pixel_footprint(cam, corner, 1.5)
    assert g.clipped == 0
    assert res.grid.shape == GridSpec().shape


def test_road_up_to_the_horizon_is_clipped_to_max_range_and_keeps_its_shape():
    cam = camera()
    mask = np.zeros((480, 640), np.uint8)
    mask[120:, 200:440] = 1  # runs above the horizon (v = 152): sky pixels marked as road
    regions = extract_regions(mask, DrivableConfig())
    res = GroundProjector(cam, GroundConfig(max_range=40.0)).project(regions, regions[0], mask)
    g = res.ego
    dist = np.linalg.norm(g.outer - cam.translation[:2], axis=1)
    assert g.clipped >= 2 and np.all(dist <= 40.0 + 1e-6) and np.isclose(dist.max(), 40.0)
    assert len(g.outer) == len(regions[0].outer) and signed_area(g.outer) > 0


def test_two_regions_empty_and_full_masks():
    cam = camera()
    proj = GroundProjector(cam)
    mask = _draw(cam, [[6.0, 5.0], [15.0, 5.0], [15.0, 3.0], [6.0, 3.0]], 1, _draw(cam, [[6.0, -3.0], [15.0, -3.0], [15.0, -5.0], [6.0, -5.0]]))
    regions = extract_regions(mask, DrivableConfig())
    res = proj.project(regions, None, mask)
    assert len(res.regions) == 2 and res.ego is None  # "no drivable area ahead" is an answer, not an error
    assert sorted(round(float(r.outer[:, 1].mean())) for r in res.regions) == [-4, 4]
    empty = np.zeros((480, 640), np.uint8)
    res = proj.project([], None, empty)
    assert res.regions == [] and not np.any(res.grid == 0) and np.any(res.grid == 100)
    full = np.ones((480, 640), np.uint8)
    regions = extract_regions(full, DrivableConfig())
    res = proj.project(regions, regions[0], full)
    assert np.all(res.grid[res.grid != -1] == 0)


def test_camera_state_takes_a_calibration_once_and_refuses_a_degenerate_one():
    info = SimpleNamespace(k=[500.0, 0, 320, 0, 500, 240, 0, 0, 1], d=[0.0] * 5, width=640, height=480)
    state = CameraState()
    assert state.calibrate(info, GroundConfig(), (0, 0, 1.5), (0, PITCH, 0))
    assert state.ground is not None and state.ground_status.startswith("ok")
    assert not state.calibrate(info, GroundConfig(), (0, 0, 1.5), (0, PITCH, 0))  # same calibration again: no rebuild
    info.k = [0.0] * 9
    assert state.calibrate(info, GroundConfig(), (0, 0, 1.5), (0, PITCH, 0))
    assert state.ground is None and state.calibration_refused and "focal length" in state.ground_status


def test_tf_pose_of_the_optical_frame_equals_the_parameter_pose():
    """A TF transform names the optical frame; the same physical camera must project identically."""

    info = SimpleNamespace(k=[F, 0, CX, 0, F, CY, 0, 0, 1], d=[], width=640, height=480)
    by_params = CameraModel.from_camera_info(info, (0.5, 0.2, H), (0.0, PITCH, 0.1))
    r_opt = by_params.optical_to_base
    # the quaternion of r_opt, as TF would send it
    w = np.sqrt(max(0.0, 1 + np.trace(r_opt))) / 2
    q = [(r_opt[2, 1] - r_opt[1, 2]) / (4 * w), (r_opt[0, 2] - r_opt[2, 0]) / (4 * w), (r_opt[1, 0] - r_opt[0, 1]) / (4 * w), w]
    by_tf = CameraModel.from_camera_info(info, (0.5, 0.2, H), optical_rotation=quaternion_matrix(*q))
    px = np.array([[100.0, 400.0], [320.0, 300.0], [600.0, 470.0]])
    np.testing.assert_allclose(by_tf.pixels_to_ground(px, 50.0)[0], by_params.pixels_to_ground(px, 50.0)[0], atol=1e-9)


def test_ground_config_is_validated():
    with pytest.raises(ValueError, match="too large"):
        GroundConfig(grid=GridSpec(resolution=0.01, x_max=500.0, half_width=100.0))
    with pytest.raises(ValueError):
        GroundConfig(max_range=0.0)


def test_an_unreadable_camera_info_disables_ground_outputs_without_raising():
    state = CameraState()
    info = SimpleNamespace(k=["x"] * 9, d=[], width=640, height=480)
    assert state.calibrate(info, GroundConfig(), (0, 0, 1.5))
    assert state.ground is None and state.calibration_refused and "unreadable" in state.ground_status


@pytest.mark.skipif(importlib.util.find_spec("tf2_ros") is None, reason="tf2_ros comes with a ROS install, not with the PyPI wheels")
def test_the_node_takes_the_pose_from_a_real_tf2_buffer_at_the_image_stamp(ros_node):
    """The node's TF path with tf2's own Buffer: the same pose as the equivalent camera_pose parameter."""
    import tf2_ros
    from geometry_msgs.msg import TransformStamped
    from rclpy.parameter import Parameter
    from std_msgs.msg import Header

    from fcn_perception.ros.node import FcnPerceptionNode

    node = FcnPerceptionNode(parameter_overrides=[Parameter("image_topics", value=["/tfcam/image_raw"]), Parameter("backend", value="onnxruntime")])
    try:
        node.trigger_configure()
        buffer = tf2_ros.Buffer()
        t = TransformStamped()
        t.header.frame_id, t.child_frame_id = "base_footprint", "tfcam_optical_frame"
        t.transform.translation.x, t.transform.translation.z = 1.2, 1.5
        t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z, t.transform.rotation.w = -0.5, 0.5, -0.5, 0.5
        buffer.set_transform_static(t, "test")
        node._tf_buffer = buffer
        header = Header(frame_id="tfcam_optical_frame")
        header.stamp.sec = 100
        m, source = node._tf_pose(node.io[0], header)
        assert source == "tf" and np.allclose(m[:3, 3], (1.2, 0.0, 1.5))
        assert np.allclose(m[:3, :3] @ np.array([0.0, 0.0, 1.0]), (1.0, 0.0, 0.0))  # the optical axis looks forward
    finally:
        node.on_shutdown(None)
        node.destroy_node()
