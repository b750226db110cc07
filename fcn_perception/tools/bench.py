"""``fcn-perception bench``: per-stage latency of the real pipeline on the sample drive, against the hardware floor.

Frames are the sample drive's, resized to ``--size`` and sent as raw bgr8 ``sensor_msgs/Image``
(rclpy messages), so "decode" and "publish-side conversion" are the node's real costs. The model
runs at the same size (it is fully convolutional). The floor is the model's counted FLOPs over
the peak FLOP/s a large matmul reaches in this process with the same thread count.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

from fcn_perception.cpu import this_cpu
from fcn_perception.inference.backends import BACKENDS
from fcn_perception.params.node_config import NodeConfig
from fcn_perception.scene.pipeline import STAGES, CameraState, Pipeline
from fcn_perception.stats import percentiles
from fcn_perception.tools.args import count_arg, param_arg, size_arg
from fcn_perception.tools.demo import SAMPLE_CAMERA_POSE
from fcn_perception.tools.samples import sample_camera_info, sample_frames
from fcn_perception.waiting import wait_until

BENCH_ENV_PYTHON = Path(__file__).resolve().parents[2] / ".venv-bench" / "bin" / "python"


def measure_peak_gflops(threads: int, size: int = 2048, seconds: float = 2.0) -> float:
    """fp32 matmul throughput: the practical ceiling for conv-heavy inference on this CPU."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        n += 1
    return 2 * size**3 * n / (time.perf_counter() - start) / 1e9


