"""The fused bird's-eye grid on geometry that is known: a ground map (road, lane paint, pavement)
seen by three cameras of known intrinsics and poses, their masks rendered from the map, fuses back
to the map where it was seen and is unknown exactly where no camera looked; under the car's motion
from TF a static map holds still; a camera that stops sending fades out by its age rule."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from fcn_perception.scene.fusion import FREE, OCCUPIED, UNKNOWN, ClassRoles, FusedGrid, FusionConfig, ego_polygon
from fcn_perception.scene.ground import CameraModel, GridSpec

SKY, ROAD, PAVEMENT, LANE, CAR = 0, 3, 4, 11, 8
ROLES = ClassRoles(drivable={ROAD, LANE}, lane={LANE}, flat={PAVEMENT}, ignore={SKY})
W, H, F = 960, 720, 600.0
RIG = {  # name: (xyz, rpy) of the camera body in base_link
    "front": ((1.5, 0.0, 1.6), (0.0, 0.12, 0.0)),
    "left": ((1.0, 0.8, 1.6), (0.0, 0.25, np.pi / 2.2)),
    "right": ((1.0, -0.8, 1.6), (0.0, 0.25, -np.pi / 2.2)),
}


def world_class(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The ground map: a 7 m road along x with dashed paint 1.75 m each side of its centre line,
    pavement beyond; the road bends left past x = 25 m (so the map is not symmetric)."""
    centre = 0.08 * np.clip(x - 25.0, 0.0, None) ** 1.5 / 5
    off = y - centre
    out = np.full(x.shape, PAVEMENT, np.uint8)
    out[np.abs(off) < 3.5] = ROAD
    paint = (np.abs(np.abs(off) - 1.75) < 0.1) & ((x % 6.0) < 3.0)
    out[paint] = LANE
    return out


def camera(name: str) -> CameraModel:
    info = SimpleNamespace(k=[F, 0, W / 2, 0, F, H / 2, 0, 0, 1], d=[0.0] * 5, width=W, height=H)
    xyz, rpy = RIG[name]
    return CameraModel.from_camera_info(info, xyz, rpy)


def render(cam: CameraModel, base_in_world: np.ndarray | None = None) -> np.ndarray:
    """The mask the camera would see of the map (sky where its ray misses the ground within 60 m);
    ``base_in_world``: the car's 3x3 2D pose on the map (default: at its origin)."""
    base_in_world = np.eye(3) if base_in_world is None else base_in_world
    u, v = np.meshgrid(np.arange(W) + 0.0, np.arange(H) + 0.0)
    ground, clipped = cam.pixels_to_ground(np.column_stack([u.ravel(), v.ravel()]), 60.0)
    world = (base_in_world @ np.column_stack([ground, np.ones(len(ground))]).T).T
    cls = world_class(world[:, 0], world[:, 1])
    cls[clipped] = SKY
    return cls.reshape(H, W)


def pose4(x: float, y: float, yaw: float = 0.0) -> np.ndarray:
    m = np.eye(4)
    m[:2, :2] = [[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]]
    m[0, 3], m[1, 3] = x, y
    return m


def truth(view) -> np.ndarray:
    """The map's drivable cells on the view's grid (cell centres)."""
    rows, cols = view.drivable.shape
    xs = view.origin[0] + (np.arange(cols) + 0.5) * view.resolution
    ys = view.origin[1] + (np.arange(rows) + 0.5) * view.resolution
    gx, gy = np.meshgrid(xs, ys)
    return np.isin(world_class(gx, gy), list(ROLES.drivable))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / max(1, (a | b).sum())


CFG = FusionConfig(spec=GridSpec(0.2, -10.0, 40.0, 20.0), max_range=50.0)


@pytest.fixture(scope="module")
def fused():
    grid = FusedGrid(CFG, ROLES)
    for name in RIG:
        grid.calibrate(name, camera(name))
        assert grid.add(name, 1_000_000_000, render(camera(name)), None)
    return grid


