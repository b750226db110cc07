"""``make demo``: the node as its own process, the sample drive played into it over DDS, outputs recorded.

Exits 0 only if every frame came back with a mask carrying the frame's stamp.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2

from fcn_perception.bags.bag_io import bag_topics
from fcn_perception.params.table import NODE_NAME
from fcn_perception.ros.diagnostics import node_connected, read_statuses
from fcn_perception.ros.outputs import OUTPUTS
from fcn_perception.ros.topics import camera_namespace, output_topic
from fcn_perception.stats import percentiles
from fcn_perception.tools.args import number_arg
from fcn_perception.waiting import wait_until

PACKAGE = Path(__file__).resolve().parents[1]
SAMPLE_BAG = PACKAGE / "sample" / "camvid_0016E5"


def default_params_file() -> Path:
    """The YAML the launch file loads: from the source tree, else from the installed share folder."""
    src = PACKAGE.parent / "config" / "fcn_perception.yaml"
    if src.is_file():
        return src
    from ament_index_python.packages import get_package_share_directory  # installed with colcon

    return Path(get_package_share_directory("fcn_perception")) / "config" / "fcn_perception.yaml"


def node_command(params: Path, image_topics: list[str], extra: list[str] | None = None, executable: str = "") -> list[str]:
    """``executable``: an installed ``fcn_perception_node`` (colcon's); default: this checkout's module."""
    topics = "[" + ",".join(f"'{t}'" for t in image_topics) + "]"
    exe = [executable] if executable else [sys.executable, "-m", "fcn_perception.ros.node"]
    return [*exe, "--ros-args", "--params-file", str(params), "-p", f"image_topics:={topics}", *(extra or [])]


class NodeProcess:
    """fcn_perception_node in its own process; stopped with SIGINT like ``ros2 launch`` does."""

    def __init__(self, params: Path, image_topics: list[str], extra: list[str] | None = None, log: Path | None = None, executable: str = "") -> None:
        self.log_path = log
        self._log = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed in stop()
        path = os.environ.get("PYTHONPATH") if executable else os.pathsep.join(filter(None, [str(PACKAGE.parent), os.environ.get("PYTHONPATH")]))
        env = dict(os.environ, PYTHONUNBUFFERED="1", **({"PYTHONPATH": path} if path else {}))
        self.started = time.monotonic()
        self.proc = subprocess.Popen(node_command(params, image_topics, extra, executable), stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not subprocess.DEVNULL:
            self._log.close()
        return self.proc.returncode

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.is_file() else ""


def ensure_domain_id() -> None:
    """Keep demo/test traffic off the user's default ROS domain unless one is chosen explicitly."""
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(101, 199)))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


