"""The node as a real process over real DDS: end to end, bad input, overload, startup and shutdown."""

import os
import re
import signal
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from fcn_perception.bags.bag_io import read_messages
from fcn_perception.bags.live_bag import Recorder
from fcn_perception.params.table import NODE_NAME
from fcn_perception.ros.dds_profile import PROFILE, PROFILE_VARIABLES, use_node_profile
from fcn_perception.ros.diagnostics import read_statuses
from fcn_perception.tools import demo
from fcn_perception.tools.demo import NodeProcess
from fcn_perception.waiting import wait_until

PARAMS = Path(__file__).resolve().parents[1] / "config" / "fcn_perception.yaml"


def _wait(predicate, timeout=20.0):
    return wait_until(predicate, timeout)


def _start(ros_node, topics, tmp_path, extra=None):
    node = NodeProcess(PARAMS, topics, extra, log=tmp_path / "node.log")

    def ready():
        return all(any(i.node_name == NODE_NAME for i in ros_node.get_subscriptions_info_by_topic(t)) for t in topics)

    assert _wait(lambda: ready() or node.proc.poll() is not None, 60), node.output()
    assert node.proc.poll() is None, node.output()
    return node


def _diag_values(recorder, topic):
    for arr in reversed(recorder.messages("/diagnostics")):
        for name, values in read_statuses(arr).items():
            if name.endswith(topic):
                return values, values["level"]
    return None, None


def test_end_to_end_two_cameras_over_dds(ros_node, two_camera_bag, tmp_path):
    """Compressed and raw cameras at once; every mask carries its frame's stamp, frame_id and size."""
    summary = demo.run(tmp_path / "out", two_camera_bag, rate=0.5, params=PARAMS, ros=ros_node)
    assert summary["node_exit_code"] == 0
    front = summary["cameras"]["/camera_front/image_raw/compressed"]
    rear = summary["cameras"]["/camera_rear/image_raw"]
    for topic, cam in (("/camera_front/image_raw/compressed", front), ("/camera_rear/image_raw", rear)):
        assert cam["frames_in"] == 40
        # every frame of the drive is a mask, or a drop the node counted with its reason (the
        # latest-frame policy drops the older of two frames waiting when the machine is busy), or a
        # frame its subscription's queue could not hold while its executor lagged, counted lost
        diag = summary["diagnostics_last"][f"{NODE_NAME}: {topic}"]
        reasons = dict(kv.split("=") for kv in diag["drop_reasons"].split(", ")) if diag["drop_reasons"] != "none" else {}
        counts = {k: v for k, v in diag.items() if k.startswith("frames_")}
        assert cam["masks_out"] + int(diag["frames_dropped"]) + int(diag["frames_lost"]) == 40, (topic, summary["settled"], cam["masks_out"], counts)
        assert set(reasons) <= {"newer_frame"} and sum(map(int, reasons.values())) == int(diag["frames_dropped"]), diag
        assert int(diag["frames_bad"]) == 0
        assert cam["polygons_out"] == cam["masks_out"]  # a polygon per mask (empty = no drivable area ahead)
        assert cam["nonempty_polygons"] >= 0.9 * cam["masks_out"]  # the drive shows road ahead
    assert summary["ok"] == (front["masks_out"] == rear["masks_out"] == 40), summary
    assert summary["diagnostics_messages"] >= 1
    out = Path(summary["output_bag"])
    stamps = {}
    for m in read_messages(out, ["/camera_front/image_raw/compressed", "/camera_rear/image_raw"]):
        stamps[(m.topic.split("/")[1], m.msg.header.stamp.sec, m.msg.header.stamp.nanosec)] = m.msg.header.frame_id
    masks = list(read_messages(out, ["/camera_front/segmentation/mask", "/camera_rear/segmentation/mask"]))
    assert len(masks) == front["masks_out"] + rear["masks_out"]
    for m in masks:
        key = (m.topic.split("/")[1], m.msg.header.stamp.sec, m.msg.header.stamp.nanosec)
        assert stamps[key] == m.msg.header.frame_id
        assert (m.msg.width, m.msg.height, m.msg.encoding) == (480, 360, "mono8")
    # the confidence image (the recorder subscribes to it): one per mask, mono8, the mask's header and size
    confs = list(read_messages(out, ["/camera_front/segmentation/confidence", "/camera_rear/segmentation/confidence"]))
    got = {(m.topic.split("/")[1], m.msg.header.stamp.sec, m.msg.header.stamp.nanosec) for m in confs}
    want = [(m.topic.split("/")[1], m.msg.header.stamp.sec, m.msg.header.stamp.nanosec) for m in masks]
    assert len(confs) == len(masks), [(i, k) for i, k in enumerate(want) if k not in got]
    for m in confs:
        key = (m.topic.split("/")[1], m.msg.header.stamp.sec, m.msg.header.stamp.nanosec)
        assert stamps[key] == m.msg.header.frame_id and (m.msg.width, m.msg.height, m.msg.encoding) == (480, 360, "mono8")
        assert min(m.msg.data) >= 255 // 12  # a top-class probability of 12 classes
    for topic, cam in (("/camera_front/image_raw/compressed", front), ("/camera_rear/image_raw", rear)):
        diag = summary["diagnostics_last"][f"{NODE_NAME}: {topic}"]
        assert 0.5 < float(diag["drivable_confidence_mean"]) <= 1.0  # the drive's road is seen surely
        reused, ran = map(int, diag["coarse_reused"].split("/"))  # the network ran for every frame served
        assert ran - int(diag["frames_published"]) in (0, 1) and 0 <= reused < ran, diag
        assert int(diag["frames_received"]) + int(diag["frames_lost"]) == 40  # reliable QoS in the demo: lost only in the node's queue
        assert int(diag["frames_published"]) == cam["masks_out"]
        assert int(diag["frames_published"]) + int(diag["frames_dropped"]) == int(diag["frames_received"])
        assert diag["camera_publishers"] == "1" and {"mask", "polygon", "confidence"} <= set(diag["outputs_read"].split(", ")), diag
        assert 0.0 <= float(diag["node_cpu_pct"]) <= 100.0, diag
    assert diag["backend"] == "openvino-cpu"  # auto on a CPU with OpenVINO installed
    assert diag["inference_streams"] == "2"  # two cameras, two frame workers: their frames inferred side by side
    assert diag["precision"].startswith("auto = ") and ("measured" in diag["precision"] or "not yet measured" in diag["precision"])
    assert list((tmp_path / "out").glob("*_overlay_*.png"))
    # ground outputs: the front camera has CameraInfo (maybe not yet for its very first frame), the rear has none
    assert front["ground_polygons_out"] >= front["masks_out"] - 2 and front["nonempty_ground_polygons"] == front["ground_polygons_out"]
    assert front["grids_out"] == front["ground_polygons_out"] and front["markers_out"] == front["masks_out"]
    assert rear["ground_polygons_out"] == rear["grids_out"] == 0 and rear["markers_out"] == rear["masks_out"]
    assert summary["diagnostics_last"][f"{NODE_NAME}: /camera_front/image_raw/compressed"]["ground_outputs"].startswith("ok")
    assert summary["diagnostics_last"][f"{NODE_NAME}: /camera_rear/image_raw"]["ground_outputs"].startswith("disabled: no CameraInfo")
    grounds = list(read_messages(out, ["/camera_front/drivable_area/polygon_ground"]))
    assert {m.msg.header.frame_id for m in grounds} == {"base_footprint"}
    assert {(m.msg.header.stamp.sec, m.msg.header.stamp.nanosec) for m in grounds} <= {(k[1], k[2]) for k in stamps if k[0] == "camera_front"}


