"""``fcn-perception replay IN_BAG --out OUT_BAG``: run the pipeline over a recorded drive, offline.

The output bag holds every input message plus the node's outputs (mask, overlay, polygons, grid,
markers) under the same topic names the node uses and with the original timestamps, so ``ros2 bag
play``, RViz and Foxglove open it like a live recording. Each camera's ``camera_info`` in the bag
calibrates its ground outputs, with the pose from the ``camera_pose`` parameter (bags carry no TF
lookup here).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fcn_perception.bags.bag_io import (
    CAMERA_INFO,
    IMAGE_TYPES,
    BagWriter,
    bag_topics,
    camera_info_topic,
    camera_namespace,
    count_messages,
    read_messages,
    rosbags_message,
)
from fcn_perception.ros.messages import OUTPUTS, frame_messages, output_topic
from fcn_perception.ros.node_config import NodeConfig, load_params_yaml
from fcn_perception.scene.drivable import MaskSmoother
from fcn_perception.scene.image_codec import BadFrame
from fcn_perception.scene.pipeline import STAGES, CameraState, Pipeline


@dataclass
class ReplaySummary:
    frames: int = 0
    bad_frames: int = 0
    bad_reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    stages_ms_p50: dict[str, float] = field(default_factory=dict)
    output_counts: dict[str, int] = field(default_factory=dict)
    ground_status: dict[str, str] = field(default_factory=dict)  # per image topic, at the end

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def report(self) -> str:
        stages = "  ".join(f"{k} {v:.1f}" for k, v in self.stages_ms_p50.items())
        bad = f" ({', '.join(f'{k}={v}' for k, v in sorted(self.bad_reasons.items()))})" if self.bad_frames else ""
        ground = "".join(f"\nground outputs of {t}: {v}" for t, v in sorted(self.ground_status.items()))
        return f"{self.frames} frames in {self.seconds:.1f} s ({self.fps:.1f} fps), {self.bad_frames} bad{bad}\nper-stage ms p50: {stages}{ground}"


def replay(
    in_bag: str | Path,
    out_bag: str | Path,
    topics: list[str] | None = None,
    params: str | Path | None = None,
    overrides: dict | None = None,
    storage: str = "mcap",
    progress: bool = True,
) -> ReplaySummary:
    values = load_params_yaml(params) if params else {}
    values.update(overrides or {})
    cfg = NodeConfig.from_dict(values)
    available = bag_topics(in_bag)
    if topics:
        missing = [t for t in topics if t not in available]
        if missing:
            raise ValueError(f"topics not in {in_bag}: {missing} (it has {sorted(available)})")
        wrong = [t for t in topics if available[t] not in IMAGE_TYPES]
        if wrong:
            raise ValueError(f"not image topics: {wrong}")
        image_topics = list(topics)
    else:
        image_topics = [t for t, m in available.items() if m in IMAGE_TYPES]
    if not image_topics:
        raise ValueError(f"{in_bag} has no sensor_msgs/Image or CompressedImage topics")
    pipeline = Pipeline(cfg.segmenter(), cfg.drivable(), cfg.max_pixels)
    ground_cfg = cfg.ground()
    order = {t: i for i, t in enumerate(dict.fromkeys(cfg.image_topics))}  # camera_pose is indexed like image_topics
    unposed = [t for t in image_topics if t not in order]
    if len(cfg.camera_pose) > 6 and unposed:
        raise ValueError(f"camera_pose gives one pose per image_topics entry, and {unposed} is not in image_topics {cfg.image_topics}")
    states = {
        t: CameraState(ground_status=f"disabled: no {camera_info_topic(t)} in the bag", smoother=MaskSmoother(cfg.temporal_smoothing)) for t in image_topics
    }
    by_info = {camera_info_topic(t): t for t in image_topics if available.get(camera_info_topic(t)) == CAMERA_INFO}

    def calibrate(info_topic: str, info) -> None:
        xyz, rpy = cfg.pose(order.get(by_info[info_topic], 0))
        states[by_info[info_topic]].calibrate(info, ground_cfg, xyz, rpy)

    # a driver publishes CameraInfo beside (often just after) each image: take each camera's first one
    # up front so the first frames get ground outputs too; later ones update it in recorded order
    pending = set(by_info)
    for m in read_messages(in_bag, list(by_info)) if pending else ():
        if m.topic in pending:
            calibrate(m.topic, m.msg)
            pending.discard(m.topic)
        if not pending:
            break
    summary = ReplaySummary()
    stage_times: dict[str, list[float]] = {s: [] for s in STAGES}
    total = sum(n for t, n in count_messages(in_bag).items() if t in image_topics)
    start = time.perf_counter()
    with BagWriter(out_bag, storage) as bag, tqdm(total=total, desc="replay", unit="frame", disable=not progress) as bar:
        for m in read_messages(in_bag):
            bag.write(m.topic, m.msgtype, m.timestamp, m.msg)  # inputs pass through unchanged
            if m.topic in by_info:
                calibrate(m.topic, m.msg)
                continue
            if m.topic not in image_topics:
                continue
            bar.update(1)
            try:
                result = pipeline.process(m.msg, states[m.topic])
            except BadFrame as exc:
                summary.bad_frames += 1
                summary.bad_reasons[exc.reason] = summary.bad_reasons.get(exc.reason, 0) + 1
                continue
            ns = camera_namespace(m.topic)
            overlay = pipeline.overlay_bgr(result, cfg.overlay_alpha) if cfg.publish_overlay else None
            for key, out in frame_messages(rosbags_message, m.msg.header, result, cfg.base_frame, overlay).items():
                bag.write(output_topic(ns, OUTPUTS[key].topic), OUTPUTS[key].msgtype, m.timestamp, out)
            summary.frames += 1
            for s in STAGES:
                stage_times[s].append(result.timings_ms.get(s, 0.0))
    summary.seconds = time.perf_counter() - start
    summary.stages_ms_p50 = {s: float(np.median(v)) for s, v in stage_times.items() if v}
    summary.output_counts = dict(bag.counts)
    summary.ground_status = {t: s.ground_status for t, s in states.items()}
    return summary
