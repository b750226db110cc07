"""``fcn-perception replay IN_BAG --out OUT_BAG``: run the pipeline over a recorded drive, offline.

The output bag holds every input message unchanged (same topic, type, timestamp and serialized
bytes, types no typestore knows included) plus the node's outputs under the topic names the node
uses, with the original timestamps, so ``ros2 bag play``, RViz and Foxglove open it like a live
recording. Masks are stored as the node sends them (raw mono8 and its lossless PNG twin,
``mask/compressed``), overlays as JPEG only when asked, in zstd-compressed chunks, so an output bag
stays small. Camera poses come from the bag's ``/tf_static`` and ``/tf`` by
the node's rules (else ``camera_pose``; never a guess). Topics under the node's own output names
are not cameras; recorded outputs on the topics replay writes are replaced by the new ones.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from fcn_perception.bags.bag_io import BagWriter
from fcn_perception.bags.camera_feed import CameraFeed, Cameras
from fcn_perception.bags.label_export import Candidate, check_out_dir, spread_lowest, write_label_set
from fcn_perception.bags.recording import RawMessage, open_recording
from fcn_perception.params.node_config import NodeConfig, node_config
from fcn_perception.ros import outputs
from fcn_perception.ros.cdr import rosbags_message
from fcn_perception.ros.fused import Fusion
from fcn_perception.ros.topics import camera_namespace, output_topic, stamp_ns
from fcn_perception.scene.camera import CameraSummary, CameraWorkflow
from fcn_perception.scene.frame_loop import serve_frame
from fcn_perception.scene.pipeline import FrameResult, Pipeline
from fcn_perception.scene.video import StreamingVideo

#: where replay writes the node-level fused outputs (the node: under its own namespace)
FUSED_ROOT = "/"


@dataclass
class ReplayOptions:
    """What a replay writes besides the default outputs, and how."""

    storage: str = "mcap"
    progress: bool = True
    overlay: bool = False  # the overlay as JPEG (segmentation/overlay/compressed)
    confidence: bool = False  # the confidence image
    video_dir: str | Path | None = None  # an overlay video per camera, written as frames arrive
    uncertain: tuple[int, float] | None = None  # (top, min_gap_s): each camera's least sure frames
    export_uncertain: str | Path | None = None  # ... written as a labelling set (label_export.py)
    summary_json: str | Path | None = None

    def asked(self) -> set[str]:
        """The registry's ``ask`` names these options ask for."""
        return {name for name, on in (("overlay", self.overlay), ("confidence", self.confidence)) if on}


@dataclass
class ReplaySummary:
    input: str = ""
    output: str = ""
    cut_short: str = ""  # why the input recording was incomplete ("" = whole)
    cameras: dict[str, CameraSummary] = field(default_factory=dict)
    skipped_topics: dict[str, str] = field(default_factory=dict)  # image-typed topics not treated as cameras, and why
    replaced_messages: int = 0  # recorded outputs on the topics replay writes
    passed_through: int = 0
    seconds: float = 0.0
    output_counts: dict[str, int] = field(default_factory=dict)
    input_bytes: int = 0
    output_bytes: int = 0
    #: --export-uncertain: each camera's least sure frames, spread over the drive (Candidate.to_json)
    uncertain: list[dict] = field(default_factory=list)
    exported: str = ""  # the labelling set written (one recording)
    fused: dict[str, str] = field(default_factory=dict)  # the fused grid: cameras, stale ones, frame, grids written

    @property
    def frames(self) -> int:
        return sum(c.frames for c in self.cameras.values())

    @property
    def bad_frames(self) -> int:
        return sum(c.bad_frames for c in self.cameras.values())

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def report(self) -> str:
        lines = [f"{self.frames} frames in {self.seconds:.1f} s ({self.fps:.1f} fps), {self.bad_frames} bad"]
        if self.cut_short:
            lines.append(f"input was cut short: {self.cut_short}")
        for topic, c in self.cameras.items():
            bad = f" ({', '.join(f'{k}={v}' for k, v in sorted(c.bad_reasons.items()))})" if c.bad_frames else ""
            stages = "  ".join(f"{k} {v:.1f}" for k, v in c.stages_ms_p50.items())
            sure = "n/a" if c.drivable_confidence is None else f"{c.drivable_confidence:.3f}"
            sure += "" if c.ego_lanes_both is None else f"; both ego lane boundaries in {c.ego_lanes_both:.0%} of lane frames"
            lines.append(
                f"{topic}: {c.masks}/{c.frames} masks, {c.bad_frames} bad{bad}; drivable confidence {sure}; ground outputs {c.ground_status}; ms p50: {stages}"
            )
            if c.video:
                lines.append(f"  video {c.video} ({c.video_frames} frames)")
        for topic, why in self.skipped_topics.items():
            lines.append(f"skipped {topic}: {why}")
        if self.replaced_messages:
            lines.append(f"replaced {self.replaced_messages} recorded output messages with new ones")
        if self.fused and self.fused["fusion_grids_made"] != "0":
            lines.append(f"fused grid: {self.fused['fusion_grids_made']} written, from {self.fused['fusion_cameras']} in {self.fused['fusion_frame']}")
        elif self.fused:
            lines.append("fused grid: none written (no camera had CameraInfo and a pose)")
        if self.exported:
            lines.append(f"wrote the {len(self.uncertain)} least sure frames to label to {self.exported}")
        if self.input_bytes:
            lines.append(
                f"output bag {self.output_bytes / 1e6:.1f} MB = {self.output_bytes / self.input_bytes:.2f}x the input's {self.input_bytes / 1e6:.1f} MB"
            )
        return "\n".join(lines)

    def to_json(self) -> dict:
        out = asdict(self)
        out.update(frames=self.frames, bad_frames=self.bad_frames, fps=round(self.fps, 2))
        return out


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