def test_bad_frames_are_counted_and_the_node_keeps_serving(ros_node, tmp_path):
    from sensor_msgs.msg import CompressedImage, Image

    raw_topic, jpg_topic = "/badcam/image_raw", "/badcam2/image_raw/compressed"
    node = _start(ros_node, [raw_topic, jpg_topic], tmp_path, ["-p", "diagnostics_period:=0.2"])
    try:
        rec = Recorder(ros_node, {"/badcam/segmentation/mask": "sensor_msgs/msg/Image", "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray"})
        pub = ros_node.create_publisher(Image, raw_topic, 10)
        pub_c = ros_node.create_publisher(CompressedImage, jpg_topic, 10)
        assert _wait(lambda: ros_node.count_publishers("/badcam/segmentation/mask") > 0)
        assert _wait(lambda: pub.get_subscription_count() > 0 and pub_c.get_subscription_count() > 0)
        frame = np.full((120, 160, 3), 100, np.uint8)

        def image(encoding="bgr8", data=None, step=None, w=160, h=120, sec=1):
            msg = Image(encoding=encoding, width=w, height=h, step=step if step is not None else w * 3)
            msg.header.stamp.sec, msg.header.frame_id = sec, "badcam_optical_frame"
            msg.data = frame.tobytes() if data is None else data
            return msg

        bad = [
            image(step=100),
            image(data=frame.tobytes()[:-10]),
            image(encoding="hsv8"),
            image(w=0, h=0, step=0, data=b""),
            image(encoding="32FC1", step=160 * 4, data=np.zeros((120, 160), np.float32).tobytes()),
        ]

        def bad_so_far() -> int:
            values, _ = _diag_values(rec, raw_topic)
            return int(values["frames_bad"]) if values else 0

        # a subscription the publisher sees may not see the publisher yet (discovery is two-sided): a
        # single frame sent now can be lost. Warm-up frames (stamp 50) until one is served, then the test.
        jpeg = CompressedImage(format="jpeg", data=cv2.imencode(".jpg", frame)[1].tobytes())
        assert _wait(lambda: pub.publish(image(sec=50)) or rec.count("/badcam/segmentation/mask") >= 1)
        assert _wait(lambda: pub_c.publish(jpeg) or int((_diag_values(rec, jpg_topic)[0] or {}).get("frames_published", 0)) >= 1)

        def served() -> list[int]:  # the stamps of the test's good frames served
            return sorted(m.header.stamp.sec for m in rec.messages("/badcam/segmentation/mask") if m.header.stamp.sec >= 100)

        goods = 0
        for i, msg in enumerate(bad):  # each one counted before the next frame, so none is replaced by a newer one
            pub.publish(msg)
            assert _wait(lambda i=i: bad_so_far() == i + 1), _diag_values(rec, raw_topic)
            pub.publish(image(sec=100 + i))
            goods += 1
            assert _wait(lambda g=goods: len(served()) == g)
        corrupt = CompressedImage(format="jpeg", data=b"\xff\xd8garbage\xff\xd9")
        pub_c.publish(corrupt)
        assert served() == [100 + i for i in range(goods)]

        def counted():
            raw, _ = _diag_values(rec, raw_topic)
            comp, _ = _diag_values(rec, jpg_topic)
            return raw and comp and raw["frames_bad"] == str(len(bad)) and comp["frames_bad"] == "1"

        assert _wait(counted, 10), rec.messages("/diagnostics")[-1] if rec.count("/diagnostics") else "no diagnostics"
        raw, _ = _diag_values(rec, raw_topic)
        for reason in ("bad_step", "bad_data_size", "unknown_encoding", "zero_size", "unsupported_encoding"):
            assert reason in raw["bad_reasons"]
        # throttled to one line per camera per 5 s, but the first bad frame of a camera is always logged
        assert _wait(lambda: "/badcam/image_raw: dropped bad frame" in node.output(), 5), node.output()
    finally:
        assert node.stop() == 0
    assert "Traceback" not in node.output()


