"""``fcn-perception load``: the node as its own process under a steady camera load, over real DDS.

N cameras publish the sample drive's JPEG frames (looped, fresh stamps) at a fixed rate into the
node; this process records every mask, samples the node's resident memory and thread count from
/proc, and reads the node's own counters from /diagnostics. It is the soak test (one camera,
10,000 frames), the overload test (4 cameras at 30 Hz on a machine that serves fewer) and the
multi-camera benchmark, with one set of figures:

- accounting: every frame sent is received by the node or lost before it (counted from the
  publishers' sequence numbers), and every frame received is published, dropped (latest-frame
  policy) or bad;
- latency per camera (stamp sent -> mask received here), p50/p95/p99, and output rate;
- fairness: each camera's share of the published frames;
- memory: resident set after warm-up vs at the end (growth %), peak; threads after warm-up vs end;
- CPU from warm-up to the last frame sent: the node's a mask served, and this process's share of a
  core (it runs on the same CPU as the node it measures, and takes that much from it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from fcn_perception.bags.bag_io import read_messages
from fcn_perception.cpu import this_cpu
from fcn_perception.params.table import NODE_NAME
from fcn_perception.ros.diagnostics import node_connected, read_statuses
from fcn_perception.ros.topics import COMPRESSED, camera_info_topic
from fcn_perception.stats import percentiles
from fcn_perception.tools.args import count_arg, number_arg, sizes_arg
from fcn_perception.tools.demo import SAMPLE_BAG, NodeProcess, default_params_file, ensure_domain_id, spinning_node
from fcn_perception.waiting import wait_until

#: the node's frame counters per camera (its diagnostics' ``frames_<name>``), as the figures carry them
COUNTS = ("received", "published", "dropped", "bad", "lost")


def _proc_status(pid: int) -> tuple[int, int]:
    """(resident set in KiB, thread count) of a live process, from /proc (Linux)."""
    rss = threads = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return rss, threads


def _proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a live process has spent, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # after the command name
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    """What the probe reads every 0.5 s."""

    sent: int  # frames sent per camera so far
    rss_kib: int  # the node's
    threads: int  # the node's
    node_cpu_s: float
    own_cpu_s: float  # this process's
    masks: int  # received here so far, all cameras
    t: float  # time.monotonic()


def _cpu(samples: list[Sample], warmup: int, frames: int) -> dict:
    """The node's CPU a mask served and this process's % of a core, from the first sample after
    ``warmup`` frames to the first once all ``frames`` were sent (empty when the run was too short)."""
    start = next((s for s in samples if s.sent >= warmup), None)
    end = next((s for s in samples if s.sent >= frames), None)
    if start is None or end is None or end.masks <= start.masks or end.t <= start.t:
        return {}
    return {
        "node_ms_per_mask": round(1e3 * (end.node_cpu_s - start.node_cpu_s) / (end.masks - start.masks), 2),
        "load_process_pct_of_a_core": round(100 * (end.own_cpu_s - start.own_cpu_s) / (end.t - start.t), 1),
    }


def _sample_jpegs(size: tuple[int, int] | None) -> list[bytes]:
    """The sample drive's real frames as JPEG, re-encoded at ``size`` when given."""
    jpegs = [bytes(m.msg.data) for m in read_messages(SAMPLE_BAG) if m.msgtype == COMPRESSED]
    if size is None:
        return jpegs
    import cv2
    import numpy as np

    resized = (cv2.resize(cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR), size, interpolation=cv2.INTER_LINEAR) for j in jpegs)
    return [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for f in resized]