class BagSink:
    """The frame loop's sink for replay: the registry's replay outputs into the output bag at the
    input's log time, the overlay into the camera's video, the frame's score for --export-uncertain."""

    def __init__(self, bag: BagWriter, cfg: NodeConfig, pipeline: Pipeline, options: ReplayOptions, in_bag: str, odom=None) -> None:
        self.bag, self.cfg, self.pipeline, self.options, self.in_bag = bag, cfg, pipeline, options, in_bag
        self.keys = outputs.replay_keys(options.asked())
        self.fusion = Fusion(cfg, pipeline.segmenter.classes, odom) if cfg.fusion_rate > 0 else None
        self.videos: dict[str, StreamingVideo] = {}
        self.scores: dict[str, list[Candidate]] = {}
        self.log_time = 0  # of the message being served

    def emit(self, cam: CameraWorkflow, msg, result: FrameResult) -> None:
        picture = functools.cache(lambda: self.pipeline.overlay_bgr(result, self.cfg.overlay_alpha))
        ns = camera_namespace(cam.topic)
        for key, out in outputs.build(self.keys, rosbags_message, msg.header, result, self.cfg.base_frame, picture).items():
            self.bag.write(output_topic(ns, outputs.OUTPUTS[key].topic), outputs.OUTPUTS[key].msgtype, self.log_time, out)
        if self.options.video_dir:
            if cam.topic not in self.videos:
                name = (ns.strip("/") or "camera").replace("/", "_")
                self.videos[cam.topic] = StreamingVideo(Path(self.options.video_dir) / f"{name}_overlay.mp4")
            self.videos[cam.topic].add(picture(), stamp_ns(msg.header))
        if self.fusion is not None and self.fusion.feed(cam, msg.header, result) and self.fusion.due():
            for key, out in self.fusion.messages(rosbags_message, list(outputs.FUSED_OUTPUTS)).items():
                self.bag.write(FUSED_ROOT + outputs.FUSED_OUTPUTS[key].topic, outputs.FUSED_OUTPUTS[key].msgtype, self.log_time, out)
        sure = result.drivable_confidence
        if self.options.uncertain and sure is not None:  # a frame with no drivable pixels has nothing to be unsure of
            self.scores.setdefault(cam.topic, []).append(Candidate(self.in_bag, cam.topic, stamp_ns(msg.header), self.log_time, sure, sure))