def test_frames_a_stalled_node_never_took_are_counted_lost(ros_node, tmp_path):
    """A node stalled for a moment (stopped here with SIGSTOP: CPU starvation, a long pause) while its
    camera keeps sending: what its subscription's queue (``qos_depth``) and the camera's could not
    hold never reaches it. Its diagnostics count those frames lost, so every frame sent is accounted."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    topic = "/lostcam/image_raw"
    node = _start(ros_node, [topic], tmp_path, ["-p", "qos_reliability:=reliable", "-p", "qos_depth:=2", "-p", "diagnostics_period:=0.2"])
    try:
        rec = Recorder(ros_node, {"/lostcam/segmentation/mask": "sensor_msgs/msg/Image", "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray"})
        pub = ros_node.create_publisher(Image, topic, QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
        assert _wait(lambda: ros_node.count_publishers("/lostcam/segmentation/mask") > 0 and pub.get_subscription_count() > 0)
        frame = np.full((48, 64, 3), 100, np.uint8).tobytes()
        sent = 0

        def send() -> None:
            nonlocal sent
            sent += 1
            msg = Image(encoding="bgr8", width=64, height=48, step=64 * 3, data=frame)
            msg.header.stamp.sec, msg.header.frame_id = sent, "lostcam_optical_frame"
            pub.publish(msg)

        def counts() -> dict[str, int]:
            values, _ = _diag_values(rec, topic)
            return {k: int(values[f"frames_{k}"]) for k in ("received", "lost", "published", "dropped", "bad")} if values else {}

        # one frame at a time until one is served (discovery is two-sided: the first ones may go nowhere)
        while not _wait(lambda: rec.count("/lostcam/segmentation/mask") > 0, 0.5):
            assert sent < 40, node.output()
            send()
        first = rec.messages("/lostcam/segmentation/mask")[0].header.stamp.sec  # the node counts from here
        os.kill(node.proc.pid, signal.SIGSTOP)
        try:
            for _ in range(30):
                send()
        finally:
            os.kill(node.proc.pid, signal.SIGCONT)
        want = sent - first + 1  # every frame from the first one served on: taken, or lost before it

        def accounted() -> bool:
            c = counts()
            return bool(c) and c["received"] + c["lost"] == want and c["published"] + c["dropped"] + c["bad"] == c["received"]

        assert _wait(accounted, 20), (want, counts())
        assert counts()["lost"] >= 30 - 5 - 2, counts()  # the camera's queue holds 5 and the node's 2
        messages = [v["message"] for arr in rec.messages("/diagnostics") for name, v in read_statuses(arr).items() if name.endswith(topic)]
        assert any("lost before the node took them" in m for m in messages), messages
    finally:
        assert node.stop() == 0
    assert "Traceback" not in node.output()


def test_overload_four_cameras_latency_bounded_drops_fair_diagnostics_warn(ros_node, tmp_path):
    """Overload made, not assumed: the node's service time is measured first, then 4 cameras offer
    about 4x what it can serve, whatever the machine: latest-frame policy per camera."""
    from fcn_perception.tools.load import run_load

    probe = run_load(cameras=1, rate=5.0, frames=15, warmup=5, ros=ros_node, log=tmp_path / "probe.log")
    service_ms = max(1.0, next(iter(probe["per_camera"].values()))["latency_ms"]["p50"])  # >= the time one frame takes
    rate = min(250.0, 1000.0 / service_ms)  # per camera: 4 cameras together offer ~4x what the node serves
    res = run_load(cameras=4, rate=rate, frames=120, warmup=30, ros=ros_node, log=tmp_path / "node.log")
    assert res["node_exit_code"] == 0
    assert res["accounted"], res["per_camera"]  # received + lost = sent, received = published + dropped + bad, per camera
    for cam in res["per_camera"].values():
        assert cam["dropped"] > 0 and cam["published"] > 0
        assert cam["latency_ms"]["p95"] < 500, cam  # bounded: never a growing queue
    assert res["fairness_min_over_max"] >= 0.7, res["per_camera"]
    assert set(res["diagnostic_levels"].values()) == {"1"}  # WARN while dropping


def test_short_soak_memory_threads_and_accounting(ros_node, tmp_path):
    """The CI-sized soak (the full one: `fcn-perception load --frames 10000`, figures in RELIABILITY.md)."""
    from fcn_perception.cpu import this_cpu
    from fcn_perception.tools.load import report, run_load

    # precision stated: a first start on a CPU also compiles and times the other precisions (auto), a
    # one-time cost that is not the steady state this test guards (auto's own test: test_openvino.py)
    res = run_load(cameras=1, rate=30.0, frames=300, warmup=100, ros=ros_node, log=tmp_path / "node.log", params=["precision:=int8"])
    assert res["node_exit_code"] == 0 and res["accounted"], res
    assert res["machine"] == this_cpu().describe() and res["machine"] in report(res)  # figures name their CPU
    assert res["rss_growth_pct"] < 5.0, res["rss_mb"]
    assert res["threads"]["end"] == res["threads"]["after_warmup"]
    # the node's CPU a mask (decoding and the network alone take more than 2 ms) and the harness's share
    assert 2.0 < res["cpu"]["node_ms_per_mask"] < 1000.0 and 0.0 < res["cpu"]["load_process_pct_of_a_core"] < 100.0, res["cpu"]
    # 30 Hz stamps, coarse_reuse_ms 70: one frame in two or three computes the stride-32 scores, the others reuse them
    reused, ran = map(int, next(iter(res["per_camera"].values()))["coarse_reused"].split("/"))
    assert ran > 0 and 0.4 * ran <= reused <= 0.8 * ran, (reused, ran)


def test_a_mixed_rig_gets_each_camera_s_masks_at_its_own_size(ros_node, tmp_path):
    """A car's cameras differ in size (a 16:9 front beside a 4:3 side, say): each camera's masks come at
    its own size, the second size's graph made on its first frame, and every frame is accounted for.
    ``load --size 1280x720,640x480`` drives such a rig."""
    from fcn_perception.tools.load import run_load

    sizes = ((640, 360), (480, 360))
    res = run_load(cameras=2, rate=10.0, frames=40, warmup=10, ros=ros_node, log=tmp_path / "node.log", sizes=sizes, params=["precision:=int8"])
    assert res["node_exit_code"] == 0 and res["accounted"], res["per_camera"]
    cams = list(res["per_camera"].values())
    assert [c["mask_size"] for c in cams] == ["640x360", "480x360"], cams
    assert all(c["published"] >= 20 for c in cams), cams


def test_load_counts_cpu_from_warm_up_to_the_last_frame_sent():
    """The window is the first sample at ``warmup`` frames to the first with every frame sent: the
    start-up before it and the idle wait after it are not the node's cost of a frame."""
    from fcn_perception.tools.load import Sample, _cpu

    samples = [
        Sample(0, 0, 0, node_cpu_s=5.0, own_cpu_s=1.0, masks=0, t=0.0),  # start-up: the model loaded
        Sample(100, 0, 0, node_cpu_s=6.0, own_cpu_s=1.5, masks=90, t=3.0),  # warm
        Sample(200, 0, 0, node_cpu_s=8.0, own_cpu_s=2.0, masks=190, t=6.0),
        Sample(300, 0, 0, node_cpu_s=10.0, own_cpu_s=2.6, masks=290, t=9.0),  # every frame sent
        Sample(300, 0, 0, node_cpu_s=10.5, own_cpu_s=2.7, masks=300, t=12.0),  # settling, then idle
    ]
    assert _cpu(samples, warmup=100, frames=300) == {"node_ms_per_mask": 20.0, "load_process_pct_of_a_core": 18.3}
    assert _cpu(samples[:2], warmup=100, frames=300) == {}  # stopped before the last frame: no figure