def test_three_cameras_fuse_back_to_the_map_where_seen_and_unknown_where_none_looked(fused):
    view = fused.snapshot(1_000_000_000)
    assert not view.fixed_frame and sorted(view.cameras) == sorted(RIG)
    occ = view.occupancy()
    seen = occ != UNKNOWN
    assert iou((occ == FREE) & seen, truth(view) & seen) >= 0.97, iou((occ == FREE) & seen, truth(view) & seen)
    looked = np.zeros(occ.shape, bool)  # where some camera's pixel sees the cell centre on the ground
    for name in RIG:
        looked |= _lookup(name).seen.reshape(occ.shape)
    assert np.array_equal(seen, looked) and (~looked).any()  # unknown exactly where no camera looked
    lane = view.cost(view.lane)
    assert (lane[seen] >= 0).all() and (lane[~seen] == UNKNOWN).all() and (lane == 100).any()
    poly = ego_polygon(view)
    assert poly is not None and poly[:, 0].max() > 30 and np.abs(poly[poly[:, 0] < 20, 1]).max() < 3.8  # the road ahead


def _lookup(name):
    from fcn_perception.scene.fusion import CameraLookup

    return CameraLookup(camera(name), CFG)


def test_an_obstacle_is_not_drivable_where_it_meets_the_ground_and_unknown_behind_it():
    cam = camera("front")
    mask = render(cam)
    box = np.zeros(mask.shape, bool)  # a car on the road: its image rows above its ground contact
    contact_row, left, right = 420, 420, 540
    box[300:contact_row, left:right] = True
    mask[box] = CAR
    grid = FusedGrid(CFG, ROLES, ["front"])
    grid.calibrate("front", cam)
    grid.add("front", 1_000_000_000, mask, None)
    occ = grid.snapshot(1_000_000_000).occupancy()
    ground, _ = cam.pixels_to_ground(np.array([[480.0, contact_row - 3.0], [480.0, 320.0]]), 60.0)
    col, row = ((ground - [CFG.spec.x_min, -CFG.spec.half_width]) / CFG.spec.resolution).astype(int).T
    assert occ[row[0], col[0]] == OCCUPIED  # where the car stands: seen, not drivable
    assert occ[row[1], col[1]] == UNKNOWN  # its roof, on flat-ground geometry far behind it: no evidence


def test_the_car_moving_under_tf_keeps_a_static_map_still_and_the_grid_follows_by_whole_cells():
    grid = FusedGrid(CFG, ROLES)
    for name in RIG:
        grid.calibrate(name, camera(name))
    origins = []
    for step in range(6):  # 0.2 m (one cell) forward per frame, cameras 10 ms apart
        base = pose4(10.0 + 0.2 * step, 3.0)
        for k, name in enumerate(RIG):
            stamp = 1_000_000_000 + step * 100_000_000 + k * 10_000_000
            assert grid.add(name, stamp, render(camera(name), base[[0, 1, 3]][:, [0, 1, 3]]), None, base)
        view = grid.snapshot(stamp)
        origins.append(view.origin)
        occ = view.occupancy()
        seen = occ != UNKNOWN
        assert view.fixed_frame and iou((occ == FREE) & seen, truth(view) & seen) >= 0.97
    steps = np.round(np.diff(np.array(origins)[:, 0]) / CFG.spec.resolution)
    assert set(steps) == {1.0} and np.allclose(np.diff(np.array(origins)[:, 1]), 0)  # one cell per 0.2 m of motion
    ages = grid.snapshot(stamp).age_s
    assert np.isfinite(ages).any() and ages[np.isfinite(ages)].max() < 0.7


def test_a_camera_that_stops_sending_fades_out_by_its_age_rule():
    cfg = FusionConfig(spec=CFG.spec, max_age_s=0.5)
    grid = FusedGrid(cfg, ROLES)
    for name in RIG:
        grid.calibrate(name, camera(name))
        grid.add(name, 1_000_000_000, render(camera(name)), None)
    left_only = _lookup("left").seen & ~_lookup("front").seen & ~_lookup("right").seen
    for t in range(2, 8):  # front and right go on; left fell silent after its first frame
        for name in ("front", "right"):
            grid.add(name, t * 100_000_000 + 1_000_000_000, render(camera(name)), None)
    now = 1_700_000_000
    assert grid.stale(now) == ["left"]
    view = grid.snapshot(now)
    assert "left" not in view.cameras
    occ = view.occupancy().reshape(-1)
    assert left_only.any() and (occ[left_only] == UNKNOWN).all()
    assert grid.stale(1_400_000_000) == []  # within its age: still taking part