class Replay:
    """One recording through the node's frame loop into one output bag."""

    def __init__(self, in_bag: str | Path, cfg: NodeConfig, topics: list[str] | None = None, pipeline: Pipeline | None = None) -> None:
        self.in_bag, self.cfg = str(in_bag), cfg
        self.rec = open_recording(in_bag)
        self.feed = CameraFeed(self.rec, cfg, topics)
        self.pipeline = pipeline or Pipeline.for_config(cfg)
        self.cameras: Cameras = self.feed.workflows()

    def run(self, out_bag: str | Path, options: ReplayOptions, on_frame: Callable[[], None] | None = None) -> ReplaySummary:
        summary = ReplaySummary(input=self.in_bag, output=str(out_bag), skipped_topics=dict(self.feed.skipped))
        written = {output_topic(camera_namespace(t), outputs.OUTPUTS[k].topic) for t in self.feed.topics for k in outputs.replay_keys(options.asked())}
        written |= {FUSED_ROOT + o.topic for o in outputs.FUSED_OUTPUTS.values()} if self.cfg.fusion_rate > 0 else set()
        self.feed.prime(self.cameras)
        total = sum(self.rec.counts.get(t, 0) for t in self.feed.topics) or None
        start = time.perf_counter()
        with BagWriter(out_bag, options.storage, compress=True) as bag, tqdm(total=total, desc="replay", unit="frame", disable=not options.progress) as bar:
            sink = BagSink(bag, self.cfg, self.pipeline, options, self.in_bag, self.feed.fixed_pose)
            for m in self.rec.messages():
                if m.topic in written:  # recorded outputs on the topics replay writes: replaced by the new ones
                    summary.replaced_messages += 1
                    continue
                self._pass_through(bag, m)
                summary.passed_through += 1
                if self.feed.follow(m, self.cameras) or m.topic not in self.cameras:
                    continue
                bar.update(1)
                if on_frame is not None:
                    on_frame()
                if (msg := self.feed.receive(m, self.cameras)) is not None:
                    sink.log_time = m.timestamp
                    serve_frame(self.cameras[m.topic], self.pipeline, msg, self.feed.pose, sink, odom=self.feed.odom)
        summary.cut_short, summary.seconds = self.rec.cut_short, time.perf_counter() - start
        summary.cameras = {t: cam.summary() for t, cam in self.cameras.items()}
        self._finish(summary, sink, options)
        summary.output_counts = dict(bag.counts)
        if sink.fusion is not None:
            summary.fused = sink.fusion.status()[1]
        summary.input_bytes, summary.output_bytes = _size(Path(self.in_bag)), _size(Path(out_bag))
        return summary

    def _pass_through(self, bag: BagWriter, m: RawMessage) -> None:
        """Inputs go out unchanged: topic, type, log time, serialized bytes, the recorder's schema."""
        conn = self.rec.connections[m.topic]
        bag.write_raw(m.topic, m.msgtype, m.timestamp, m.data, msgdef=conn.msgdef, rihs01=conn.rihs01)

    def _finish(self, summary: ReplaySummary, sink: BagSink, options: ReplayOptions) -> None:
        """Close the videos; pick (and write) the least sure frames."""
        for topic, video in sink.videos.items():
            written = video.close()
            summary.cameras[topic].video, summary.cameras[topic].video_frames = str(written.path), written.frames
        if options.uncertain:
            top, gap = options.uncertain
            kept = [c for t in self.feed.topics for c in spread_lowest(sink.scores.get(t, []), top, gap)]
            if options.export_uncertain:  # this recording's pick: over its cameras' candidates
                kept = spread_lowest(kept, top, gap)
                summary.exported = str(write_label_set(options.export_uncertain, kept, self.pipeline, self.cfg))
            summary.uncertain = [c.to_json() for c in kept]


def replay(
    in_bag: str | Path,
    out_bag: str | Path,
    topics: list[str] | None = None,
    params: str | Path | None = None,
    overrides: dict | None = None,
    pipeline: Pipeline | None = None,
    on_frame: Callable[[], None] | None = None,
    **options,
) -> ReplaySummary:
    """One recording to one output bag, with the car's parameters (``params``: a params YAML;
    ``overrides`` on top). ``pipeline``: one already loaded with these parameters (a corpus worker's,
    loaded once for all its bags); ``on_frame``: called per camera frame (progress); ``options``: the
    fields of :class:`ReplayOptions`."""
    opts = ReplayOptions(**options)
    if opts.export_uncertain:
        check_out_dir(opts.export_uncertain)
        if opts.uncertain is None:
            raise ValueError("export_uncertain needs uncertain=(top, min_gap_s)")
    summary = Replay(in_bag, node_config(params, overrides), topics, pipeline).run(out_bag, opts, on_frame)
    if opts.summary_json:
        Path(opts.summary_json).parent.mkdir(parents=True, exist_ok=True)
        Path(opts.summary_json).write_text(json.dumps(summary.to_json(), indent=2) + "\n")
    return summary