@contextlib.contextmanager
def spinning_node(name: str = "fcn_perception_demo"):
    """An rclpy node of our own, spun in a background thread, torn down on exit."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    rclpy.init(args=[])  # the tool's own command line is not ROS arguments
    ros = rclpy.create_node(name)
    executor = SingleThreadedExecutor()
    executor.add_node(ros)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        yield ros
    finally:
        executor.shutdown()
        spinner.join(timeout=5.0)  # a spin thread still inside rcl at interpreter exit aborts the process
        ros.destroy_node()
        rclpy.try_shutdown()


#: The sample drive's camera pose (CamVid publishes none, and its bag carries no TF): a level camera
#: 1.5 m above base_footprint. Set explicitly, as a user sets theirs: the node never assumes one.
SAMPLE_CAMERA_POSE = (0.0, 0.0, 1.5, 0.0, 0.0, 0.0)
# Replay testing wants every frame: the demo subscribes reliably (live cameras keep best effort).
DEMO_NODE_ARGS = ("-p", "qos_reliability:=reliable", "-p", f"camera_pose:={list(SAMPLE_CAMERA_POSE)}")


def _connected(recorder, image_topics: list[str]) -> bool:
    """Both ends of every match the drive needs, before its first frame: the node's subscription to
    each camera and its writers of every output the recorder keeps (its diagnostics say what DDS
    matched there), and the recorder's readers of those outputs. Outputs are volatile, and a sample
    sent before the reader's end matched is never delivered (seen: a first polygon; a drive's first
    frames, lost before the node could count them)."""
    last = _last_diagnostics(recorder)
    live = [k for k, o in OUTPUTS.items() if o.live]
    if not all(node_connected(last.get(f"{NODE_NAME}: {topic}"), live) for topic in image_topics):
        return False
    return recorder.matched([output_topic(camera_namespace(t), OUTPUTS[k].topic) for t in image_topics for k in live])


def _settled(recorder, player, image_topics: list[str]) -> bool:
    """The node's latest diagnostics account for every frame sent (lost before the node took it, or
    published, dropped or bad), and every published mask and polygon has arrived here (a small
    output lost in a burst of big ones is only resent at the writer's next heartbeat, seconds
    later), and so has every confidence image (sent after its mask: the last one can still be on
    its way; none from a model without), every marker array and every grid of a ground polygon."""
    last = _last_diagnostics(recorder)
    for topic in image_topics:
        ns = camera_namespace(topic)
        count = {k: recorder.count(output_topic(ns, OUTPUTS[k].topic)) for k in ("mask", "polygon", "confidence", "markers", "polygon_ground", "grid")}
        d = last.get(f"{NODE_NAME}: {topic}")
        if d is None or int(d["frames_received"]) + int(d["frames_lost"]) < len(player.sent[topic]):
            return False
        if int(d["frames_published"]) + int(d["frames_dropped"]) + int(d["frames_bad"]) < int(d["frames_received"]):
            return False
        if not count["mask"] == count["polygon"] == count["markers"] == int(d["frames_published"]):  # markers: subscribed, one per mask
            return False
        if count["confidence"] not in (0, count["mask"]) or count["polygon_ground"] != count["grid"]:  # the grid comes after its polygon
            return False
    return True


def run(
    out: Path,
    bag: Path = SAMPLE_BAG,
    rate: float = 1.0,
    params: Path | None = None,
    timeout: float = 60.0,
    ros=None,
    node_args: tuple[str, ...] = DEMO_NODE_ARGS,
    progress: bool = False,
) -> dict:
    """Node process + player + recorder; ``ros``: an already spinning rclpy node to use (tests)."""
    if ros is None:
        ensure_domain_id()
        with spinning_node() as own:
            return run(out, bag, rate, params, timeout, own, node_args, progress)
    from fcn_perception.bags.live_bag import BagPlayer, Recorder

    out = Path(out)
    if out.exists():
        if not (out / "summary.json").is_file() and any(out.iterdir()):  # never delete what is not ours
            raise FileExistsError(f"{out} exists and is not an earlier demo output (no summary.json): choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    topics = bag_topics(bag)
    image_topics = [t for t, m in topics.items() if m.endswith(("/Image", "/CompressedImage"))]
    wanted = dict(topics)
    for t in image_topics:
        ns = camera_namespace(t)
        wanted.update({output_topic(ns, o.topic): o.msgtype for o in OUTPUTS.values()})
    wanted["/diagnostics"] = "diagnostic_msgs/msg/DiagnosticArray"
    player = BagPlayer(ros, bag, rate=rate)
    recorder = Recorder(ros, wanted, out / "output_bag")
    node = NodeProcess(params or default_params_file(), image_topics, list(node_args), log=out / "node.log")
    try:
        if not player.wait_for_subscriber(image_topics, NODE_NAME, timeout, alive=lambda: node.proc.poll() is None):
            raise RuntimeError(f"the node never subscribed to {image_topics}:\n{node.output()[-2000:]}")
        if not wait_until(lambda: node.proc.poll() is not None or _connected(recorder, image_topics), timeout) or node.proc.poll() is not None:
            raise RuntimeError(f"the node and this recorder did not connect in {timeout:.0f} s:\n{node.output()[-2000:]}")
        t0 = time.monotonic()
        frames = player.play(progress=progress)
        play_s = time.monotonic() - t0
        n_images = sum(len(player.sent[t]) for t in image_topics)

        settled = wait_until(lambda: _settled(recorder, player, image_topics), 30.0, 0.1)  # a loaded machine settles late; a settled run exits at once
    finally:
        exit_code = node.stop()
        for sub in recorder.subs:
            ros.destroy_subscription(sub)
        for pub in player.publishers.values():
            ros.destroy_publisher(pub)
    summary = _summarise(recorder, image_topics, n_images, frames, play_s, out)
    summary["node_exit_code"] = exit_code
    summary["settled"] = settled  # False: 30 s after the drive the node's counts still missed a frame
    recorder.write()
    summary["output_bag"] = str(out / "output_bag")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _last_diagnostics(recorder) -> dict[str, dict[str, str]]:
    """The node's most recent /diagnostics as {status name: {key: value}} (only that message is deserialized)."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.serialization import deserialize_message

    if not recorder.count("/diagnostics"):
        return {}
    return read_statuses(deserialize_message(recorder.received["/diagnostics"][-1][1], DiagnosticArray))