def test_in_the_cars_frame_a_frame_replaced_before_a_snapshot_is_never_looked_up(monkeypatch):
    """Without the car's motion only each camera's latest view is read: frames replaced before a
    snapshot cost no lookup, and the snapshot is the one of the latest frame looked up at once. A
    frame of another size than its camera is refused when it is added, not at the snapshot."""
    from fcn_perception.scene import fusion

    cam = camera("front")
    frames = [render(cam, np.array([[1.0, 0.0, x], [0.0, 1.0, y], [0.0, 0.0, 1.0]])) for x, y in ((0.0, 0.0), (3.0, 0.0), (6.0, 0.5))]  # the car moving
    looked_up = []
    view = fusion.CameraLookup.view
    monkeypatch.setattr(fusion.CameraLookup, "view", lambda self, mask, *a: looked_up.append(mask) or view(self, mask, *a))
    grid = FusedGrid(CFG, ROLES)
    grid.calibrate("front", cam)
    for i, mask in enumerate(frames):
        assert grid.add("front", 1_000_000_000 + i * 33_000_000, mask, None)
    assert looked_up == []
    lazy = grid.snapshot(1_070_000_000)
    assert len(looked_up) == 1 and looked_up[0] is frames[-1]
    grid.snapshot(1_070_000_000)
    assert len(looked_up) == 1  # looked up once, kept

    monkeypatch.setattr(fusion.CameraLookup, "view", view)
    eager = FusedGrid(CFG, ROLES)
    eager.calibrate("front", cam)
    eager.add("front", 1_066_000_000, frames[-1], None)
    at_once = eager.snapshot(1_070_000_000)
    for a, b in ((lazy.drivable, at_once.drivable), (lazy.lane, at_once.lane), (lazy.age_s, at_once.age_s)):
        assert np.array_equal(a, b, equal_nan=True)
    with pytest.raises(ValueError, match="does not match CameraInfo"):
        grid.add("front", 1_100_000_000, frames[0][::2, ::2], None)