def peer_timings(python: str, size: tuple[int, int], frames: int, backend: str, threads: int) -> dict:
    """Time torchvision peers in the optional benchmark environment (a separate interpreter)."""
    import subprocess

    from fcn_perception.inference.backends import concrete_backend

    backend = concrete_backend(backend)
    peer_backend = backend if backend in ("torch", "openvino") else "onnxruntime"
    cmd = [python, "-m", "fcn_perception.studies.peers", "--size", f"{size[0]}x{size[1]}", "--frames", str(frames), "--backend", peer_backend]
    cmd += ["--threads", str(threads)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if res.returncode != 0:
        raise RuntimeError(f"peer benchmark failed: {res.stderr[-2000:]}")
    return json.loads(res.stdout)


def bench(
    backend: str, size: tuple[int, int], frames: int, warmup: int = 10, threads: int = 0, model: str = "", peers_python: str = "", precision: str = "auto"
) -> dict:
    from sensor_msgs.msg import Image

    from fcn_perception.model.config import read_onnx_config
    from fcn_perception.model.fcn import FCN, count_flops, load_model
    from fcn_perception.ros.cdr import as_header, rosbags_message, serialize
    from fcn_perception.ros.messages import image_msg

    cfg = NodeConfig.from_dict(
        {"backend": backend, "threads": threads, "model": model, "input_width": size[0], "input_height": size[1], "precision": precision}
    )
    pipeline = Pipeline.for_config(cfg)
    msgs = []
    for i, bgr in enumerate(sample_frames(size, frames + warmup)):
        msg = Image(encoding="bgr8", width=size[0], height=size[1], step=size[0] * 3)
        msg.header.stamp.sec, msg.header.frame_id = i, "camera_optical_frame"
        msg.data = bgr.tobytes()
        msgs.append(msg)
    per_stage: dict[str, list[float]] = {s: [] for s in (*STAGES, "publish_conversion")}
    e2e = []
    start = None
    for i, msg in enumerate(msgs):
        if i == warmup:
            start = time.perf_counter()
        t = time.perf_counter()
        result = pipeline.process(msg)
        t_conv = time.perf_counter()
        serialize(image_msg(rosbags_message, as_header(msg.header), result.mask, "mono8"), "sensor_msgs/msg/Image")  # as the node
        done = time.perf_counter()
        if i >= warmup:
            e2e.append((done - t) * 1e3)
            for s in STAGES:
                per_stage[s].append(result.timings_ms[s])
            per_stage["publish_conversion"].append((done - t_conv) * 1e3)
    wall = time.perf_counter() - start
    seg = pipeline.segmenter
    # an .onnx model carries its architecture in its metadata: untrained weights count the same FLOPs
    net = load_model(seg.model_path) if seg.model_path.suffix == ".pt" else FCN(read_onnx_config(seg.model_path))
    flops = count_flops(net, size[1], size[0])
    # the floor is fp32 FLOPs over this CPU's measured fp32 matmul peak: it means something only for an
    # fp32 model on the CPU (not on a GPU, not for INT8 kernels)
    cpu_fp32 = seg.backend_name in ("onnxruntime-cpu", "openvino-cpu", "torch-cpu") and ".int8." not in seg.model_path.name
    peak = measure_peak_gflops(threads) if cpu_fp32 else None
    floor_ms = flops / (peak * 1e9) * 1e3 if peak else None
    res = {
        "backend": seg.backend_name,
        "cpu": this_cpu().describe(),
        "size": f"{size[0]}x{size[1]}",
        "frames": frames,
        "end_to_end_ms": percentiles(e2e),
        "stages_ms": {s: percentiles(v) for s, v in per_stage.items()},
        "fps": round(frames / wall, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "gflops_per_frame": round(flops / 1e9, 3),
        "peak_gflops": round(peak, 1) if peak else None,
        "floor_ms": round(floor_ms, 3) if floor_ms else None,
        "measured_over_floor": round(float(np.median(per_stage["infer"])) / floor_ms, 2) if floor_ms else None,
        "model": seg.model_path.name,
        "peers": {},
    }
    if peers_python:
        res["peers"] = peer_timings(peers_python, size, min(frames, 50), backend, threads)
        for peer in res["peers"].values():
            peer["ours_infer_over_peer"] = round(res["stages_ms"]["infer"]["p50"] / peer["end_to_end_ms"]["p50"], 3)
    return res


def ros_overhead(size: tuple[int, int], frames: int = 200) -> dict:
    """The node's ROS-side cost per frame, inference excluded: decode the input Image, build and
    publish the mask and polygon over real DDS to a subscriber in another process's shoes (a
    subscription in this process, served by its own executor thread)."""
    import threading

    import rclpy
    from geometry_msgs.msg import PolygonStamped
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from fcn_perception.ros.cdr import as_header, rosbags_message, serialize
    from fcn_perception.ros.messages import image_msg, polygon_msg
    from fcn_perception.scene.image_codec import decode
    from fcn_perception.tools.demo import ensure_domain_id

    ensure_domain_id()
    rclpy.init()
    pub_node, sub_node = rclpy.create_node("bench_pub"), rclpy.create_node("bench_sub")
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    got = []
    sub_node.create_subscription(Image, "/bench/segmentation/mask", lambda m: got.append(1), qos)
    sub_node.create_subscription(PolygonStamped, "/bench/drivable_area/polygon", lambda m: None, qos)
    executor = SingleThreadedExecutor()
    executor.add_node(sub_node)
    threading.Thread(target=executor.spin, daemon=True).start()
    pub_mask = pub_node.create_publisher(Image, "/bench/segmentation/mask", qos)
    pub_poly = pub_node.create_publisher(PolygonStamped, "/bench/drivable_area/polygon", qos)
    try:
        wait_until(lambda: pub_mask.get_subscription_count() > 0 and pub_poly.get_subscription_count() > 0, 10)
        bgr = sample_frames(size, 1)[0]
        msg = Image(encoding="bgr8", width=size[0], height=size[1], step=size[0] * 3)
        msg.data = bgr.tobytes()
        mask = (bgr[..., 0] // 32).astype(np.uint8)
        vertices = np.array([[0, size[1] - 1], [size[0] - 1, size[1] - 1], [size[0] // 2, size[1] // 2]], np.float32)
        stages: dict[str, list[float]] = {"decode": [], "mask_msg": [], "publish": [], "total": []}
        for i in range(frames + 10):
            t0 = time.perf_counter()
            decode(msg)
            t1 = time.perf_counter()
            header = as_header(msg.header)  # built and serialized as the node does (ros/cdr.py)
            out = serialize(image_msg(rosbags_message, header, mask, "mono8"), "sensor_msgs/msg/Image")
            poly = serialize(polygon_msg(rosbags_message, header, vertices), "geometry_msgs/msg/PolygonStamped")
            t2 = time.perf_counter()
            pub_mask.publish(out)
            pub_poly.publish(poly)
            t3 = time.perf_counter()
            if i >= 10:
                for k, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True):
                    stages[k].append(dt * 1e3)
            time.sleep(0.002)
        time.sleep(0.5)
    finally:
        executor.shutdown()
        pub_node.destroy_node()
        sub_node.destroy_node()
        rclpy.try_shutdown()
    return {
        "cpu": this_cpu().describe(),
        "size": f"{size[0]}x{size[1]}",
        "frames": frames,
        "sent": frames + 10,
        "received": len(got),
        "ms": {k: percentiles(v) for k, v in stages.items()},
    }


def drivable_bench(size: tuple[int, int], frames: int = 200, smoothing: float = 0.0) -> dict:
    """Mask -> all regions + ego + ground polygons + grid on one CPU core, on the sample drive's real masks
    (segmented once at ``size``, outside the timing), with the sample drive's CameraInfo scaled to ``size``."""
    import cv2

    from fcn_perception.scene.drivable import MaskSmoother

    cfg = NodeConfig.from_dict({"temporal_smoothing": smoothing, "camera_pose": list(SAMPLE_CAMERA_POSE)})
    pipeline = Pipeline.for_config(cfg)
    state = CameraState(smoother=MaskSmoother(smoothing))
    state.calibrate(sample_camera_info(size), cfg.ground(), *cfg.pose(0))
    masks = [pipeline.segmenter.segment(cv2.cvtColor(f, cv2.COLOR_BGR2RGB)).mask for f in sample_frames(size, min(frames, 40))]
    times, vertices = [], 0
    for i in range(frames + 10):
        t = time.perf_counter()
        result = pipeline.drivable_area(masks[i % len(masks)], state)
        dt = (time.perf_counter() - t) * 1e3
        if i >= 10:
            times.append(dt)
            rings = [r.outer for r in result.regions] + [h for r in result.regions for h in r.holes]
            vertices = max(vertices, max((len(r) for r in rings), default=0))
    return {
        "cpu": this_cpu().describe(),
        "size": f"{size[0]}x{size[1]}",
        "frames": frames,
        "temporal_smoothing": smoothing,
        "ms": percentiles(times),
        "max_vertices_per_ring": vertices,
        "vertex_budget": cfg.polygon_max_vertices,
    }


def report(res: dict) -> str:
    lines = [
        f"{res['backend']} {res['size']} on {res['cpu']}, {res['frames']} frames: end to end p50 {res['end_to_end_ms']['p50']:.1f} ms "
        f"p95 {res['end_to_end_ms']['p95']:.1f} p99 {res['end_to_end_ms']['p99']:.1f}, {res['fps']:.1f} FPS, peak RSS {res['peak_rss_mb']} MB",
        "  " + "  ".join(f"{s} {v['p50']:.2f}" for s, v in res["stages_ms"].items()) + "  (ms p50)",
        f"  model {res['model']}, {res['gflops_per_frame']} GFLOP/frame"
        + (
            f", peak {res['peak_gflops']} GFLOP/s -> floor {res['floor_ms']:.1f} ms; infer/floor {res['measured_over_floor']}"
            if res["floor_ms"]
            else " (no FLOP floor: it is defined for an fp32 model on the CPU)"
        ),
    ]
    for name, peer in res["peers"].items():
        lines.append(
            f"  peer {name} ({peer['backend']} {peer.get('precision', 'fp32')}, inference + argmax): p50 {peer['end_to_end_ms']['p50']:.1f} ms; "
            f"ours/peer {peer['ours_infer_over_peer']:.2f} (inference), {res['end_to_end_ms']['p50'] / peer['end_to_end_ms']['p50']:.2f} (end to end)"
        )
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--backend", default="auto", type=_backends, help=f"one of {', '.join(BACKENDS)}, or several separated by commas to compare them interleaved"
    )
    ap.add_argument("--size", default=(480, 360), type=size_arg, help="WxH of the frames and of the model input")
    ap.add_argument("--frames", type=count_arg(), default=100)
    ap.add_argument("--warmup", type=count_arg(0), default=10)
    ap.add_argument("--threads", type=param_arg("threads"), default=0)
    ap.add_argument("--model", default="")
    ap.add_argument("--precision", default="auto", help="auto | fp32 | fp16 | bf16 | int8, or several separated by commas to compare them interleaved")
    ap.add_argument("--repeat", type=count_arg(), default=1, help="rounds; each round times every precision (and the peers) once, interleaved")
    ap.add_argument("--json", default="")
    ap.add_argument("--profile", action="store_true", help="print the top operators by time of the model (and of the peers) on ONNX Runtime and OpenVINO")
    ap.add_argument("--ros-overhead", action="store_true", help="measure decode + message building + DDS publish instead")
    ap.add_argument("--drivable", action="store_true", help="measure mask -> polygons + ground projection + grid on one core instead")
    ap.add_argument("--smoothing", type=param_arg("temporal_smoothing"), default=0.0, help="with --drivable: temporal_smoothing to include")
    ap.add_argument(
        "--frame-path",
        action="store_true",
        help="measure the node's frame loop per stage at the camera size, JPEG in, outputs serialized, one thread,"
        " instead; then the network alone on every core, one stream per camera of a rig of two: the rig's ceiling",
    )
    ap.add_argument(
        "--peers-python",
        default=str(BENCH_ENV_PYTHON) if BENCH_ENV_PYTHON.exists() else "",
        help="interpreter of the torchvision benchmark environment (default: .venv-bench when present)",
    )


def _backends(text: str) -> list[str]:
    names = text.split(",")
    bad = [n for n in names if n not in BACKENDS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown backend {bad[0]!r}: choose from {', '.join(BACKENDS)}")
    return names


def profile_models(args: argparse.Namespace) -> dict:
    """``--profile``: the model's operators on both CPU runtimes, and the peers' (exported in the
    benchmark environment) beside them."""
    import tempfile

    from fcn_perception.inference.model_store import resolve_model
    from fcn_perception.tools.profile import profile, report

    w, h = args.size
    out = {"cpu": this_cpu().describe()}
    print(f"on {out['cpu']}:", flush=True)
    for precision in args.precision.split(","):
        kind = {"fp32": "onnx", "bf16": "onnx"}.get(precision, "int8")
        path = resolve_model(args.model, kind)
        if path.suffix != ".onnx":
            raise ValueError("--profile takes an .onnx model (the shipped one by default)")
        out[f"ours ({precision})"] = res = profile(path, (w, h), args.threads, 30, precision)
        print(report(res), flush=True)
    if args.peers_python:
        import subprocess

        with tempfile.TemporaryDirectory() as tmp:
            cmd = [args.peers_python, "-m", "fcn_perception.studies.peers", "--size", f"{w}x{h}", "--peers", "lraspp_mobilenet_v3_large", "--export", tmp]
            env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
            if done.returncode != 0:
                raise RuntimeError(f"peer export failed: {done.stderr[-2000:]}")
            for name, path in json.loads(done.stdout).items():
                out[name] = res = profile(path, (w, h), args.threads, 30)
                print(report(res), flush=True)
    return out


def run_args(args: argparse.Namespace) -> int:
    w, h = args.size
    if args.profile:
        res = profile_models(args)
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
        return 0
    if args.ros_overhead:
        res = ros_overhead((w, h), args.frames)
        print(
            f"ROS overhead at {res['size']} (decode input + build mask/polygon + publish, no inference), {res['frames']} frames on {res['cpu']}: "
            + "  ".join(f"{k} p50 {v['p50']:.2f} p95 {v['p95']:.2f}" for k, v in res["ms"].items())
            + f"  ({res['received']} masks received)"
        )
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
        return 0
    if args.frame_path:
        from fcn_perception.tools.frame_path import frame_path_bench
        from fcn_perception.tools.frame_path import report as frame_path_report

        res = frame_path_bench((w, h), args.frames, args.warmup, args.precision)
        print(frame_path_report(res))
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
        return 0
    if args.drivable:
        res = drivable_bench((w, h), args.frames, args.smoothing)
        print(
            f"drivable area at {res['size']} on one core (all regions, ego, ground polygons, grid; smoothing {res['temporal_smoothing']}), "
            f"{res['frames']} frames on {res['cpu']}: p50 {res['ms']['p50']:.2f} ms p95 {res['ms']['p95']:.2f} p99 {res['ms']['p99']:.2f}; "
            f"largest ring {res['max_vertices_per_ring']} vertices (budget {res['vertex_budget']})"
        )
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
        return 0
    precisions = args.precision.split(",")
    rounds = []
    for i in range(max(1, args.repeat)):
        for backend in args.backend:  # every variant once per round, interleaved; peers on each runtime once
            for k, precision in enumerate(precisions):
                res = bench(backend, (w, h), args.frames, args.warmup, args.threads, args.model, args.peers_python if k == 0 else "", precision)
                res["precision"], res["round"] = precision, i
                print(report(res), flush=True)
                rounds.append(res)
    out = rounds[0] if len(rounds) == 1 else {"rounds": rounds, "summary": summarise(rounds)}
    if len(rounds) > 1:
        print(summary_report(out["summary"], rounds[0]["cpu"]))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


def summarise(rounds: list[dict]) -> dict:
    """Median and spread (min-max) over the rounds of each variant's p50s: the figures to quote."""
    series: dict[str, dict[str, list[float]]] = {}
    for r in rounds:
        s = series.setdefault(f"{r['backend']} {r['model']} ({r['precision']})", {"end_to_end": [], "infer": []})
        s["end_to_end"].append(r["end_to_end_ms"]["p50"])
        s["infer"].append(r["stages_ms"]["infer"]["p50"])
        for name, peer in r["peers"].items():
            label = f"peer {name} ({peer['backend']}, {peer.get('precision', 'fp32')})"
            series.setdefault(label, {"end_to_end": [], "infer": []})["infer"].append(peer["end_to_end_ms"]["p50"])
            # the acceptance figure: ours over the peer within each round (one sitting), then the median
            series.setdefault(f"ours/peer {name}, inference", {"ratio": []})["ratio"].append(peer["ours_infer_over_peer"])
    return {
        k: {m: {"median": round(float(np.median(v)), 2), "min": round(min(v), 2), "max": round(max(v), 2), "n": len(v)} for m, v in s.items() if v}
        for k, s in series.items()
    }


def summary_report(summary: dict, cpu: str) -> str:
    lines = [f"median over rounds (min-max), ms p50, on {cpu}:"]
    for k, s in summary.items():
        fmt = {m: ".2f" if m == "ratio" else ".1f" for m in s}
        lines.append("  " + k + ": " + "  ".join(f"{m} {v['median']:{fmt[m]}} ({v['min']:{fmt[m]}}-{v['max']:{fmt[m]}}, n={v['n']})" for m, v in s.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fcn-perception bench", description=__doc__)
    add_arguments(ap)
    return run_args(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
