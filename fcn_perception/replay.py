"""``fcn-perception replay IN_BAG --out OUT_BAG``: run the pipeline over a recorded drive, offline.

The output bag holds every input message plus the node's outputs (mask, overlay, polygon) under
the same topic names the node uses and with the original timestamps, so ``ros2 bag play``, RViz
and Foxglove open it like a live recording.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .bag_io import IMAGE, IMAGE_TYPES, TYPESTORE, BagWriter, bag_topics, camera_namespace, count_messages, read_messages
from .image_codec import BadFrame
from .messages import MASK_TOPIC, OVERLAY_TOPIC, POLYGON_TOPIC, image_msg, output_topic, polygon_msg
from .node_config import NodeConfig, load_params_yaml
from .pipeline import STAGES, Pipeline

POLYGON_STAMPED = "geometry_msgs/msg/PolygonStamped"


@dataclass
class ReplaySummary:
    frames: int = 0
    bad_frames: int = 0
    bad_reasons: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    stages_ms_p50: dict[str, float] = field(default_factory=dict)
    output_counts: dict[str, int] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def report(self) -> str:
        stages = "  ".join(f"{k} {v:.1f}" for k, v in self.stages_ms_p50.items())
        bad = f" ({', '.join(f'{k}={v}' for k, v in sorted(self.bad_reasons.items()))})" if self.bad_frames else ""
        return f"{self.frames} frames in {self.seconds:.1f} s ({self.fps:.1f} fps), {self.bad_frames} bad{bad}\nper-stage ms p50: {stages}"


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
    T = TYPESTORE.types
    image_cls, stamped, polygon, point = T[IMAGE], T[POLYGON_STAMPED], T["geometry_msgs/msg/Polygon"], T["geometry_msgs/msg/Point32"]
    summary = ReplaySummary()
    stage_times: dict[str, list[float]] = {s: [] for s in STAGES}
    total = sum(n for t, n in count_messages(in_bag).items() if t in image_topics)
    start = time.perf_counter()
    with BagWriter(out_bag, storage) as bag, tqdm(total=total, desc="replay", unit="frame", disable=not progress) as bar:
        for m in read_messages(in_bag):
            bag.write(m.topic, m.msgtype, m.timestamp, m.msg)  # inputs pass through unchanged
            if m.topic not in image_topics:
                continue
            bar.update(1)
            try:
                result = pipeline.process(m.msg)
            except BadFrame as exc:
                summary.bad_frames += 1
                summary.bad_reasons[exc.reason] = summary.bad_reasons.get(exc.reason, 0) + 1
                continue
            ns = camera_namespace(m.topic)
            header = m.msg.header
            bag.write(output_topic(ns, MASK_TOPIC), IMAGE, m.timestamp, image_msg(image_cls, header, result.mask, "mono8", numpy_data=True))
            if cfg.publish_overlay:
                overlay = pipeline.overlay_bgr(result, cfg.overlay_alpha)
                bag.write(output_topic(ns, OVERLAY_TOPIC), IMAGE, m.timestamp, image_msg(image_cls, header, overlay, "bgr8", numpy_data=True))
            vertices = result.ego.outer if result.ego is not None else None
            bag.write(output_topic(ns, POLYGON_TOPIC), POLYGON_STAMPED, m.timestamp, polygon_msg(stamped, polygon, point, header, vertices))
            summary.frames += 1
            for s in STAGES:
                stage_times[s].append(result.timings_ms.get(s, 0.0))
    summary.seconds = time.perf_counter() - start
    summary.stages_ms_p50 = {s: float(np.median(v)) for s, v in stage_times.items() if v}
    summary.output_counts = dict(bag.counts)
    return summary