def test_startup_tells_when_the_new_node_was_discovered_though_another_has_its_name(ros_node):
    """``load --startup``'s discovery moment is the started node's: a node of the same name already in
    the graph (a test's, or one that stopped just now) must not count as found at once."""
    import rclpy

    from fcn_perception.tools.load import run_startup

    namesake = rclpy.create_node(NODE_NAME, context=ros_node.context)
    try:
        assert wait_until(lambda: NODE_NAME in ros_node.get_node_names(), 10)
        res = run_startup(frames=3, ros=ros_node, extra=("-p", "precision:=int8"))
    finally:
        namesake.destroy_node()
    assert res["node_exit_code"] == 0 and 0.1 < res["discovered_s"] <= res["first_mask_s"], res


def test_a_car_camera_s_first_frame_decides_the_size_the_model_is_compiled_for(ros_node, tmp_path, monkeypatch):
    """A 16:9 camera publishing as the node configures: the model is compiled once, for its frames
    (640x360), not first for the model's 4:3 and then again while its frames are dropped. Configured
    through the lifecycle service, as a manager does, inside the node's executor; the node is known
    to this process first, so the wait ends on the frame, not on discovery."""
    from sensor_msgs.msg import CompressedImage

    topic = "/carcam/image_raw/compressed"
    frame = cv2.resize(cv2.imread(str(sorted((Path(__file__).resolve().parents[2] / "shared/data/camvid/val").iterdir())[0])), (1280, 720))
    jpeg = cv2.imencode(".jpg", frame)[1].tobytes()
    rec = Recorder(ros_node, {"/carcam/segmentation/mask": "sensor_msgs/msg/Image"})
    pub = ros_node.create_publisher(CompressedImage, topic, 10)
    timer = ros_node.create_timer(0.05, lambda: pub.publish(CompressedImage(format="jpeg", data=jpeg)))
    monkeypatch.setenv("FCN_PERCEPTION_CACHE", str(tmp_path / "cache"))  # its own: what a start keeps is read by the next
    node = NodeProcess(PARAMS, [topic], ["-p", "autostart:=false"], log=tmp_path / "node.log")
    try:
        assert _wait(lambda: _state_ready(ros_node), 30), node.output()
        assert _state(ros_node) == "unconfigured"  # the node's services answer (the lifecycle test's order)
        assert _lifecycle(ros_node, "configure"), node.output()
        assert "at 640x360 (the first camera's frames) ready" in node.output(), node.output()
        assert _lifecycle(ros_node, "activate")
        assert _wait(lambda: rec.count("/carcam/segmentation/mask") > 0, 20), node.output()
        assert node.stop(signal.SIGTERM) == 0
        assert rec.messages("/carcam/segmentation/mask")[0].width == 1280
        assert "being built" not in node.output() and "Traceback" not in node.output(), node.output()
        ros_node.destroy_timer(timer)  # the camera is off; the next start takes the size the last one heard
        node = NodeProcess(PARAMS, [topic], None, log=tmp_path / "again.log")
        assert _wait(lambda: "ready in" in node.output() or node.proc.poll() is not None, 60), node.output()
        assert "at 640x360 (the first camera's frames at an earlier start) ready" in node.output(), node.output()
    finally:
        node.stop()
        ros_node.destroy_timer(timer)
        ros_node.destroy_publisher(pub)
        for sub in rec.subs:
            ros_node.destroy_subscription(sub)