class _Probe:
    """What the load run sees of the node: each mask's latency (stamp sent -> mask received), the
    node's last diagnostics per camera, and its memory and threads over time."""

    def __init__(self, ros, topics: list[str], qos) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import Image

        self.ros, self.topics, self.lock = ros, topics, threading.Lock()
        self.sent_at: dict[tuple[int, int, int], float] = {}  # (camera, sec, nanosec) -> send time
        self.latencies: list[list[float]] = [[] for _ in topics]
        self.masks = [0] * len(topics)
        self.mask_sizes: list[tuple[int, int] | None] = [None] * len(topics)  # (w, h) of each camera's last mask
        self.last_diag: dict[str, dict[str, str]] = {}
        self.samples: list[Sample] = []
        self.sent = 0
        self.stop = threading.Event()
        self.info_pubs: list = []  # (CameraInfo publisher, its message) per camera, with --ground
        self.subs = [ros.create_subscription(Image, f"/load_cam{i}/segmentation/mask", lambda m, i=i: self._on_mask(i, m), qos) for i in range(len(topics))]
        self.subs.append(ros.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50))
        from nav_msgs.msg import OccupancyGrid

        self.fused: list[float] = []  # arrival times of the fused grid (fusion_rate)
        self.subs.append(ros.create_subscription(OccupancyGrid, "/fused/drivable_grid", lambda m: self.fused.append(time.monotonic()), qos))

    def _on_mask(self, i: int, msg) -> None:
        now = time.monotonic()
        with self.lock:
            t = self.sent_at.pop((i, msg.header.stamp.sec, msg.header.stamp.nanosec), None)
            self.masks[i] += 1
            self.mask_sizes[i] = (msg.width, msg.height)
            if t is not None:
                self.latencies[i].append((now - t) * 1e3)

    def connected(self) -> bool:
        """Both ends of every match a frame and its mask need: the node's (its diagnostics say what
        DDS matched there) and this process's. A frame sent before the node's subscription matched
        the camera is never delivered, and never counted: discovery is two-sided, and one side
        finishing says nothing of the other."""
        if not all(s.get_publisher_count() > 0 for s in self.subs[: len(self.topics)]):  # the masks, here
            return False
        return all(node_connected(self.last_diag.get(t), ["mask"]) for t in self.topics)

    def _on_diag(self, arr) -> None:
        for name, values in read_statuses(arr).items():
            if name.startswith(NODE_NAME):
                self.last_diag[name.split(": ", 1)[1]] = values | {"level": str(values["level"])}

    def sample_memory(self, pid: int) -> None:
        """Every 0.5 s in a thread of its own until ``stop``."""

        def run() -> None:
            while not self.stop.wait(0.5):
                try:
                    self.samples.append(Sample(self.sent, *_proc_status(pid), _proc_cpu_s(pid), time.process_time(), sum(self.masks), time.monotonic()))
                except (FileNotFoundError, ProcessLookupError):
                    return

        threading.Thread(target=run, daemon=True).start()

    def settled(self, frames: int) -> bool:
        """Every frame sent is accounted for by the node's diagnostics (lost before it, or taken and
        then served, dropped or bad)."""
        d = [self.last_diag.get(t) for t in self.topics]
        return all(x and _accounted({k: int(x[f"frames_{k}"]) for k in COUNTS}, frames) for x in d)

    def close(self) -> None:
        self.stop.set()
        for s in self.subs:
            self.ros.destroy_subscription(s)


def _camera_infos(ros, topics: list[str], jpegs: list[bytes], qos) -> list:
    """A CameraInfo publisher per camera and the message it sends with every frame: the sample
    drive's own CameraInfo, scaled to that camera's frame size (``jpegs``: a frame of each)."""
    import cv2
    import numpy as np
    from sensor_msgs.msg import CameraInfo

    from fcn_perception.ros.topics import CAMERA_INFO

    recorded = next(m.msg for m in read_messages(SAMPLE_BAG) if m.msgtype == CAMERA_INFO)
    infos = []
    for jpeg in jpegs:
        h, w = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape[:2]
        k = np.asarray(recorded.k, float).reshape(3, 3) * [[w / recorded.width], [h / recorded.height], [1.0]]
        info = CameraInfo(width=w, height=h, k=k.ravel().tolist(), d=[float(v) for v in recorded.d], distortion_model=recorded.distortion_model)
        info.p = [k[0, 0], 0.0, k[0, 2], 0.0, 0.0, k[1, 1], k[1, 2], 0.0, 0.0, 0.0, 1.0, 0.0]
        infos.append(info)
    return [(ros.create_publisher(CameraInfo, camera_info_topic(t), qos), info) for t, info in zip(topics, infos, strict=True)]


