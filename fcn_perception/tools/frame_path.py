"""``fcn-perception bench --frame-path``: where a camera-sized frame's time goes in the node, per stage.

The node's own frame loop (``serve_frame``) on the sample drive's real frames re-encoded as JPEG at
the camera size, with its CameraInfo and pose: decode, preprocess, inference, sharpening, drivable
area, ground, lanes, then every output the node always sends built and serialized as the node does
(rosbags messages, CDR bytes), the fused grid fed and made at ``fusion_rate``. One thread and no
DDS, so the figures add up to one frame's work on one core; ``load`` measures the node under a
rig's load. The CPU the process spent a frame, every thread's, is printed beside the time: a
library that spins a helper thread for a call (OpenCV's pool did, 2-2.5 ms of a core a frame) shows
there and not in the time.

Then the rig's ceiling: the network alone (resize, inference, sharpening) on every core with one
stream per camera, as the node runs it, for a few seconds. Its frames a second bound what any rig
of that camera gets on this CPU: a rig of two 30 Hz cameras needs 60, and what the network leaves
of the CPU is all the rest of the node (and whatever else runs) has. Each camera's frames are stamped
at 30 Hz, so they reuse the stride-32 scores as the node's do (``coarse_reuse_ms``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import cv2

from fcn_perception.cpu import this_cpu
from fcn_perception.params.node_config import NodeConfig
from fcn_perception.stats import percentiles

STAGES = ("decode", "preprocess", "infer", "postprocess", "drivable", "ground", "lanes", "build", "serialize", "fusion")


class _Timed:
    """The frame loop's sink: the node's outputs built and serialized, the fusion fed, each timed."""

    def __init__(self, cfg: NodeConfig, classes: list[str]) -> None:
        from fcn_perception.ros import outputs
        from fcn_perception.ros.fused import Fusion

        self.cfg, self.outputs = cfg, outputs
        self.keys = outputs.node_keys(lambda key: False, lambda gate: False)  # what the node always sends
        self.fused_keys = outputs.node_keys(lambda key: False, lambda gate: False, outputs.FUSED_OUTPUTS)
        self.fusion = Fusion(cfg, classes, lambda frame, header: None)
        self.ms: dict[str, float] = {}

    def emit(self, cam, msg, result) -> None:
        from fcn_perception.ros.cdr import as_header, rosbags_message, serialize

        t0 = time.perf_counter()
        built = self.outputs.build(self.keys, rosbags_message, as_header(msg.header), result, self.cfg.base_frame)
        t1 = time.perf_counter()
        for key, out in built.items():
            serialize(out, self.outputs.OUTPUTS[key].msgtype)
        t2 = time.perf_counter()
        self.fusion.feed(cam, msg.header, result)
        if self.fusion.due():  # the fused grid at fusion_rate of the frames' time, as replay makes it
            for key, out in self.fusion.messages(rosbags_message, self.fused_keys).items():
                serialize(out, self.outputs.FUSED_OUTPUTS[key].msgtype)
        self.ms = {"build": (t1 - t0) * 1e3, "serialize": (t2 - t1) * 1e3, "fusion": (time.perf_counter() - t2) * 1e3}


def frame_path_bench(size: tuple[int, int], frames: int = 60, warmup: int = 10, precision: str = "auto", capacity_s: float = 3.0) -> dict:
    """Per-stage ms (p50, p95) of ``frames`` camera frames at ``size`` through the node's frame loop."""
    from fcn_perception.bags.bag_io import compressed_image
    from fcn_perception.scene.camera import CameraWorkflow
    from fcn_perception.scene.frame_loop import serve_frame
    from fcn_perception.scene.pipeline import Pipeline
    from fcn_perception.tools.demo import SAMPLE_CAMERA_POSE
    from fcn_perception.tools.samples import sample_camera_info, sample_frames

    cfg = NodeConfig.from_dict({"camera_pose": list(SAMPLE_CAMERA_POSE), "threads": 1, "precision": precision})
    pipeline = Pipeline.for_config(cfg)
    jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1] for f in sample_frames(size, min(frames + warmup, 60))]
    cam = CameraWorkflow("/bench/image_raw/compressed", 0, cfg.pose(0), cfg.ground(), 0.0, "no CameraInfo")
    cam.info = sample_camera_info(size)
    sink = _Timed(cfg, pipeline.segmenter.classes)
    times: dict[str, list[float]] = {s: [] for s in (*STAGES, "total", "cpu")}
    ground = lanes = 0  # frames with ground outputs, and with lane points on the ground
    for i in range(frames + warmup):
        msg = compressed_image(1_000_000_000 + i * 33_333_333, "bench_optical_frame", jpegs[i % len(jpegs)].tobytes())
        t, cpu = time.perf_counter(), time.process_time()
        served = serve_frame(cam, pipeline, msg, lambda header: (None, "no TF"), sink)
        total, cpu = (time.perf_counter() - t) * 1e3, (time.process_time() - cpu) * 1e3
        if served.result is None:
            raise RuntimeError(f"frame {i} was not served: {served.logs}")
        if i >= warmup:
            ground, lanes = ground + (served.result.ground is not None), lanes + (served.result.ego_lane is not None)
            for stage, ms in {**served.result.timings_ms, **sink.ms, "total": total, "cpu": cpu}.items():
                if stage in times:
                    times[stage].append(ms)
    return {
        "cpu": this_cpu().describe(),
        "size": f"{size[0]}x{size[1]}",
        "frames": frames,
        "backend": pipeline.segmenter.backend_name,
        "precision": pipeline.segmenter.precision,
        "frames_with_ground": ground,
        "frames_with_lanes": lanes,
        "ms": {s: {**percentiles(v, (50, 95), digits=2), "mean": round(sum(v) / max(1, len(v)), 2)} for s, v in times.items()},
        "coarse_reused": cam.state.coarse.share(),
        "network_capacity": network_capacity(size, precision, capacity_s),
    }


