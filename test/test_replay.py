import numpy as np
import pytest

from fcn_perception.bags.bag_io import BagWriter, bag_topics, camera_namespace, count_messages, read_messages
from fcn_perception.bags.replay import replay

REPO_PARAMS = "config/fcn_perception.yaml"


@pytest.mark.parametrize(
    ("topic", "ns"),
    [
        ("/cam_front/image/compressed", "/cam_front"),
        ("/cam_front/image_raw/compressed", "/cam_front"),
        ("/cam_front/image_raw", "/cam_front"),
        ("/a/b/image", "/a/b"),
        ("/image_raw", ""),
        ("/weird/topic", "/weird/topic"),
    ],
)
def test_camera_namespace(topic, ns):
    assert camera_namespace(topic) == ns


def test_replay_writes_inputs_and_outputs_with_original_stamps(two_camera_bag, tmp_path):
    out = tmp_path / "out"
    summary = replay(two_camera_bag, out, params=REPO_PARAMS, progress=False)
    counts = count_messages(out)
    n = count_messages(two_camera_bag)["/camera_front/image_raw/compressed"]
    assert summary.frames == 2 * n and summary.bad_frames == 0
    for ns in ("/camera_front", "/camera_rear"):
        assert counts[f"{ns}/segmentation/mask"] == n
        assert counts[f"{ns}/segmentation/overlay"] == n
        assert counts[f"{ns}/drivable_area/polygon"] == n
    assert counts["/camera_front/camera_info"] == n  # non-image inputs pass through
    assert bag_topics(out)["/camera_rear/drivable_area/polygon"] == "geometry_msgs/msg/PolygonStamped"
    inputs = {(m.msg.header.stamp.sec, m.msg.header.stamp.nanosec, m.timestamp) for m in read_messages(two_camera_bag, ["/camera_rear/image_raw"])}
    masks = list(read_messages(out, ["/camera_rear/segmentation/mask"]))
    assert {(m.msg.header.stamp.sec, m.msg.header.stamp.nanosec, m.timestamp) for m in masks} == inputs
    mask = masks[0].msg
    assert (mask.width, mask.height, mask.encoding, mask.header.frame_id) == (480, 360, "mono8", "camera_rear_optical_frame")
    classes = np.frombuffer(mask.data, np.uint8)
    assert classes.max() < 11 and (classes == 3).mean() > 0.2  # a road scene: plenty of road
    polygons = [m.msg for m in read_messages(out, ["/camera_front/drivable_area/polygon"])]
    assert all(len(p.polygon.points) >= 3 for p in polygons)
    # the front camera has CameraInfo: ground outputs for every frame; the rear has none: image outputs only
    for topic in ("polygon_ground", "grid", "markers"):
        assert counts[f"/camera_front/drivable_area/{topic}"] == n, topic
    assert "/camera_rear/drivable_area/grid" not in counts and counts["/camera_rear/drivable_area/markers"] == n
    assert summary.ground_status["/camera_rear/image_raw"].startswith("disabled: no /camera_rear/camera_info")
    grid = next(read_messages(out, ["/camera_front/drivable_area/grid"])).msg
    assert grid.header.frame_id == "base_link" and set(np.unique(grid.data)) <= {-1, 0, 100}


def test_ground_polygons_of_the_sample_drive_span_plausible_metres(sample_bag, tmp_path):
    """The documented check (README, "Drivable area on the ground"): the sample drive's camera is about 1.5 m up
    and level (the default camera_pose), CamVid's road ahead is one lane or two wide and runs far ahead."""
    out = tmp_path / "out"
    replay(sample_bag, out, params=REPO_PARAMS, progress=False)
    inputs = {(m.msg.header.stamp.sec, m.msg.header.stamp.nanosec) for m in read_messages(sample_bag, ["/camera_front/image_raw/compressed"])}
    grounds = [m.msg for m in read_messages(out, ["/camera_front/drivable_area/polygon_ground"])]
    assert {(p.header.stamp.sec, p.header.stamp.nanosec) for p in grounds} == inputs and all(p.header.frame_id == "base_link" for p in grounds)
    for p in grounds:
        xy = np.array([[q.x, q.y] for q in p.polygon.points])
        assert 2.0 < xy[:, 0].min() < 6.0  # the bonnet hides the first metres
        assert 20.0 < xy[:, 0].max() <= 50.0 + 1e-3  # far ahead, clipped at ground_max_range
        width_near = np.ptp(xy[xy[:, 0] < 8.0, 1])
        assert 3.0 < width_near < 15.0, width_near  # one to three lanes near the car


def test_replay_reads_sqlite3_and_filters_topics(sample_bag, tmp_path):
    sqlite_bag = tmp_path / "in_sqlite"
    with BagWriter(sqlite_bag, storage="sqlite3") as bag:
        for i, m in enumerate(read_messages(sample_bag)):
            if i < 10:
                bag.write(m.topic, m.msgtype, m.timestamp, m.msg)
    out = tmp_path / "out"
    summary = replay(sqlite_bag, out, topics=["/camera_front/image_raw/compressed"], overrides={"publish_overlay": False}, storage="sqlite3", progress=False)
    assert summary.frames == 5
    counts = count_messages(out)
    assert counts["/camera_front/segmentation/mask"] == 5 and "/camera_front/segmentation/overlay" not in counts


def test_replay_errors_are_clear_and_leave_no_partial_output(sample_bag, tmp_path):
    with pytest.raises(ValueError, match="not in"):
        replay(sample_bag, tmp_path / "o1", topics=["/nope/image_raw"], progress=False)
    with pytest.raises(ValueError, match="not image topics"):
        replay(sample_bag, tmp_path / "o2", topics=["/camera_front/camera_info"], progress=False)
    with pytest.raises(ValueError, match="unknown parameters"):
        replay(sample_bag, tmp_path / "o3", overrides={"bogus": 1}, progress=False)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "exists").mkdir()
    with pytest.raises(FileExistsError):
        replay(sample_bag, tmp_path / "exists", progress=False)


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_replay_stopped_mid_run_leaves_no_partial_bag(sample_bag, tmp_path, sig):
    import os
    import signal
    import subprocess
    import sys
    import time

    looped = tmp_path / "long_drive"  # the sample drive 10 times: long enough to be stopped mid-run
    with BagWriter(looped) as bag:
        for k in range(10):
            for m in read_messages(sample_bag):
                bag.write(m.topic, m.msgtype, m.timestamp + k * 10**10, m.msg)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-m", "fcn_perception", "replay", str(looped), "--out", str(out)], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.*")) and time.monotonic() < deadline:  # the writer's temporary folder: mid-run
        time.sleep(0.05)
    time.sleep(2.0)
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert not out.exists() and not list(tmp_path.glob(".out.*")), list(tmp_path.iterdir())
    assert "Traceback" not in err and "no partial output" in err