def _send(probe: _Probe, pubs, jpegs: list[list[bytes]], frames: int, rate: float, progress: bool) -> float:
    """``frames`` per camera at ``rate`` Hz, the cameras synchronised (one stamp per tick), camera i
    sending ``jpegs[i]``; returns the seconds it took."""
    from sensor_msgs.msg import CompressedImage

    made: dict[int, list] = {}  # cameras of one size share their messages, as all cameras did
    for camera in jpegs:
        if id(camera) not in made:
            made[id(camera)] = [CompressedImage(format="jpeg", data=j) for j in camera]
    msgs = [made[id(camera)] for camera in jpegs]
    start = time.monotonic()
    for k in range(frames):
        target = start + k / rate
        while (delay := target - time.monotonic()) > 0:
            time.sleep(delay)
        for i, pub in enumerate(pubs):
            msg = msgs[i][(k + 7 * i) % len(msgs[i])]
            now_ns = time.time_ns()
            msg.header.stamp.sec, msg.header.stamp.nanosec = now_ns // 1_000_000_000, now_ns % 1_000_000_000
            msg.header.frame_id = f"load_cam{i}_optical_frame"
            with probe.lock:
                probe.sent_at[(i, msg.header.stamp.sec, msg.header.stamp.nanosec)] = time.monotonic()
            if probe.info_pubs:
                info_pub, info = probe.info_pubs[i]
                info.header = msg.header
                info_pub.publish(info)
            pub.publish(msg)
        probe.sent = k + 1
        if progress and probe.sent % 1000 == 0:
            print(f"  {probe.sent}/{frames} frames per camera sent", file=sys.stderr, flush=True)
    return time.monotonic() - start


def _accounted(c: dict[str, int], sent: int) -> bool:
    """Every frame sent either never reached the node (lost) or was served, dropped or bad there."""
    return c["received"] + c["lost"] == sent and c["published"] + c["dropped"] + c["bad"] == c["received"]


def _figures(probe: _Probe, frames: int, rate: float, warmup: int, send_s: float, end: tuple[int, int], code: int) -> dict:
    end_rss, end_threads = end
    samples = probe.samples
    warm = next((s for s in samples if s.sent >= warmup), samples[-1] if samples else Sample(0, end_rss, end_threads, 0.0, 0.0, 0, 0.0))
    per_camera = {}
    for i, t in enumerate(probe.topics):
        d = probe.last_diag.get(t, {})
        per_camera[t] = {
            "sent": frames,
            **{k: int(d.get(f"frames_{k}", -1)) for k in COUNTS},
            "masks_received_here": probe.masks[i],
            "mask_size": "x".join(map(str, probe.mask_sizes[i])) if probe.mask_sizes[i] else "none",
            "latency_ms": percentiles(probe.latencies[i]),
            "output_fps": round(probe.masks[i] / send_s, 2),
            "coarse_reused": d.get("coarse_reused", "n/a"),  # frames that reused the stride-32 scores, of those inferred
        }
    published = [c["published"] for c in per_camera.values()]
    return {
        "machine": this_cpu().describe(),
        "cameras": len(probe.topics),
        "rate_hz": rate,
        "frames_per_camera": frames,
        "seconds": round(send_s, 1),
        "per_camera": per_camera,
        "accounted": all(_accounted(c, frames) for c in per_camera.values()),
        "fairness_min_over_max": round(min(published) / max(max(published), 1), 3),
        "rss_mb": {
            "after_warmup": round(warm.rss_kib / 1024, 1),
            "end": round(end_rss / 1024, 1),
            "peak": round(max([s.rss_kib for s in samples] + [end_rss]) / 1024, 1),
        },
        "rss_growth_pct": round(100.0 * (end_rss - warm.rss_kib) / max(warm.rss_kib, 1), 2),
        "threads": {"after_warmup": warm.threads, "end": end_threads},
        "cpu": _cpu(samples, warmup, frames),
        "node_exit_code": code,
        "diagnostic_levels": {t: probe.last_diag.get(t, {}).get("level") for t in probe.topics},
        "fused_grid_hz": round(len(probe.fused) / send_s, 2),
    }