def test_the_first_frame_s_size_is_known_at_once_where_an_earlier_start_kept_it(tmp_path):
    """The load asks what is known now without waiting, and the settled answer waits only where no
    earlier start kept a size for the topic (a 60 s wait here would fail the bound)."""
    import json
    import threading

    from fcn_perception.ros.first_frame import STORE, FirstFrame

    fresh = FirstFrame("/cam/image_raw", str(tmp_path), wait_s=60.0)
    assert fresh(False) is None
    (tmp_path / STORE).write_text(json.dumps({"/cam/image_raw": [1280, 720], "/other/image_raw": "junk"}))
    answers = []

    def asked() -> None:
        answers.extend([FirstFrame("/cam/image_raw", str(tmp_path), wait_s=60.0)(True), FirstFrame("/other/image_raw", str(tmp_path), wait_s=60.0)(False)])

    ask = threading.Thread(target=asked)
    ask.start()
    assert _wait(lambda: not ask.is_alive(), 10) and answers == [(1280, 720), None]


def test_startup_measures_the_node_with_the_parameters_given():
    """``load --startup --param``: the parameter reaches the node (it was dropped before), and the
    harness's own command line is not read as ROS arguments."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "fcn_perception", "load", "--startup", "--frames", "2", "--param", "backend:=onnxruntime"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "onnxruntime loaded: True; openvino loaded: False" in out.stdout, out.stdout
    assert "remap rule" not in out.stderr, out.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-p", "model:=/nonexistent/model.pt"], "model file not found"),
        (["-p", "backend:=cuda-magic"], "backend"),
        (["-p", "threads:=-3"], "threads"),
        (["-p", "drivable_classes:=['Lava']"], "Lava"),
        (["-p", "camera_pose:=[0.0, 1.5]"], "camera_pose"),
        (["-p", "overlay_alfa:=0.3"], "overlay_alfa (did you mean overlay_alpha?)"),
        (["--params-file", "/nonexistent/params.yaml"], "/nonexistent/params.yaml"),
        (["-p", "model:={tmp}/garbage.onnx"], "configure failed"),
    ],
)
def test_bad_configuration_is_one_clear_line_and_exit_code_2(tmp_path, extra, message):
    (tmp_path / "garbage.onnx").write_bytes(b"not a model")
    extra = [e.replace("{tmp}", str(tmp_path)) for e in extra]
    node = NodeProcess(PARAMS, ["/x/image_raw"], extra, log=tmp_path / "node.log")
    code = node.proc.wait(60)
    node.stop()
    out = node.output()
    assert code == 2, out
    assert message in out and "Traceback" not in out


def test_runtime_parameter_updates_are_validated_then_sigterm_is_orderly(ros_node, tmp_path):
    import signal

    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient

    node = _start(ros_node, ["/termcam/image_raw"], tmp_path)
    client = AsyncParameterClient(ros_node, NODE_NAME)
    assert client.wait_for_services(10.0)

    def set_param(name, value):
        future = client.set_parameters([Parameter(name, value=value)])
        assert _wait(future.done, 10)
        return future.result().results[0]

    assert set_param("polygon_max_vertices", 8).successful
    bad = set_param("overlay_alpha", 2.0)
    assert not bad.successful and bad.reason
    assert not set_param("drivable_classes", ["Lava"]).successful
    assert not set_param("model", "/tmp/other.pt").successful  # read-only: needs a restart
    future = client.get_parameters(["polygon_max_vertices", "overlay_alpha"])
    assert _wait(future.done, 10)
    assert [v.integer_value for v in future.result().values][:1] == [8]
    assert future.result().values[1].double_value == 0.5  # the rejected update kept the old value
    assert node.stop(signal.SIGTERM) == 0
    assert "Traceback" not in node.output()


NO_MASKS_YET = "no mask within 60 s"


# Run again once only when no mask came: on Kilted the node's first 2.7 MB best-effort frame took
# 10-46 s to arrive in 1 of 4 runs on ae41225 and 3 of 6 here (the second node of the same name);
# what this test guards (a clean exit on a stop signal mid-inference) is never run again.
@pytest.mark.flaky(reruns=1, only_rerun=[NO_MASKS_YET])
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_stop_signal_mid_inference_under_load_exits_cleanly(ros_node, tmp_path, sig):
    import signal
    import threading

    from sensor_msgs.msg import Image

    topic = "/stopload/image_raw"
    node = _start(ros_node, [topic], tmp_path)
    pub = ros_node.create_publisher(Image, topic, 10)
    rec = Recorder(ros_node, {"/stopload/segmentation/mask": "sensor_msgs/msg/Image"})
    bgr = np.random.default_rng(1).integers(0, 255, (720, 1280, 3), dtype=np.uint8)  # 720p: inference is busy
    done = threading.Event()

    def publish():
        i = 0
        while not done.is_set():
            msg = Image(encoding="bgr8", width=1280, height=720, step=1280 * 3)
            msg.header.stamp.sec = i = i + 1
            msg.data = bgr.tobytes()
            pub.publish(msg)
            time.sleep(1 / 30)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    try:
        flowing = _wait(lambda: rec.count("/stopload/segmentation/mask") >= 2, 60)  # frames flowing, inference busy
        assert flowing, f"{NO_MASKS_YET}: {node.output()[-2000:]}"
        start = time.monotonic()
        code = node.stop(getattr(signal, sig))
        assert code == 0 and time.monotonic() - start < 10, node.output()[-2000:]
        assert "Traceback" not in node.output()
    finally:
        done.set()
        thread.join()
        node.stop()  # a node left running after a failure answers the next test's lifecycle calls
        ros_node.destroy_publisher(pub)
        for sub in rec.subs:
            ros_node.destroy_subscription(sub)


_SIGINT_SCRIPT = """
import os, signal, sys, threading
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from fcn_perception.ros.node import stop_on_sigint

