"""``fcn-perception bench``: per-stage latency of the real pipeline on the sample drive, against the hardware floor.

Frames are the sample drive's, resized to ``--size`` and sent as raw bgr8 ``sensor_msgs/Image``
(rclpy messages), so "decode" and "publish-side conversion" are the node's real costs. The model
runs at the same size (it is fully convolutional). The floor is the model's counted FLOPs over
the peak FLOP/s a large matmul reaches in this process with the same thread count.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

from .bag_io import COMPRESSED, read_messages
from .demo import SAMPLE_BAG
from .node_config import NodeConfig
from .pipeline import STAGES, Pipeline


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


def sample_frames(size: tuple[int, int], count: int) -> list[np.ndarray]:
    import cv2

    frames = [cv2.imdecode(m.msg.data, cv2.IMREAD_COLOR) for m in read_messages(SAMPLE_BAG) if m.msgtype == COMPRESSED]
    frames = [cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in frames]
    return [frames[i % len(frames)] for i in range(count)]


def _pct(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values)
    return {k: round(float(np.percentile(arr, q)), 3) for k, q in (("p50", 50), ("p95", 95), ("p99", 99))}


def bench(backend: str, size: tuple[int, int], frames: int, warmup: int = 10, threads: int = 0, model: str = "") -> dict:
    from sensor_msgs.msg import Image

    from .fcn import count_flops, load_model
    from .messages import image_msg

    cfg = NodeConfig.from_dict({"backend": backend, "threads": threads, "model": model, "input_width": size[0], "input_height": size[1]})
    pipeline = Pipeline(cfg.segmenter(), cfg.drivable(), cfg.max_pixels)
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
        image_msg(Image, msg.header, result.mask, "mono8")
        done = time.perf_counter()
        if i >= warmup:
            e2e.append((done - t) * 1e3)
            for s in STAGES:
                per_stage[s].append(result.timings_ms[s])
            per_stage["publish_conversion"].append((done - t_conv) * 1e3)
    wall = time.perf_counter() - start
    seg = pipeline.segmenter
    flops = count_flops(load_model(seg.model_path), size[1], size[0])
    peak = measure_peak_gflops(threads)
    floor_ms = flops / (peak * 1e9) * 1e3
    res = {
        "backend": seg.backend_name,
        "size": f"{size[0]}x{size[1]}",
        "frames": frames,
        "end_to_end_ms": _pct(e2e),
        "stages_ms": {s: _pct(v) for s, v in per_stage.items()},
        "fps": round(frames / wall, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "gflops_per_frame": round(flops / 1e9, 3),
        "peak_gflops": round(peak, 1),
        "floor_ms": round(floor_ms, 3),
        "measured_over_floor": round(float(np.median(per_stage["infer"])) / floor_ms, 2),
        "peers": {},
    }
    return res


def report(res: dict) -> str:
    lines = [
        f"{res['backend']} {res['size']}, {res['frames']} frames: end to end p50 {res['end_to_end_ms']['p50']:.1f} ms "
        f"p95 {res['end_to_end_ms']['p95']:.1f} p99 {res['end_to_end_ms']['p99']:.1f}, {res['fps']:.1f} FPS, peak RSS {res['peak_rss_mb']} MB",
        "  " + "  ".join(f"{s} {v['p50']:.2f}" for s, v in res["stages_ms"].items()) + "  (ms p50)",
        f"  model {res['gflops_per_frame']} GFLOP/frame, peak {res['peak_gflops']} GFLOP/s -> floor {res['floor_ms']:.1f} ms; "
        f"infer/floor {res['measured_over_floor']}",
    ]
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "torch"])
    ap.add_argument("--size", default="480x360", help="WxH of the frames and of the model input")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--model", default="")
    ap.add_argument("--json", default="")


def run_args(args: argparse.Namespace) -> int:
    w, h = (int(v) for v in args.size.lower().split("x"))
    res = bench(args.backend, (w, h), args.frames, args.warmup, args.threads, args.model)
    print(report(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fcn-perception bench", description=__doc__)
    add_arguments(ap)
    return run_args(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