class NodeDidNotStart(RuntimeError):
    """The node under test exited or never served: the message is the last line it wrote (its
    error: a bad parameter, say); ``output`` all of it."""

    def __init__(self, output: str, why: str = "exited before serving") -> None:
        lines = [ln for ln in output.splitlines() if ln.strip()]
        super().__init__(f"the node {why}: {lines[-1].strip() if lines else 'it wrote nothing'}")
        self.output = output


def _param_args(params: list[str] | None) -> tuple[str, ...]:
    """``NAME:=VALUE`` node parameters as the node's command line takes them (``-p`` each)."""
    return tuple(a for p in params or [] for a in ("-p", p))


def run_load(
    cameras: int = 1,
    rate: float = 30.0,
    frames: int = 300,
    warmup: int = 100,
    ros=None,
    log: Path | None = None,
    progress: bool = False,
    sizes: tuple[tuple[int, int], ...] | None = None,
    ground: bool = False,
    params: list[str] | None = None,
) -> dict:
    """``frames`` per camera at ``rate`` Hz each; returns the figures (see the module docstring).
    ``sizes``: the sample drive's real frames re-encoded as JPEG at a size per camera, cycled (one for
    all, or a mixed rig such as a 1920x1208 front and 1280x720 sides; default: as recorded);
    ``ground``: each camera with CameraInfo and the sample's camera_pose, so the ground outputs and
    the fused grid are made too; ``params``: more node parameters, ``NAME:=VALUE``."""
    if ros is None:
        ensure_domain_id()
        with spinning_node("fcn_perception_load") as own:
            return run_load(cameras, rate, frames, warmup, own, log, progress, sizes, ground, params)
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage

    per_camera = [sizes[i % len(sizes)] if sizes else None for i in range(cameras)]
    encoded = {s: _sample_jpegs(s) for s in dict.fromkeys(per_camera)}  # cameras of one size share their frames
    jpegs = [encoded[s] for s in per_camera]
    topics = [f"/load_cam{i}/image_raw/compressed" for i in range(cameras)]
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    probe = _Probe(ros, topics, qos)
    pubs = [ros.create_publisher(CompressedImage, t, qos) for t in topics]
    extra = ["-p", "qos_reliability:=reliable", *_param_args(params)]
    if ground:
        from fcn_perception.tools.demo import SAMPLE_CAMERA_POSE

        extra += ["-p", f"camera_pose:={list(SAMPLE_CAMERA_POSE)}"]
        probe.info_pubs = _camera_infos(ros, topics, [camera[0] for camera in jpegs], qos)
    own_log = log is None  # the node's output is kept either way: it says why it did not come up
    log = Path(tempfile.mkstemp(prefix="fcn_perception_load_", suffix=".log")[1]) if own_log else log
    node = NodeProcess(default_params_file(), topics, extra, log=log)
    try:

        def up() -> bool:
            if node.proc.poll() is not None:
                raise NodeDidNotStart(node.output())
            return probe.connected() and all(p.get_subscription_count() > 0 for p in pubs)

        if not wait_until(up, 90, 0.1):
            raise NodeDidNotStart(node.output(), "was not serving after 90 s")
        probe.sample_memory(node.proc.pid)
        send_s = _send(probe, pubs, jpegs, frames, rate, progress)
        wait_until(lambda: probe.settled(frames), 20, 0.1)
        time.sleep(1.2)  # one more diagnostics period, and the last masks in flight
        end = _proc_status(node.proc.pid)
    finally:
        probe.close()
        code = node.stop()
        for p in pubs:
            ros.destroy_publisher(p)
        if own_log:
            log.unlink(missing_ok=True)
    return _figures(probe, frames, rate, warmup, send_s, end, code)