spinning = threading.Event()
stop_on_sigint(spinning)
rclpy.init()
node = rclpy.create_node("sigint_probe")
done = []

def callback():
    os.kill(os.getpid(), signal.SIGINT)
    sum(range(3_000_000))  # Python's default handler raises in here
    done.append(True)

node.create_timer(0.01, callback)
executor = SingleThreadedExecutor()
executor.add_node(node)
try:
    if sys.argv[1] == "spinning":
        spinning.set()
        try:
            executor.spin()  # returns, or raises this, once the context is shut down
        except ExternalShutdownException:
            pass
        print("stopped between callbacks" if done and not rclpy.ok() else "still running")
    else:
        os.kill(os.getpid(), signal.SIGINT)
        sum(range(3_000_000))
        print("ran on")
except KeyboardInterrupt:
    print("interrupted")
"""


@pytest.mark.parametrize(("when", "expected"), [("spinning", "stopped between callbacks"), ("starting", "interrupted")])
def test_sigint_stops_a_spinning_node_between_callbacks_and_a_starting_one_at_once(when, expected):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _SIGINT_SCRIPT, when], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == expected, out.stdout + out.stderr


def _lifecycle(ros_node, transition: str) -> bool:
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    client = ros_node.create_client(ChangeState, f"/{NODE_NAME}/change_state")
    try:
        assert client.wait_for_service(10.0)
        req = ChangeState.Request()
        req.transition.id = getattr(Transition, f"TRANSITION_{transition.upper()}")
        future = client.call_async(req)
        assert _wait(future.done, 60)
        return future.result().success
    finally:
        ros_node.destroy_client(client)


def _state(ros_node) -> str:
    """The node's lifecycle state. Asked again if no answer comes: a service's first response can be
    lost while its reply reader is still being matched over DDS (a busy machine makes that likelier),
    and asking for the state changes nothing."""
    from lifecycle_msgs.srv import GetState

    client = ros_node.create_client(GetState, f"/{NODE_NAME}/get_state")
    try:
        assert client.wait_for_service(10.0)
        for _ in range(3):
            future = client.call_async(GetState.Request())
            if _wait(future.done, 10):
                return future.result().current_state.label
            client.remove_pending_request(future)
        raise AssertionError("get_state: no answer in 3 tries of 10 s")
    finally:
        ros_node.destroy_client(client)


def test_lifecycle_with_autostart_false_serves_only_while_active(ros_node, tmp_path):
    """unconfigured: no subscription; configured but inactive: frames are received and counted
    (``dropped: inactive``) and none is published; activate -> masks; deactivate -> counted again,
    none published; activate again -> masks; SIGTERM -> exit 0. Labels and the PNG mask twin come with
    the configured model. Every wait is on a condition: a slow node cannot pass it by being slow."""
    import signal

    import cv2
    from rclpy.duration import Duration
    from rclpy.parameter_client import AsyncParameterClient
    from sensor_msgs.msg import Image

    topic = "/lifecam/image_raw"
    rec = Recorder(
        ros_node,
        {
            "/lifecam/segmentation/mask": "sensor_msgs/msg/Image",
            "/lifecam/segmentation/mask/compressed": "sensor_msgs/msg/CompressedImage",
            "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
        },
    )
    pub = ros_node.create_publisher(Image, topic, 10)
    frame = cv2.imread(str(sorted((Path(__file__).resolve().parents[2] / "shared/data/camvid/val").iterdir())[0]))
    sent = [0]

    def publish(n: int = 3, served: bool = False) -> list[int]:
        """n frames with fresh stamps; ``served``: each one's mask awaited before the next (no frame
        replaced by a newer one); else each acknowledged by the node's (reliable) reader before the
        next step of the test, so a state change cannot overtake them."""
        stamps = []
        for _ in range(n):
            sent[0] += 1
            msg = Image(encoding="bgr8", width=480, height=360, step=480 * 3, data=frame.tobytes())
            msg.header.stamp.sec, msg.header.frame_id = sent[0], "lifecam_optical_frame"
            before = rec.count("/lifecam/segmentation/mask")
            pub.publish(msg)
            stamps.append(sent[0])
            if served:
                assert _wait(lambda b=before: rec.count("/lifecam/segmentation/mask") > b, 20), node.output()
        if not served and pub.get_subscription_count():
            assert pub.wait_for_all_acked(Duration(seconds=10))
        return stamps

    def dropped_inactive() -> int:
        values, _ = _diag_values(rec, topic)
        reasons = dict(r.split("=") for r in values["drop_reasons"].split(", ")) if values and values["drop_reasons"] != "none" else {}
        return int(reasons.get("inactive", 0))

    def node_subscribed() -> bool:
        return pub.get_subscription_count() > 0

    extra = ["-p", "autostart:=false", "-p", "qos_reliability:=reliable", "-p", "diagnostics_period:=0.2"]
    node = NodeProcess(PARAMS, [topic], extra, log=tmp_path / "node.log")
    try:
        assert _wait(lambda: _state_ready(ros_node), 30), node.output()
        assert _state(ros_node) == "unconfigured"
        publish()
        assert ros_node.count_subscribers(topic) == 0 and rec.count("/lifecam/segmentation/mask") == 0
        assert _lifecycle(ros_node, "configure") and _state(ros_node) == "inactive"
        client = AsyncParameterClient(ros_node, NODE_NAME)
        assert client.wait_for_services(10.0)
        future = client.get_parameters(["classes", "class_colors"])
        assert _wait(future.done, 10)
        classes, colours = (list(v.string_array_value) for v in future.result().values)
        assert classes[3] == "Road" and len(colours) == len(classes) and colours[3] == "#804080"
        assert _wait(node_subscribed, 20)  # configured: subscribed, and counting
        unserved = publish()
        assert _lifecycle(ros_node, "activate")
        assert _wait(lambda: dropped_inactive() == 3, 20), _diag_values(rec, topic)  # received while inactive, counted
        publish(2, served=True)
        assert _wait(lambda: rec.count("/lifecam/segmentation/mask/compressed") >= 2, 20)
        raw, png = rec.messages("/lifecam/segmentation/mask")[-1], rec.messages("/lifecam/segmentation/mask/compressed")[-1]
        decoded = cv2.imdecode(np.frombuffer(bytes(png.data), np.uint8), cv2.IMREAD_UNCHANGED)
        assert png.format == "png" and np.array_equal(decoded, np.frombuffer(bytes(raw.data), np.uint8).reshape(360, 480))
        assert len(png.data) <= 0.15 * len(raw.data), (len(png.data), len(raw.data))
        assert _lifecycle(ros_node, "deactivate") and _state(ros_node) == "inactive"
        unserved += publish()
        assert _lifecycle(ros_node, "activate")
        assert _wait(lambda: dropped_inactive() == 6, 20), _diag_values(rec, topic)
        publish(1, served=True)
        served = {m.header.stamp.sec for m in rec.messages("/lifecam/segmentation/mask")}
        assert served and not served & set(unserved), (served, unserved)  # nothing published while inactive
        assert node.stop(signal.SIGTERM) == 0
    finally:
        node.stop()
        ros_node.destroy_publisher(pub)
        for sub in rec.subs:
            ros_node.destroy_subscription(sub)
    assert "Traceback" not in node.output()


def _state_ready(ros_node) -> bool:
    return any(name == NODE_NAME for name, _ in ros_node.get_node_names_and_namespaces()) and ros_node.count_publishers(f"/{NODE_NAME}/transition_event") > 0


def test_no_camera_pose_means_no_ground_outputs_and_a_silent_topic_is_named(ros_node, tmp_path):
    """CameraInfo but neither TF nor camera_pose: masks flow, no ground message, diagnostics WARN with
    the reason. A subscribed topic nobody publishes is named once at WARN."""
    from sensor_msgs.msg import CameraInfo, Image

    topic, ghost = "/posecam/image_raw", "/ghostcam/image_raw"
    rec = Recorder(
        ros_node,
        {
            "/posecam/segmentation/mask": "sensor_msgs/msg/Image",
            "/posecam/drivable_area/polygon_ground": "geometry_msgs/msg/PolygonStamped",
            "/posecam/drivable_area/grid": "nav_msgs/msg/OccupancyGrid",
            "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
        },
    )
    pub = ros_node.create_publisher(Image, topic, 10)
    info_pub = ros_node.create_publisher(CameraInfo, "/posecam/camera_info", 10)
    node = _start(ros_node, [topic, ghost], tmp_path, ["-p", "qos_reliability:=reliable"])
    try:
        assert _wait(lambda: pub.get_subscription_count() > 0 and info_pub.get_subscription_count() > 0)
        frame = np.full((120, 160, 3), 90, np.uint8)
        for i in range(6):
            info = CameraInfo(width=160, height=120, k=[150.0, 0.0, 80.0, 0.0, 150.0, 60.0, 0.0, 0.0, 1.0], p=[0.0] * 12, distortion_model="plumb_bob")
            info.header.frame_id = "posecam_optical_frame"
            info_pub.publish(info)
            msg = Image(encoding="bgr8", width=160, height=120, step=480, data=frame.tobytes())
            msg.header.stamp.sec, msg.header.frame_id = 10 + i, "posecam_optical_frame"
            pub.publish(msg)
            assert _wait(lambda i=i: rec.count("/posecam/segmentation/mask") == i + 1, 20)

        def warned():
            values, level = _diag_values(rec, topic)
            return values is not None and "no camera pose" in values["ground_outputs"] and level == 1

        assert _wait(warned, 10), _diag_values(rec, topic)
        assert rec.count("/posecam/drivable_area/polygon_ground") == rec.count("/posecam/drivable_area/grid") == 0
        assert _wait(lambda: f"no publisher on {ghost}" in node.output(), 15), node.output()
        assert f"no publisher on {topic}" not in node.output()
    finally:
        assert node.stop() == 0
        for p in (pub, info_pub):
            ros_node.destroy_publisher(p)
        for sub in rec.subs:
            ros_node.destroy_subscription(sub)


def test_a_camera_publisher_the_node_can_never_take_is_named_once(ros_node, tmp_path):
    """The node's subscriptions carry no rclpy event handlers either (eight more waitables walked on
    every wake-up); a camera publishing best effort to a reliable subscription, or another type on
    its CameraInfo topic, is named at WARN, once, from the graph; a publisher it can take is not."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    good, bad = "/writercam_a/image_raw", "/writercam_b/image_raw"
    node = _start(ros_node, [good, bad], tmp_path, ["-p", "qos_reliability:=reliable"])
    pubs = [
        ros_node.create_publisher(Image, good, QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)),
        ros_node.create_publisher(CameraInfo, "/writercam_a/camera_info", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)),
        ros_node.create_publisher(Image, bad, qos_profile_sensor_data),  # best effort
        ros_node.create_publisher(Image, "/writercam_b/camera_info", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)),
    ]
    rec = Recorder(ros_node, {"/diagnostics": "diagnostic_msgs/msg/DiagnosticArray"})
    try:
        writer = f"/{ros_node.get_name()} publishes"
        assert _wait(lambda: f"{writer} {bad} with a QoS this node's subscription cannot take" in node.output(), 20), node.output()

        def matched() -> list:  # what the diagnostics say DDS matched: the camera it can take, not the one the graph lists
            return [(_diag_values(rec, t)[0] or {}).get("camera_publishers") for t in (good, bad)]

        assert _wait(lambda: matched() == ["1", "0"], 10), matched()
        assert _wait(lambda: f"{writer} /writercam_b/camera_info as sensor_msgs/msg/Image, but this node takes sensor_msgs/msg/CameraInfo" in node.output(), 20)
        said = node.output().count(writer)
        assert not _wait(lambda: node.output().count(writer) > said, 3.0)  # the once-a-second checks say nothing new
        assert said == 2 and f"{writer} /writercam_a/" not in node.output()
        assert "offering incompatible QoS" not in node.output()  # rclpy's own handlers' line: none are there
    finally:
        assert node.stop() == 0
        for pub in pubs:
            ros_node.destroy_publisher(pub)


