"""The ego lane's boundaries, from paint on the ground at a known pose: straight and curved lines,
dashed, with an arrow and a stop line between them, come back within a few centimetres; track ids
are kept over a sequence and a frame without paint is bridged; no pose, no boundary; the Paths."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from fcn_perception.scene.ground import GroundConfig
from fcn_perception.scene.lane_lines import LEFT, RIGHT, LaneLineConfig, LaneTracker, ego_lane
from fcn_perception.scene.pipeline import CameraState, Pipeline

W, H, F = 960, 540, 700.0
LANE = 11  # LaneMarking in the shipped model's classes
CFG = LaneLineConfig()


def centre(x: np.ndarray, curve: float) -> np.ndarray:
    return curve * x**2


def paint(curve: float = 0.0, dashed: bool = True, clutter: bool = True, step: float = 0.05) -> np.ndarray:
    """(N, 2) paint points: lines 1.75 m each side of a centre line y = curve x^2, 0.12 m wide,
    dashed 3 m on / 3 m off; with ``clutter``, an arrow in the lane and a stop line across it."""
    x = np.arange(2.0, 32.0, step)
    pts = []
    for side in (LEFT, RIGHT):
        on = ((x % 6.0) < 3.0) if dashed else np.ones_like(x, bool)
        for w in (-0.06, 0.0, 0.06):
            pts.append(np.column_stack([x[on], centre(x[on], curve) + side * 1.75 + w]))
    if clutter:
        ax = np.arange(8.0, 10.5, step)  # an arrow in the middle of the lane: shaft and head
        pts.append(np.column_stack([ax, centre(ax, curve) + 0.0]))
        pts.append(np.column_stack([np.full(9, 10.3), centre(np.full(9, 10.3), curve) + np.linspace(-0.4, 0.4, 9)]))
        sy = np.arange(-1.75, 1.75, step)  # a stop line across the lane at 14 m
        for dx in (0.0, 0.1, 0.2, 0.3):
            pts.append(np.column_stack([np.full(len(sy), 14.0 + dx), centre(14.0, curve) + sy]))
    return np.concatenate(pts)


def lateral_error(boundary, curve: float, side: int) -> float:
    pts = boundary.points(0.5)
    return float(np.max(np.abs(pts[:, 1] - (centre(pts[:, 0], curve) + side * 1.75))))


@pytest.mark.parametrize("curve", [0.0, 0.002, -0.0015])
@pytest.mark.parametrize("dashed", [True, False])
def test_boundaries_come_back_within_centimetres_through_dashes_arrows_and_a_stop_line(curve, dashed):
    lane = ego_lane(paint(curve, dashed), CFG)
    for side, b in ((LEFT, lane.left), (RIGHT, lane.right)):
        assert b is not None and b.side == side
        assert lateral_error(b, curve, side) <= 0.05, (curve, dashed, side, lateral_error(b, curve, side))
        pts = b.points(CFG.step_m)
        assert np.all(np.diff(pts[:, 0]) > 0) and np.allclose(np.diff(pts[:, 0]), CFG.step_m)  # by increasing x, 0.5 m
        assert b.x_range[0] <= 3.0 and b.x_range[1] >= 26.0  # across the gaps, over the range seen
    centre_line = lane.center(0.5)
    assert centre_line is not None and np.max(np.abs(centre_line[:, 1] - centre(centre_line[:, 0], curve))) <= 0.05


def test_paint_only_in_the_lane_or_only_far_out_is_no_boundary():
    arrow = np.column_stack([np.arange(5, 20, 0.05), np.zeros(300)])
    assert ego_lane(arrow, CFG).found == 0  # an arrow in the lane is no boundary
    text = np.column_stack([np.arange(5, 20, 0.05), np.full(300, 0.45)])  # long text or arrows just off the centre line
    assert ego_lane(text, CFG).left is None
    far = np.column_stack([np.arange(5, 20, 0.05), np.full(300, 4.5)])
    assert ego_lane(far, CFG).left is None  # the next lane's line, not ours
    assert ego_lane(np.zeros((0, 2)), CFG).found == 0


def test_track_ids_are_kept_over_a_sequence_and_a_frame_without_paint_is_bridged():
    tracker = LaneTracker(CFG)
    ids = []
    for k in range(6):  # the car drifts left in its lane: the lines move right, smoothly
        pts = paint() - [0.0, 0.05 * k]
        if k == 3:
            pts = pts[pts[:, 1] > 0]  # the right line hidden for a frame (a passing car)
        lane = tracker.update(ego_lane(pts, CFG))
        assert lane.left is not None and lane.right is not None
        ids.append((lane.left.track_id, lane.right.track_id, lane.right.bridged))
    assert len({i[0] for i in ids}) == 1 and len({i[1] for i in ids}) == 1 and ids[0][0] != ids[0][1]
    assert [i[2] for i in ids] == [0, 0, 0, 1, 0, 0]
    gone = [tracker.update(ego_lane(np.zeros((0, 2)), CFG)) for _ in range(3)]  # bridged twice, then lost
    assert [g.found for g in gone] == [2, 2, 0]
    lane = tracker.update(ego_lane(paint() + np.array([0.0, 1.2]), CFG))  # a line 1.2 m off: another line, a new id
    assert lane.left.track_id not in {i[0] for i in ids}


def test_with_stamps_the_tracker_smooths_and_bridges_by_time_not_by_frames():
    """30 Hz: the previous course's share is ``smoothing`` and a missing line is bridged twice; frames
    1 s apart (a slow or sparse camera): the ids carry over, nothing is smoothed or bridged."""
    first, moved = paint(), paint() - [0.0, 0.2]  # the car 0.2 m to the left: the lines 0.2 m to the right
    fast, slow = LaneTracker(CFG), LaneTracker(CFG)
    fast.update(ego_lane(first, CFG), stamp_s=10.0)
    a = slow.update(ego_lane(first, CFG), stamp_s=10.0)
    b = fast.update(ego_lane(moved, CFG), stamp_s=10.0 + 1 / 30)
    assert b.left.coeffs[0] == pytest.approx(1.75 - 0.1, abs=0.03)  # half way: smoothing 0.5 at 30 Hz
    c = slow.update(ego_lane(moved, CFG), stamp_s=11.0)
    assert c.left.track_id == a.left.track_id and c.left.coeffs[0] == pytest.approx(1.75 - 0.2, abs=0.03)
    none = ego_lane(np.zeros((0, 2)), CFG)
    assert [fast.update(none, stamp_s=10.0 + k / 30).found for k in (2, 3, 4)] == [2, 2, 0]
    assert slow.update(none, stamp_s=12.0).found == 0  # a second without paint: nothing stale is published


def test_smoothing_blends_courses_where_both_were_seen_not_coefficients():
    """A curve seen near the car, then a straight line seen farther out: the blend is half way where
    both were seen and the new line beyond (blending the cubics' coefficients would bend it off)."""
    from fcn_perception.scene.lane_lines import Boundary, EgoLane

    tracker = LaneTracker(CFG)
    near = Boundary(LEFT, np.array([1.75, 0.0, 0.01, 0.0]), (2.0, 10.0), 1.0, position=-1)
    far = Boundary(LEFT, np.array([1.75, 0.0, 0.0, 0.0]), (2.0, 28.0), 1.0, position=-1)
    tracker.update(EgoLane(near, None))
    out = tracker.update(EgoLane(far, None)).left
    y = out.y(np.array([8.0, 26.0]))  # the curve puts the line at 2.39 m at 8 m, the straight one at 1.75 m
    assert 1.9 <= y[0] <= 2.25 and abs(y[1] - 1.75) <= 0.15  # the coefficients' blend: 5.1 m at 26 m


def _frame_with_paint() -> np.ndarray:
    """A mask of road with the two dashed lines drawn where a level camera 1.5 m up sees them."""
    from fcn_perception.scene.ground import CameraModel

    info = SimpleNamespace(k=[F, 0, W / 2, 0, F, H / 2, 0, 0, 1], d=[0.0] * 5, width=W, height=H)
    cam = CameraModel.from_camera_info(info, (0.0, 0.0, 1.5))
    mask = np.full((H, W), 3, np.uint8)  # Road
    mask[: H // 2 + 2] = 0  # Sky above the horizon
    pts = paint(clutter=False, step=0.02)
    px, in_front = cam.ground_to_pixels(pts)
    u, v = np.round(px[in_front]).astype(int).T
    ok = (u >= 0) & (u < W) & (v >= 0) & (v < H)
    mask[v[ok], u[ok]] = LANE
    return mask, info


def test_no_pose_no_boundary_and_with_a_pose_the_paths_are_published_shape():
    from fcn_perception.ros import outputs
    from fcn_perception.ros.cdr import rosbags_message

    pipeline = Pipeline()
    mask, info = _frame_with_paint()
    state = CameraState()
    no_pose = pipeline.drivable_area(mask, state)
    assert no_pose.ego_lane is None
    hdr = rosbags_message("std_msgs/msg/Header", frame_id="cam_optical_frame")

    def picture():
        return np.zeros((H, W, 3), np.uint8)

    assert not {"ego_left", "ego_right", "lane_center"} & set(outputs.build(list(outputs.OUTPUTS), rosbags_message, hdr, no_pose, "base_link", picture))
    state.calibrate(info, GroundConfig(), (0.0, 0.0, 1.5), (0.0, 0.0, 0.0))
    res = pipeline.drivable_area(mask, state)
    assert res.ego_lane is not None and res.ego_lane.found == 2
    out = outputs.build(list(outputs.OUTPUTS), rosbags_message, hdr, res, "base_link", picture)
    left, right, mid = (out[k].message for k in ("ego_left", "ego_right", "lane_center"))  # written as CDR: read back
    assert left.header.frame_id == "base_link" and len(left.poses) > 10
    xs = [p.pose.position.x for p in left.poses]
    assert xs == sorted(xs) and max(np.diff(xs)) <= 1.0 and all(p.pose.position.z == 0 for p in left.poses)
    assert np.median([p.pose.position.y for p in left.poses]) == pytest.approx(1.75, abs=0.08)
    assert np.median([p.pose.position.y for p in right.poses]) == pytest.approx(-1.75, abs=0.08)
    assert np.median([abs(p.pose.position.y) for p in mid.poses]) < 0.08
    assert res.lane_lines_px and {pos for pos, _ in res.lane_lines_px} >= {-1, 1}  # drawn in the overlay
    table = out["lane_boundaries"]  # the rows, read back from the message's own field list alone
    assert table.header.frame_id == "base_link" and table.width == len(res.ego_lane.boundaries()) >= 2
    kinds = {1: "i1", 2: "u1", 6: "<u4", 7: "<f4"}
    dtype = np.dtype(
        {
            "names": [f.name for f in table.fields],
            "formats": [kinds[f.datatype] for f in table.fields],
            "offsets": [f.offset for f in table.fields],
            "itemsize": table.point_step,
        }
    )
    rows = np.frombuffer(bytes(table.data), dtype)
    ego = {int(r["position"]): r for r in rows}
    assert ego[-1]["c0"] == pytest.approx(1.75, abs=0.08) and ego[1]["c0"] == pytest.approx(-1.75, abs=0.08)
    assert ego[-1]["track_id"] == res.ego_lane.left.track_id and 0 < ego[1]["confidence"] <= 1
    strips = [mk for mk in out["markers"].markers if mk.ns == "ground/boundary"]
    assert len(strips) == table.width and {mk.id for mk in strips} == {int(r["track_id"]) for r in rows}


def test_every_boundary_is_described_position_kind_colour_and_its_table_row():
    """A hand-made road: ego-left a dashed white line, ego-right a solid yellow one, beyond the left a
    solid white double line 3.5 m farther out, beyond the right nothing. Each boundary's position,
    kind, colour, track id, range and cubic come back, and so does its row in the boundaries table."""
    from fcn_perception.scene.lane_lines import BOUNDARY_ROW, KINDS, boundary_table

    x = np.arange(2.0, 30.0, 0.05)
    dash = (x % 6.0) < 3.0
    parts, colours = [], []
    white, yellow = (235, 235, 230), (230, 190, 40)

    def stroke(xs, y, rgb):
        for w in (-0.05, 0.0, 0.05):
            parts.append(np.column_stack([xs, np.full(len(xs), y + w)]))
            colours.append(np.tile(rgb, (len(xs), 1)))

    stroke(x[dash], 1.75, white)
    stroke(x, -1.75, yellow)
    stroke(x, 5.25, white)
    stroke(x, 5.5, white)  # the double line's second stroke, 0.25 m out
    lane = LaneTracker(CFG).update(ego_lane(np.concatenate(parts), CFG, rgb=np.concatenate(colours).astype(np.uint8)))
    got = {b.position: b for b in lane.boundaries()}
    assert sorted(got) == [-2, -1, 1]
    assert (got[-1].kind, got[-1].colour) == ("dashed", "white")
    assert (got[1].kind, got[1].colour) == ("solid", "yellow")
    assert (got[-2].kind, got[-2].colour) == ("double", "white") and abs(got[-2].coeffs[0] - 5.375) <= 0.1
    assert len({b.track_id for b in got.values()}) == 3 and all(b.track_id > 0 for b in got.values())
    rows = boundary_table(lane)
    assert rows.dtype == BOUNDARY_ROW and list(rows["position"]) == [-2, -1, 1]
    right = rows[rows["position"] == 1][0]
    assert KINDS[right["kind"]] == "solid" and right["colour"] == 2 and right["track_id"] == got[1].track_id
    assert abs(right["c0"] + 1.75) <= 0.05 and right["x_min"] <= 2.5 and right["x_max"] >= 29.0
    assert 0.9 <= right["confidence"] <= 1.0


def test_the_cars_motion_from_odom_moves_the_last_boundaries_before_they_are_matched():
    """A lane change of 0.8 m between two frames (world lines fixed): with the car's pose in odom the
    last frame's lines are moved into the new frame, so each keeps its id and its smoothed offset is
    the new one; frame to frame (no pose) the jump makes new lines of them."""

    def pose(y: float) -> np.ndarray:
        m = np.eye(4)
        m[1, 3] = y
        return m

    first, second = paint(dashed=False, clutter=False), paint(dashed=False, clutter=False) - [0.0, 0.8]
    with_odom, without = LaneTracker(CFG), LaneTracker(CFG)
    a = with_odom.update(ego_lane(first, CFG), pose(0.0))
    b = with_odom.update(ego_lane(second, CFG), pose(0.8))
    assert (b.left.track_id, b.right.track_id) == (a.left.track_id, a.right.track_id)
    assert b.left.coeffs[0] == pytest.approx(0.95, abs=0.05) and b.right.coeffs[0] == pytest.approx(-2.55, abs=0.05)
    c = without.update(ego_lane(first, CFG))
    d = without.update(ego_lane(second, CFG))
    assert d.left.track_id != c.left.track_id and d.right.track_id != c.right.track_id


def test_eval_line_figures_score_a_prediction_against_the_labels_paint():
    """The label's own paint as the prediction: every labelled boundary found, no error; the paint
    moved 0.4 m sideways: published but not matched (beyond 0.25 m); paint missing on one side:
    recall halves."""
    from fcn_perception.scene.lane_eval import LaneEvalConfig, LaneJudge

    label, _ = _frame_with_paint()
    cfg = LaneEvalConfig(intrinsics=(F, F, W / 2, H / 2, W, H))
    same = LaneJudge(cfg)
    same.add(label, label, LANE)
    s = same.scores.summary()
    assert (s["labelled"], s["published"], s["matched"], s["precision"], s["recall"]) == (2, 2, 2, 1.0, 1.0)
    assert s["median_lateral_error_m"] == 0.0 and set(s["median_lateral_error_at"]) == {"5m", "10m", "15m"}
    assert (s["paint_precision"], s["paint_recall"]) == (1.0, 1.0) and s["paint_median_lateral_error_m"] <= 0.06
    shifted = np.full_like(label, 3)
    v, u = np.nonzero(label == LANE)
    du = np.round((u - W / 2) * 0.4 / 1.75).astype(int)  # 0.4 m farther out at every distance
    shifted[v, np.clip(u + du, 0, W - 1)] = LANE
    off = LaneJudge(cfg)
    off.add(shifted, label, LANE)
    assert off.scores.summary()["matched"] == 0 and off.scores.summary()["published"] == 2
    assert off.scores.summary()["paint_precision"] == 0.0  # 0.4 m from the labelled paint: not along it
    half = label.copy()
    half[:, : W // 2][half[:, : W // 2] == LANE] = 3  # the left line's paint gone
    one = LaneJudge(cfg)
    one.add(half, label, LANE)
    assert one.scores.summary()["recall"] == 0.5 and one.scores.summary()["precision"] == 1.0
    assert (one.scores.summary()["paint_recall"], one.scores.summary()["paint_precision"]) == (0.5, 1.0)
