import cv2
import numpy as np
import pytest

from fcn_perception.bags.bag_io import BagWriter, bag_topics, count_messages, read_messages
from fcn_perception.bags.replay import replay
from fcn_perception.ros.outputs import is_output_topic
from fcn_perception.ros.topics import camera_namespace
from fcn_perception.tools.demo import SAMPLE_CAMERA_POSE
from fcn_perception.waiting import wait_until

REPO_PARAMS = "config/fcn_perception.yaml"
SAMPLE_POSE = {"camera_pose": list(SAMPLE_CAMERA_POSE)}


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
    summary = replay(two_camera_bag, out, params=REPO_PARAMS, overrides=SAMPLE_POSE, progress=False, overlay=True)
    counts = count_messages(out)
    n = count_messages(two_camera_bag)["/camera_front/image_raw/compressed"]
    assert summary.frames == 2 * n and summary.bad_frames == 0
    for ns in ("/camera_front", "/camera_rear"):
        assert counts[f"{ns}/segmentation/mask/compressed"] == n == counts[f"{ns}/segmentation/mask"]
        assert counts[f"{ns}/segmentation/overlay/compressed"] == n
        assert counts[f"{ns}/drivable_area/polygon"] == n
    assert counts["/camera_front/camera_info"] == n  # non-image inputs pass through
    assert bag_topics(out)["/camera_rear/drivable_area/polygon"] == "geometry_msgs/msg/PolygonStamped"
    inputs = {(m.msg.header.stamp.sec, m.msg.header.stamp.nanosec, m.timestamp) for m in read_messages(two_camera_bag, ["/camera_rear/image_raw"])}
    masks = list(read_messages(out, ["/camera_rear/segmentation/mask/compressed"]))
    assert {(m.msg.header.stamp.sec, m.msg.header.stamp.nanosec, m.timestamp) for m in masks} == inputs
    mask = masks[0].msg
    classes = cv2.imdecode(np.asarray(mask.data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert (classes.shape, mask.format, mask.header.frame_id) == ((360, 480), "png", "camera_rear_optical_frame")
    assert classes.max() < 12 and (classes == 3).mean() > 0.2  # a road scene: plenty of road
    polygons = [m.msg for m in read_messages(out, ["/camera_front/drivable_area/polygon"])]
    assert all(len(p.polygon.points) >= 3 for p in polygons)
    # the front camera has CameraInfo: ground outputs for every frame; the rear has none: image outputs only
    for topic in ("polygon_ground", "grid", "markers"):
        assert counts[f"/camera_front/drivable_area/{topic}"] == n, topic
    assert "/camera_rear/drivable_area/grid" not in counts and counts["/camera_rear/drivable_area/markers"] == n
    assert summary.cameras["/camera_rear/image_raw"].ground_status.startswith("disabled: no /camera_rear/camera_info")
    assert summary.cameras["/camera_front/image_raw/compressed"].pose_source == "camera_pose parameter"
    grid = next(read_messages(out, ["/camera_front/drivable_area/grid"])).msg
    assert grid.header.frame_id == "base_footprint" and set(np.unique(grid.data)) <= {-1, 0, 100}


def test_ground_polygons_of_the_sample_drive_span_plausible_metres(sample_bag, tmp_path):
    """The documented check (README, "Drivable area on the ground"): the sample drive's camera is about 1.5 m up
    and level (SAMPLE_CAMERA_POSE), CamVid's road ahead is one lane or two wide and runs far ahead."""
    out = tmp_path / "out"
    replay(sample_bag, out, params=REPO_PARAMS, overrides=SAMPLE_POSE, progress=False)
    inputs = {(m.msg.header.stamp.sec, m.msg.header.stamp.nanosec) for m in read_messages(sample_bag, ["/camera_front/image_raw/compressed"])}
    grounds = [m.msg for m in read_messages(out, ["/camera_front/drivable_area/polygon_ground"])]
    assert {(p.header.stamp.sec, p.header.stamp.nanosec) for p in grounds} == inputs and all(p.header.frame_id == "base_footprint" for p in grounds)
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
    assert counts["/camera_front/segmentation/mask/compressed"] == 5 and "/camera_front/segmentation/overlay/compressed" not in counts


def test_replay_errors_are_clear_and_leave_no_partial_output(sample_bag, tmp_path):
    with pytest.raises(ValueError, match="not in"):
        replay(sample_bag, tmp_path / "o1", topics=["/nope/image_raw"], progress=False)
    with pytest.raises(ValueError, match="not image topics"):
        replay(sample_bag, tmp_path / "o2", topics=["/camera_front/camera_info"], progress=False)
    with pytest.raises(ValueError, match="unknown parameter"):
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
    wait_until(lambda: bool(list(tmp_path.glob(".out.*"))), 120)  # the writer's temporary folder: mid-run
    time.sleep(2.0)
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert not out.exists() and not list(tmp_path.glob(".out.*")), list(tmp_path.iterdir())
    assert "Traceback" not in err and "no partial output" in err


VENDOR = "acme_msgs/msg/VehicleState"
VENDOR_DEF = "float64 speed\nstring status\nuint8[] blob"
CAR_POSE = [1.2, 0.0, 1.5, 0.0, 0.0, 0.0]  # what the recording's /tf_static chain says, as a camera_pose


def _car_recording(sample_bag, path, tf=True):
    """The sample drive as a car records it: camera + CameraInfo + /tf_static (base_footprint ->
    base_link -> camera_front_optical_frame) + a lidar + a vendor message type no typestore knows."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    from fcn_perception.ros.cdr import header, typestore

    vendor_store = get_typestore(Stores.ROS2_JAZZY)
    vendor_store.register(get_types_from_msg(VENDOR_DEF, VENDOR))
    T = typestore().types
    msgs = list(read_messages(sample_bag))
    t0 = msgs[0].timestamp
    rng = np.random.default_rng(0)

    def transform(parent, child, xyz, q):
        return T["geometry_msgs/msg/TransformStamped"](
            header=header(t0, parent),
            child_frame_id=child,
            transform=T["geometry_msgs/msg/Transform"](
                translation=T["geometry_msgs/msg/Vector3"](x=xyz[0], y=xyz[1], z=xyz[2]),
                rotation=T["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]),
            ),
        )

    with BagWriter(path) as bag:
        if tf:
            static = T["tf2_msgs/msg/TFMessage"](
                transforms=[
                    transform("base_footprint", "base_link", (0.0, 0.0, 0.3), (0.0, 0.0, 0.0, 1.0)),
                    transform("base_link", "camera_front_optical_frame", (1.2, 0.0, 1.2), (-0.5, 0.5, -0.5, 0.5)),
                ]
            )
            bag.write("/tf_static", "tf2_msgs/msg/TFMessage", t0, static)
        for i, m in enumerate(msgs):
            bag.write(m.topic, m.msgtype, m.timestamp, m.msg)
            if m.topic.endswith("compressed"):
                cloud = T["sensor_msgs/msg/PointCloud2"](
                    header=header(m.timestamp, "lidar_top"),
                    height=1,
                    width=500,
                    fields=[T["sensor_msgs/msg/PointField"](name=n, offset=4 * k, datatype=7, count=1) for k, n in enumerate("xyz")],
                    is_bigendian=False,
                    point_step=12,
                    row_step=6000,
                    data=rng.random(1500, dtype=np.float32).view(np.uint8),
                    is_dense=True,
                )
                bag.write("/lidar/points", "sensor_msgs/msg/PointCloud2", m.timestamp + 1, cloud)
                state = vendor_store.types[VENDOR](speed=float(i), status=f"frame {i}", blob=np.arange(i % 7, dtype=np.uint8))
                bag.write_raw("/vehicle/state", VENDOR, m.timestamp + 2, vendor_store.serialize_cdr(state, VENDOR), msgdef=VENDOR_DEF)
    return path


def _raw(path):
    from fcn_perception.bags.recording import open_recording

    out = {}
    for m in open_recording(path).messages():
        out.setdefault(m.topic, []).append((m.timestamp, bytes(m.data)))
    return out


def test_replay_of_a_car_recording_loses_nothing_and_takes_the_pose_from_tf_static(sample_bag, tmp_path):
    car = _car_recording(sample_bag, tmp_path / "car")
    out = tmp_path / "out"
    summary = replay(car, out, params=REPO_PARAMS, progress=False, summary_json=tmp_path / "s.json")
    inputs, outputs = _raw(car), _raw(out)
    for topic, messages in inputs.items():  # byte-identical, vendor type and lidar included
        assert outputs[topic] == messages, topic
    assert bag_topics(out)["/vehicle/state"] == VENDOR
    cam = summary.cameras["/camera_front/image_raw/compressed"]
    n = len(inputs["/camera_front/image_raw/compressed"])
    assert cam.masks == cam.frames == n and cam.pose_source == "tf in the bag", cam
    assert len(outputs["/camera_front/segmentation/mask/compressed"]) == n
    # the same drive with the same pose given as a parameter: the same ground polygons (within 5 cm)
    ref = tmp_path / "ref"
    replay(sample_bag, ref, params=REPO_PARAMS, overrides={"camera_pose": CAR_POSE}, progress=False)
    got = [m.msg for m in read_messages(out, ["/camera_front/drivable_area/polygon_ground"])]
    want = [m.msg for m in read_messages(ref, ["/camera_front/drivable_area/polygon_ground"])]
    assert len(got) == len(want) == n
    errors = [np.hypot(a.x - b.x, a.y - b.y) for g, w in zip(got, want, strict=True) for a, b in zip(g.polygon.points, w.polygon.points, strict=True)]
    assert np.median(errors) < 0.05 and max(errors) < 0.05
    import json

    assert json.loads((tmp_path / "s.json").read_text())["cameras"]["/camera_front/image_raw/compressed"]["masks"] == n


def test_a_recording_cut_short_without_metadata_is_read_up_to_its_last_intact_chunk(sample_bag, tmp_path):
    car = _car_recording(sample_bag, tmp_path / "car")
    cut = tmp_path / "cut"
    cut.mkdir()
    mcap = next(car.glob("*.mcap"))
    data = mcap.read_bytes()
    (cut / mcap.name).write_bytes(data[: int(len(data) * 0.6)])  # a power cut: no footer, no metadata.yaml
    summary = replay(cut, tmp_path / "out", params=REPO_PARAMS, progress=False)
    cam = summary.cameras["/camera_front/image_raw/compressed"]
    assert summary.cut_short and "metadata.yaml" in summary.cut_short
    assert 0 < cam.masks == cam.frames < 40
    assert "cut short" in summary.report()


def test_no_tf_and_no_camera_pose_gives_no_ground_outputs_and_says_why(sample_bag, tmp_path):
    car = _car_recording(sample_bag, tmp_path / "car", tf=False)
    summary = replay(car, tmp_path / "out", params=REPO_PARAMS, progress=False)
    counts = count_messages(tmp_path / "out")
    cam = summary.cameras["/camera_front/image_raw/compressed"]
    assert cam.masks == cam.frames == counts["/camera_front/segmentation/mask/compressed"]
    assert not any("polygon_ground" in t or t.endswith("/grid") for t in counts)
    assert "no camera pose" in cam.ground_status and "camera_pose is not set" in cam.ground_status


def test_replaying_an_output_bag_replaces_outputs_and_nests_nothing(two_camera_bag, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    replay(two_camera_bag, first, params=REPO_PARAMS, overrides=SAMPLE_POSE, progress=False, overlay=True)
    summary = replay(first, second, params=REPO_PARAMS, overrides=SAMPLE_POSE, progress=False, overlay=True)
    counts = count_messages(second)
    n = count_messages(two_camera_bag)["/camera_front/image_raw/compressed"]
    assert set(summary.cameras) == {"/camera_front/image_raw/compressed", "/camera_rear/image_raw"}
    assert "/camera_front/segmentation/overlay/compressed" in summary.skipped_topics
    assert not [t for t in counts if sum(p in ("segmentation", "drivable_area") for p in t.split("/")) > 1]  # nothing nested
    for ns in ("/camera_front", "/camera_rear"):
        assert counts[f"{ns}/segmentation/mask/compressed"] == n == counts[f"{ns}/segmentation/mask"]  # exactly one per frame
    assert summary.replaced_messages == sum(v for t, v in count_messages(first).items() if is_output_topic(t))


def test_output_bag_is_small_and_summary_and_videos_are_there(two_camera_bag, tmp_path):
    import subprocess
    import sys

    out, videos, js = tmp_path / "out", tmp_path / "videos", tmp_path / "summary.json"
    res = subprocess.run(
        [sys.executable, "-m", "fcn_perception", "replay", str(two_camera_bag), "--out", str(out), "--summary", str(js), "--video", str(videos)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    import json

    summary = json.loads(js.read_text())
    assert summary["output_bytes"] <= 1.5 * summary["input_bytes"], summary
    for topic, cam in summary["cameras"].items():
        cap = cv2.VideoCapture(cam["video"])
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        assert frames == cam["frames"] == 40, (topic, frames)
        assert abs(cap.get(cv2.CAP_PROP_FPS) - 15.0) < 0.5  # the sample drive's recorded pace


@pytest.mark.parametrize("damage", ["random_mcap", "metadata_file", "truncated_mcap_file", "missing"])
def test_damaged_or_wrong_bags_are_one_line_and_non_zero(sample_bag, tmp_path, damage):
    import subprocess
    import sys

    if damage == "random_mcap":
        bag = tmp_path / "x.mcap"
        bag.write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    elif damage == "metadata_file":
        bag = sample_bag / "metadata.yaml"
    elif damage == "truncated_mcap_file":
        bag = tmp_path / "t.mcap"
        bag.write_bytes(next(sample_bag.glob("*.mcap")).read_bytes()[:100])
    else:
        bag = tmp_path / "nothing_here"
    res = subprocess.run(
        [sys.executable, "-m", "fcn_perception", "replay", str(bag), "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert not (tmp_path / "o").exists()


def test_the_overlay_video_is_written_as_frames_arrive_not_held_to_the_end(tmp_path):
    """Memory must not grow with the drive: past the first RATE_FRAMES (held until their stamps give
    the rate) every frame goes to the file at once."""
    import numpy as np

    from fcn_perception.scene.video import StreamingVideo

    video = StreamingVideo(tmp_path / "v.mp4")
    frame = np.zeros((48, 64, 3), np.uint8)
    for i in range(StreamingVideo.RATE_FRAMES - 1):
        video.add(frame, i * 66_666_667)
    assert video.written == 0  # waiting for the rate
    for i in range(StreamingVideo.RATE_FRAMES - 1, 25):
        video.add(frame, i * 66_666_667)
        assert video.written == i + 1
    out = video.close()
    assert out.frames == 25 and abs(out.fps - 15.0) < 0.01