def loaded_libraries(pid: int) -> set[str]:
    """File names of the shared libraries mapped into a live process (Linux /proc/PID/maps)."""
    names = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and ".so" in parts[5]:
            names.add(Path(parts[5]).name)
    return names


def run_startup(
    frames: int = 30, ros=None, log: Path | None = None, executable: str = "", extra: tuple[str, ...] = (), size: tuple[int, int] | None = None
) -> dict:
    """The node as a car starts it, measured from outside: seconds from process start to the first
    mask, resident memory after ``frames`` masks, and whether PyTorch (libtorch) was loaded at all.
    Also when the node first showed in the sender's graph: DDS discovery, which now and then waits for
    a periodic announcement (README, "Troubleshooting"), is then told apart from the node's own start.
    ``size``: the sample drive's frames re-encoded at this size (a car camera's 1280x720, say)."""
    if ros is None:
        ensure_domain_id()
        with spinning_node("fcn_perception_startup") as own:
            return run_startup(frames, own, log, executable, extra, size)
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image

    jpegs = _sample_jpegs(size)
    topic = "/startup_cam/image_raw/compressed"
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    got: list[float] = []
    sub = ros.create_subscription(Image, "/startup_cam/segmentation/mask", lambda m: got.append(time.monotonic()), qos)
    pub = ros.create_publisher(CompressedImage, topic, qos)
    before = ros.get_node_names().count(NODE_NAME)  # one that stopped just now may still be listed
    node = NodeProcess(default_params_file(), [topic], ["-p", "qos_reliability:=reliable", *extra], log=log, executable=executable)
    try:
        k, seen = 0, None
        deadline = time.monotonic() + 120
        while len(got) < frames and time.monotonic() < deadline and node.proc.poll() is None:
            if seen is None and ros.get_node_names().count(NODE_NAME) > before:
                seen = time.monotonic()
            msg = CompressedImage(format="jpeg", data=jpegs[k % len(jpegs)])
            msg.header.stamp.sec, msg.header.frame_id = k + 1, "startup_cam_optical_frame"
            pub.publish(msg)
            k += 1
            time.sleep(0.05 if got else 0.02)  # probe often until the first mask, then about 20 Hz
        if len(got) < frames:
            raise RuntimeError(f"{len(got)} of {frames} masks came back:\n{node.output()[-2000:]}")
        rss, threads = _proc_status(node.proc.pid)
        libs = loaded_libraries(node.proc.pid)
    finally:
        code = node.stop()
        ros.destroy_subscription(sub)
        ros.destroy_publisher(pub)
    return {
        "machine": this_cpu().describe(),
        "first_mask_s": round(got[0] - node.started, 2),
        "discovered_s": round((seen or got[0]) - node.started, 2),  # the node in the sender's graph
        "frames": frames,
        "rss_mb": round(rss / 1024, 1),
        "threads": threads,
        "libtorch_loaded": any(n.startswith("libtorch") for n in libs),
        "onnxruntime_loaded": any("onnxruntime" in n for n in libs),
        "openvino_loaded": any(n.startswith("libopenvino") for n in libs),
        "executable": executable or f"{sys.executable} -m fcn_perception.ros.node",
        "node_exit_code": code,
    }