def _summarise(recorder, image_topics: list[str], n_images: int, messages: int, play_s: float, out: Path) -> dict:
    from fcn_perception.scene.image_codec import decode

    per_camera = {}
    all_ok = True
    for topic in image_topics:
        ns = camera_namespace(topic)
        inputs = recorder.messages(topic)
        in_times = {(m.header.stamp.sec, m.header.stamp.nanosec): t for (t, _), m in zip(recorder.received[topic], inputs, strict=True)}
        mask_topic = output_topic(ns, OUTPUTS["mask"].topic)
        masks = recorder.messages(mask_topic)
        latencies = []
        for (t, _), m in zip(recorder.received[mask_topic], masks, strict=True):
            key = (m.header.stamp.sec, m.header.stamp.nanosec)
            if key in in_times:
                latencies.append((t - in_times[key]) / 1e6)
        stamps_in = set(in_times)
        stamps_out = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in masks}
        polygons = recorder.messages(output_topic(ns, OUTPUTS["polygon"].topic))
        ground = recorder.messages(output_topic(ns, OUTPUTS["polygon_ground"].topic))
        overlays = recorder.messages(output_topic(ns, OUTPUTS["overlay"].topic))
        for i, ov in enumerate(overlays[:: max(1, len(overlays) // 4)][:4]):
            cv2.imwrite(str(out / f"{ns.strip('/').replace('/', '_') or 'camera'}_overlay_{i}.png"), decode(ov)[..., ::-1])
        ok = stamps_in <= stamps_out and len(stamps_in) > 0
        all_ok &= ok
        lat = percentiles(latencies or [0.0], (50, 95), digits=2)
        per_camera[topic] = {
            "frames_in": len(inputs),
            "masks_out": len(masks),
            "every_frame_has_mask": ok,
            "polygons_out": len(polygons),
            "nonempty_polygons": sum(1 for p in polygons if p.polygon.points),
            "ground_polygons_out": len(ground),
            "nonempty_ground_polygons": sum(1 for p in ground if p.polygon.points),
            "grids_out": recorder.count(output_topic(ns, OUTPUTS["grid"].topic)),
            "markers_out": recorder.count(output_topic(ns, OUTPUTS["markers"].topic)),
            "overlays_out": len(overlays),
            "latency_ms_p50": lat["p50"],
            "latency_ms_p95": lat["p95"],
        }
    return {
        "ok": all_ok,
        "frames_sent": n_images,
        "messages_played": messages,
        "play_seconds": round(play_s, 2),
        "cameras": per_camera,
        "diagnostics_messages": recorder.count("/diagnostics"),
        "diagnostics_last": _last_diagnostics(recorder),
    }


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--out", default="demo_out")
    ap.add_argument("--bag", default=str(SAMPLE_BAG))
    ap.add_argument("--rate", type=number_arg(above=True), default=1.0, help="playback rate factor (1 = recorded pace)")
    ap.add_argument("--params", default="", help="node parameter YAML (default: config/fcn_perception.yaml)")


def run_args(args: argparse.Namespace) -> int:
    summary = run(Path(args.out), Path(args.bag), args.rate, Path(args.params) if args.params else None, progress=True)
    for topic, cam in summary["cameras"].items():
        print(
            f"{topic}: {cam['frames_in']} frames in, {cam['masks_out']} masks out, {cam['nonempty_polygons']} drivable polygons, "
            f"latency p50 {cam['latency_ms_p50']} ms p95 {cam['latency_ms_p95']} ms"
        )
    print(f"outputs in {args.out}/ (output_bag, *_overlay_*.png, summary.json); node exit code {summary['node_exit_code']}")
    if not summary["ok"]:
        print("demo FAILED: not every frame came back with a mask", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fcn-perception demo", description=__doc__)
    add_arguments(ap)
    return run_args(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
