"""Lane markings for the planner: points on the ground against a known pose, the PointCloud2 that
carries them, no cloud without a pose, and the shipped model's lane class end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fcn_perception.ros import outputs
from fcn_perception.ros.cdr import rosbags_message
from fcn_perception.ros.messages import cloud_msg
from fcn_perception.scene.ground import CameraModel, GroundConfig, GroundProjector, rpy_matrix
from fcn_perception.scene.lanes import lane_pixels, lane_points

F, CX, CY, H, W, HGT = 460.0, 240.0, 180.0, 1.5, 480, 360
PITCH = math.radians(5)
LANE = 11


def projector(max_range=50.0):
    k = np.array([[F, 0, CX], [0, F, CY], [0, 0, 1]])
    cam = CameraModel(k, np.zeros(5), W, HGT, np.array([1.0, 0.2, H]), rpy_matrix(0.0, PITCH, 0.0))
    return GroundProjector(cam, GroundConfig(max_range=max_range))


def test_lane_points_lie_where_their_pixels_see_the_ground():
    mask = np.zeros((HGT, W), np.uint8)
    mask[200:360, 100:104] = LANE  # a marking left of centre, below the horizon
    mask[0:40, 300:304] = LANE  # paint "in the sky": above the horizon, no ground there
    p = projector()
    lanes = lane_points(mask, LANE, p, max_points=10_000)
    assert len(lanes.ground) == 160 * 4  # every pixel below the horizon, none of the sky's
    assert lanes.ground.dtype == np.float32 and np.all(lanes.ground[:, 2] == 0.0)
    back, in_front = p.camera.ground_to_pixels(lanes.ground[:, :2].astype(np.float64))
    assert in_front.all() and np.abs(back - lanes.pixels).max() < 0.05  # projected back onto their own pixels
    # one pixel by hand: ray (1, -xn, -yn) in the camera body (x forward, y left, z up), pitched down
    u, v = 100.0, 359.0
    xn, yn = (u - CX) / F, (v - CY) / F
    dx, dy, dz = math.cos(PITCH) - yn * math.sin(PITCH), -xn, -(math.sin(PITCH) + yn * math.cos(PITCH))
    t = -H / dz
    i = int(np.flatnonzero((lanes.pixels[:, 0] == u) & (lanes.pixels[:, 1] == v))[0])
    assert lanes.ground[i, :2] == pytest.approx((1.0 + t * dx, 0.2 + t * dy), abs=1e-3)


def test_far_paint_is_dropped_not_clipped_and_the_count_is_bounded():
    mask = np.zeros((HGT, W), np.uint8)
    mask[150:360, :] = LANE
    near = lane_points(mask, LANE, projector(max_range=8.0), max_points=500)
    assert 0 < len(near.ground) <= 500
    dist = np.linalg.norm(near.ground[:, :2] - [1.0, 0.2], axis=1)
    assert dist.max() <= 8.0 + 1e-4  # beyond the range: gone, never moved onto the range circle
    picked = lane_pixels(mask, LANE, 500)
    assert picked[:, 1].min() < 160 and picked[:, 1].max() > 350  # spread over the whole marking


def test_the_cloud_is_x_y_z_float32_in_base_frame():
    pts = np.array([[5.0, 1.5, 0.0], [12.25, -3.0, 0.0]], np.float32)
    hdr = rosbags_message("std_msgs/msg/Header", frame_id="base_footprint")
    msg = cloud_msg(rosbags_message, hdr, pts)
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1)]
    assert (msg.height, msg.width, msg.point_step, msg.row_step, msg.is_bigendian) == (1, 2, 12, 24, False)
    assert msg.header.frame_id == "base_footprint"
    assert np.array_equal(np.frombuffer(bytes(msg.data), "<f4").reshape(-1, 3), pts)


@pytest.fixture(scope="module")
def lane_frame():
    """A CamVid val frame with many lane-marking pixels in its 32-class label, and its CameraInfo-like pose."""
    from pathlib import Path

    import cv2

    from fcn_perception.model.classes import CAMVID_CLASSES
    from fcn_perception.training.datasets import LabelReader, load_class_map, open_split

    repo = Path(__file__).resolve().parents[1]
    ds = open_split(repo.parent / "shared" / "data" / "camvid_lanes", "val")
    classes = [*CAMVID_CLASSES, "LaneMarking"]
    reader = LabelReader(ds, classes, load_class_map(repo / "config" / "class_maps" / "camvid32_to_lanes.yaml"))
    best = max(ds.pairs, key=lambda p: int((reader(p[1]) == LANE).sum()))
    return cv2.cvtColor(cv2.imread(str(best[0])), cv2.COLOR_BGR2RGB), reader(best[1])


def test_the_shipped_model_sees_lanes_and_the_node_outputs_carry_them(lane_frame):
    from types import SimpleNamespace

    from fcn_perception.scene.pipeline import CameraState, Pipeline

    rgb, label = lane_frame
    pipeline = Pipeline()
    assert pipeline.segmenter.classes[LANE] == "LaneMarking" and pipeline.lane_id == LANE
    state = CameraState()
    info = SimpleNamespace(k=[F, 0, CX, 0, F, CY, 0, 0, 1], d=[0.0] * 5, width=W, height=HGT)
    no_pose = pipeline.process_rgb(rgb, state)
    assert no_pose.lanes is None  # no pose: no cloud
    hdr = rosbags_message("std_msgs/msg/Header", frame_id="camera_optical_frame")
    assert "lane_points" not in outputs.build(list(outputs.OUTPUTS), rosbags_message, hdr, no_pose, "base_footprint", lambda: no_pose.mask)
    state.calibrate(info, GroundConfig(), (0.0, 0.0, 1.5), (0.0, 0.0, 0.0))
    res = pipeline.process_rgb(rgb, state)
    predicted = res.mask == LANE
    iou = (predicted & (label == LANE)).sum() / max(1, (predicted | (label == LANE)).sum())
    assert iou > 0.3, iou  # the model sees this frame's paint
    assert res.lanes is not None and len(res.lanes.ground) > 100
    u, v = np.round(res.lanes.pixels).astype(int).T
    assert (res.mask[v, u] == LANE).all()  # every point comes from a lane pixel of the published mask
    assert pipeline.drivable_pixels(res.mask)[predicted].all()  # painted lines are drivable: never a hole
    out = outputs.build(list(outputs.OUTPUTS), rosbags_message, hdr, res, "base_footprint", lambda: res.mask)
    assert out["lane_points"].header.frame_id == "base_footprint" and out["lane_points"].width == len(res.lanes.ground)
    markers = out["markers"].markers
    assert markers[0].action == 3  # DELETEALL first
    rings = {m.ns: m for m in markers[1:] if m.type == 4 and m.ns != "ground/boundary"}
    assert {"image/outer", "ground/outer"} <= set(rings)
    image, ground = rings["image/outer"], rings["ground/outer"]
    assert image.header.frame_id == "camera_optical_frame" and {p.z for p in image.points} == {1.0}  # the z = 1 m plane
    assert ground.header.frame_id == "base_footprint" and {p.z for p in ground.points} == {0.0}
    assert (image.points[0].x, image.points[0].y) == (image.points[-1].x, image.points[-1].y)  # closed