def report(res: dict) -> str:
    lines = [
        f"{res['cameras']} camera(s) x {res['frames_per_camera']} frames at {res['rate_hz']} Hz ({res['seconds']} s)"
        f" on {res['machine']}: "
        f"accounted={res['accounted']}  fairness(min/max published)={res['fairness_min_over_max']}",
        f"  node RSS after warm-up {res['rss_mb']['after_warmup']} MB, end {res['rss_mb']['end']} MB (growth {res['rss_growth_pct']} %), "
        f"peak {res['rss_mb']['peak']} MB; threads {res['threads']['after_warmup']} -> {res['threads']['end']}; exit code {res['node_exit_code']}",
        f"  fused grid {res['fused_grid_hz']} Hz",
    ]
    if cpu := res.get("cpu"):
        lines.append(
            f"  CPU from warm-up to the last frame sent: the node {cpu['node_ms_per_mask']} ms a mask, "
            f"this load process {cpu['load_process_pct_of_a_core']} % of a core"
        )
    for t, c in res["per_camera"].items():
        lines.append(
            f"  {t}: received {c['received']} lost {c['lost']} published {c['published']} dropped {c['dropped']} bad {c['bad']}; "
            f"{c['mask_size']} masks, {c['output_fps']} FPS out; "
            f"latency p50 {c['latency_ms']['p50']:.1f} p95 {c['latency_ms']['p95']:.1f} p99 {c['latency_ms']['p99']:.1f} ms; "
            f"stride-32 scores reused {c['coarse_reused']}"
        )
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--cameras", type=count_arg(), default=1)
    ap.add_argument("--rate", type=number_arg(above=True), default=30.0, help="frames per second per camera")
    ap.add_argument(
        "--size", type=sizes_arg, default=None, help="re-encode the sample drive's JPEGs at WxH (e.g. 640x480), or one per camera: 1920x1208,1280x720 (cycled)"
    )
    ap.add_argument("--frames", type=count_arg(), default=300, help="frames per camera (the soak: --frames 10000)")
    ap.add_argument("--warmup", type=count_arg(0), default=100, help="frames per camera before the memory baseline is taken")
    ap.add_argument("--json", default="")
    ap.add_argument("--ground", action="store_true", help="CameraInfo and the sample's camera_pose: ground outputs and the fused grid too")
    ap.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE", help="a node parameter (repeatable), e.g. fusion_rate:=0")
    ap.add_argument("--log", default="", help="write the node's output here")
    ap.add_argument("--startup", action="store_true", help="measure start-up instead: first mask, RSS after --frames masks, libtorch loaded?")
    ap.add_argument("--executable", default="", help="with --startup: an installed fcn_perception_node (default: this checkout)")


def run_args(args: argparse.Namespace) -> int:
    if args.startup:
        if args.size and len(args.size) > 1:
            print("fcn-perception load: error: --startup runs one camera: give one --size", file=sys.stderr)
            return 2
        log = Path(args.log) if args.log else None
        res = run_startup(args.frames, log=log, executable=args.executable, extra=_param_args(args.param), size=args.size[0] if args.size else None)
        print(
            f"on {res['machine']}: first mask {res['first_mask_s']} s after process start (in the sender's graph at {res['discovered_s']} s); "
            f"RSS {res['rss_mb']} MB after {res['frames']} masks; "
            f"libtorch loaded: {res['libtorch_loaded']}; onnxruntime loaded: {res['onnxruntime_loaded']}; openvino loaded: {res['openvino_loaded']} "
            f"({res['executable']})"
        )
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
        return 0 if res["node_exit_code"] == 0 else 1
    log = Path(args.log) if args.log else None
    try:
        res = run_load(args.cameras, args.rate, args.frames, args.warmup, log=log, progress=True, sizes=args.size, ground=args.ground, params=args.param)
    except NodeDidNotStart as exc:
        print(f"fcn-perception load: error: {exc}", file=sys.stderr)
        return 1
    print(report(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    ok = res["accounted"] and res["node_exit_code"] == 0
    return 0 if ok else 1