def network_capacity(size: tuple[int, int], precision: str = "auto", seconds: float = 3.0, cameras: int = 2) -> dict:
    """Frames a second of the network alone at a camera of ``size`` on every core, ``cameras``
    frames at once (the node's streams for a rig of that many), the sample drive's frames stamped at
    30 Hz a camera."""
    from fcn_perception.inference.coarse_reuse import CoarseScores
    from fcn_perception.inference.segmenter import Segmenter
    from fcn_perception.tools.samples import sample_frames

    seg = Segmenter(replace(NodeConfig.from_dict({"precision": precision}).segmenter(), streams=cameras))
    frames = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in sample_frames(size, 8)]
    done = [0] * cameras
    kept = [CoarseScores() for _ in range(cameras)]  # each camera's frames stamped at 30 Hz, as the node's

    def serve(k: int, deadline: float) -> None:
        while time.perf_counter() < deadline:
            seg.segment(frames[(done[k] + k) % len(frames)], None, kept[k], 100.0 + done[k] / 30)
            done[k] += 1

    for span in (1.0, seconds):  # every stream warmed up first, then timed
        done[:] = [0] * cameras
        t = time.perf_counter()
        workers = [threading.Thread(target=serve, args=(k, t + span)) for k in range(cameras)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    fps = round(sum(done) / (time.perf_counter() - t), 1)
    return {"cameras": cameras, "streams": seg.backend.streams, "fps": fps, "rig_30hz_share": round(30 * cameras / fps, 3)}


def report(res: dict) -> str:
    ms, cap = res["ms"], res["network_capacity"]
    rest = ms["total"]["p50"] - ms["infer"]["p50"]
    return (
        f"frame path at {res['size']} on one thread ({res['backend']}, {res['precision']}; {res['cpu']}), {res['frames']} frames, ms p50:\n  "
        + "  ".join(f"{s} {ms[s]['p50']:.2f}" for s in STAGES)
        + f"\n  total {ms['total']['p50']:.2f}, all but inference {rest:.2f}; CPU of every thread {ms['cpu']['p50']:.2f}"
        + f"\n  fusion {ms['fusion']['mean']:.2f} on average (the fused grid made at fusion_rate, on one frame in a few);"
        + f" infer {ms['infer']['mean']:.2f} on average, the stride-32 scores reused on {res['coarse_reused']} frames (coarse_reuse_ms)"
        + (
            f"\nthe network alone on every core, {cap['streams']} frames at once, each camera's at 30 Hz stamps: {cap['fps']:.1f} frames/s;"
            f" {cap['cameras']} cameras at 30 Hz would take {100 * cap['rig_30hz_share']:.0f} % of the CPU for it"
        )
    )