def test_a_reader_that_can_never_be_served_is_named_once(ros_node, tmp_path):
    """The node's publishers carry no rclpy event handlers (the executor walked 64 of them on every
    wake-up); it asks the graph instead: a reader asking a QoS the output cannot give, or another type,
    is named at WARN, once; a compatible reader is not."""
    from nav_msgs.msg import OccupancyGrid
    from rclpy.qos import DurabilityPolicy, QoSProfile
    from sensor_msgs.msg import Image

    topic = "/readercam/image_raw"
    node = _start(ros_node, [topic], tmp_path)
    mask, polygon, grid = "/readercam/segmentation/mask", "/readercam/drivable_area/polygon", "/readercam/drivable_area/grid"
    subs = [
        ros_node.create_subscription(Image, mask, lambda _: None, QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)),
        ros_node.create_subscription(Image, polygon, lambda _: None, 1),  # a PolygonStamped topic
        ros_node.create_subscription(OccupancyGrid, grid, lambda _: None, 1),
    ]
    try:
        reader = f"/{ros_node.get_name()} subscribes to"
        assert _wait(lambda: f"{reader} {mask} with a QoS it cannot be given" in node.output(), 20), node.output()
        assert _wait(lambda: f"{reader} {polygon} as sensor_msgs/msg/Image, but it is geometry_msgs/msg/PolygonStamped" in node.output(), 20)
        said = node.output().count("subscribes to")
        assert not _wait(lambda: node.output().count("subscribes to") > said, 3.0)  # the once-a-second checks say nothing new
        assert said == 2 and f"{reader} {grid}" not in node.output()
    finally:
        assert node.stop() == 0
        for sub in subs:
            ros_node.destroy_subscription(sub)