def _split_drive(sample_bag, out, overlap: int = 40):
    """The sample drive's frames cut into a left and a right camera overlapping by ``overlap`` px in
    the middle, each with its own CameraInfo (the principal point moved with the cut), both at the
    whole frame's pose; and the whole frame as a third camera, for reference."""
    import cv2

    from fcn_perception.bags.bag_io import BagWriter, camera_info, compressed_image, read_messages
    from fcn_perception.ros.topics import CAMERA_INFO, COMPRESSED

    k = list(next(m.msg for m in read_messages(sample_bag) if m.msgtype == CAMERA_INFO).k)
    fx, cx, cy = k[0], k[2], k[5]
    with BagWriter(out) as bag:
        for m in read_messages(sample_bag):
            if m.msgtype != COMPRESSED:
                continue
            bgr = cv2.imdecode(np.frombuffer(bytes(m.msg.data), np.uint8), cv2.IMREAD_COLOR)
            h, w = bgr.shape[:2]
            half = w // 2
            cuts = {"whole": (0, w), "left": (0, half + overlap // 2), "right": (half - overlap // 2, w)}
            stamp = m.timestamp
            for name, (a, b) in cuts.items():
                frame_id = f"cam_{name}_optical_frame"
                jpeg = cv2.imencode(".jpg", bgr[:, a:b], [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
                bag.write(f"/cam_{name}/image_raw/compressed", COMPRESSED, stamp, compressed_image(stamp, frame_id, jpeg))
                bag.write(f"/cam_{name}/camera_info", CAMERA_INFO, stamp, camera_info(stamp, frame_id, b - a, h, fx, fx, cx - a, cy))
    return out


def test_real_frames_split_into_two_cameras_fuse_into_the_whole_frames_grid(sample_bag, tmp_path):
    """Replay writes fused/drivable_grid; the grid fused from the left and right halves agrees with
    the whole-frame camera's own grid where both see (drivable cells, IoU)."""
    from fcn_perception.bags.bag_io import read_messages
    from fcn_perception.bags.replay import replay
    from fcn_perception.tools.demo import SAMPLE_CAMERA_POSE

    drive = _split_drive(sample_bag, tmp_path / "split")
    topics = ["/cam_whole/image_raw/compressed", "/cam_left/image_raw/compressed", "/cam_right/image_raw/compressed"]
    overrides = {
        "image_topics": topics,
        "camera_pose": list(SAMPLE_CAMERA_POSE),
        "fusion_cameras": topics[1:],
        # the default fusion_rate (10 Hz of the drive's 15 Hz): a grid once both halves of a frame are in
        "base_frame": "base_link",
    }
    summary = replay(drive, tmp_path / "out", overrides=overrides, progress=False)
    assert summary.fused["fusion_cameras"] == ", ".join(sorted(topics[1:])) and summary.fused["fusion_frame"] == "base_link"
    whole = {m.msg.header.stamp.sec * 10**9 + m.msg.header.stamp.nanosec: m.msg for m in read_messages(tmp_path / "out", ["/cam_whole/drivable_area/grid"])}
    fused = list(read_messages(tmp_path / "out", ["/fused/drivable_grid"]))
    assert 0.4 * len(whole) <= len(fused) <= 0.8 * len(whole) and len({m.msg.header.stamp.sec * 10**9 + m.msg.header.stamp.nanosec for m in fused}) == len(
        fused
    )
    ious = []
    for m in fused:
        stamp = m.msg.header.stamp.sec * 10**9 + m.msg.header.stamp.nanosec
        ref = whole.get(stamp)
        assert ref is not None and m.msg.header.frame_id == "base_link"
        assert (m.msg.info.width, m.msg.info.height, m.msg.info.origin.position.x) == (ref.info.width, ref.info.height, ref.info.origin.position.x)
        a, b = np.asarray(m.msg.data), np.asarray(ref.data)
        both = (a >= 0) & (b >= 0)
        ious.append(iou((a == 0) & both, (b == 0) & both))
    ious = np.array(ious)
    assert np.median(ious) >= 0.95 and np.mean(ious >= 0.90) >= 0.9, ious


def test_the_node_publishes_the_fused_grid_and_says_which_cameras_take_part(ros_node, sample_bag):
    """Two cameras into the node in-process: fused/drivable_grid and its polygon come out, in
    base_frame (no TF here), and /diagnostics has a fusion status naming both cameras."""
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from fcn_perception.bags.bag_io import read_messages
    from fcn_perception.ros.diagnostics import read_statuses
    from fcn_perception.ros.node import FcnPerceptionNode
    from fcn_perception.tools.demo import SAMPLE_CAMERA_POSE
    from fcn_perception.waiting import wait_until

    got = []
    from nav_msgs.msg import OccupancyGrid

    sub = ros_node.create_subscription(OccupancyGrid, "/fused/drivable_grid", got.append, 10)
    topics = ["/a/image_raw/compressed", "/b/image_raw/compressed"]
    params = {"image_topics": topics, "camera_pose": list(SAMPLE_CAMERA_POSE), "fusion_rate": 20.0}
    node = FcnPerceptionNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        node.trigger_activate()
        node.worker.stop()  # the test serves each frame itself
        msgs = [m for m in read_messages(sample_bag)]
        info = next(m.msg for m in msgs if m.topic.endswith("camera_info"))
        frames = [m for m in msgs if m.topic.endswith("compressed")][:3]
        from fcn_perception.ros.messages import msg_class

        to_rclpy = _rclpy_copy(msg_class)
        for cam in node.cameras:
            cam.info = to_rclpy(info)
        for m in frames:
            for i in range(2):
                node._on_image(i, to_rclpy(m.msg))
                node.worker.serve_one(*node.worker.take())
        node._publish_fused()
        assert wait_until(lambda: got, 20)
        node.fusion.fed_at -= node.cfg.fusion_max_age + 0.1  # every camera silent since then: no grid sent
        sent = len(got)
        node._publish_fused()
        assert node.fusion.silent() and not wait_until(lambda: len(got) > sent, 2.0)  # none comes
        assert got[-1].header.frame_id == "base_footprint" and 0 in got[-1].data and 100 in got[-1].data
        status = next(v for k, v in read_statuses(node.diagnostics()).items() if k.endswith("fusion"))
        assert status["fusion_cameras"] == ", ".join(topics) and status["level"] == 0, status
    finally:
        node.on_shutdown(None)
        node.destroy_node()
        ros_node.destroy_subscription(sub)


def _rclpy_copy(msg_class):
    """A rosbags message as the rclpy message of the same type (what arrives over DDS)."""
    import dataclasses

    def convert(value, msgtype=None):
        if dataclasses.is_dataclass(value):
            fields = {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name != "__msgtype__"}
            return msg_class(value.__msgtype__)(**fields)
        if isinstance(value, np.ndarray):
            return value.tolist() if value.dtype != np.uint8 else value.tobytes()
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value

    return convert