def _shm_segments_mib(pid: int) -> list[float]:
    """Sizes of the Fast DDS shared-memory segments a process maps: its own and its peers'."""
    sizes = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 6 and re.search(r"/dev/shm/fast\w*_[0-9a-f]{16}$", parts[5]):
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            sizes.append((hi - lo) / 2**20)
    return sizes


@pytest.mark.parametrize("environment_profile", [False, True])
def test_the_node_sends_through_a_shared_memory_segment_its_masks_fit(ros_node, tmp_path, monkeypatch, environment_profile):
    """Fast DDS's 512 KB default cannot hold a 1280x720 mask, which then goes over UDP (README,
    "Large images between processes"): the node gives its own participant a 4 MB segment, and keeps
    a profile the environment names instead."""
    for name in (*PROFILE_VARIABLES, "FASTDDS_BUILTIN_TRANSPORTS"):
        monkeypatch.delenv(name, raising=False)
    if environment_profile:  # the user's own profile, one without transports
        profile = tmp_path / "mine.xml"
        profile.write_text(
            '<dds xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"><profiles>'
            '<participant profile_name="mine" is_default_profile="true"><rtps/></participant></profiles></dds>'
        )
        for name in PROFILE_VARIABLES:
            monkeypatch.setenv(name, str(profile))
    node = _start(ros_node, ["/shm/image_raw"], tmp_path)
    try:
        assert _wait(lambda: _shm_segments_mib(node.proc.pid)), node.output()
        biggest = max(_shm_segments_mib(node.proc.pid))
        if environment_profile:
            assert biggest < 1 and "from the environment" in node.output(), (biggest, node.output())
        else:
            assert biggest >= 4 and "the node's own profile" in node.output(), (biggest, node.output())
    finally:
        node.stop()


def test_the_node_names_its_dds_profile_only_where_the_environment_has_not_chosen():
    mine = "/etc/mine.xml"
    for chosen in (
        {"FASTRTPS_DEFAULT_PROFILES_FILE": mine},
        {"FASTDDS_DEFAULT_PROFILES_FILE": mine},
        {"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"},
        {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"},
    ):
        env = dict(chosen)
        line = use_node_profile(env)
        assert env == chosen and "own profile" not in line, line
    for default in ({}, {"RMW_IMPLEMENTATION": "rmw_fastrtps_cpp"}, {"FASTRTPS_DEFAULT_PROFILES_FILE": ""}):
        env = dict(default)
        assert "own profile" in use_node_profile(env)
        assert all(env[name] == str(PROFILE) for name in PROFILE_VARIABLES) and PROFILE.is_file()
