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

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fcn_perception.bags.bag_io import TYPESTORE, BagWriter, rosbags_message
from fcn_perception.bags.label_export import Candidate, check_out_dir, spread_lowest, write_label_set
from fcn_perception.bags.recording import open_recording
from fcn_perception.bags.tf_graph import TF_TOPICS, TfGraph
from fcn_perception.ros.messages import OUTPUTS, frame_messages
from fcn_perception.ros.node_config import NodeConfig, load_params_yaml
from fcn_perception.ros.topics import CAMERA_INFO, IMAGE_TYPES, camera_info_topic, camera_namespace, is_output_topic, output_topic, stamp_ns
from fcn_perception.scene.camera import CameraSummary, CameraWorkflow
from fcn_perception.scene.pipeline import Pipeline
from fcn_perception.scene.video import VideoOut, recorded_fps


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
            lines.append(
                f"{topic}: {c.masks}/{c.frames} masks, {c.bad_frames} bad{bad}; drivable confidence {sure}; ground outputs {c.ground_status}; ms p50: {stages}"
            )
            if c.video:
                lines.append(f"  video {c.video} ({c.video_frames} frames)")
        for topic, why in self.skipped_topics.items():
            lines.append(f"skipped {topic}: {why}")
        if self.replaced_messages:
            lines.append(f"replaced {self.replaced_messages} recorded output messages with new ones")
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


def camera_topics(rec) -> list[str]:
    """A recording's cameras: its Image/CompressedImage topics outside the node's own output names."""
    return [t for t, c in rec.connections.items() if c.msgtype in IMAGE_TYPES and not is_output_topic(t)]


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def replay(
    in_bag: str | Path,
    out_bag: str | Path,
    topics: list[str] | None = None,
    params: str | Path | None = None,
    overrides: dict | None = None,
    storage: str = "mcap",
    progress: bool = True,
    overlay: bool = False,
    video_dir: str | Path | None = None,
    summary_json: str | Path | None = None,
    pipeline: Pipeline | None = None,
    on_frame: Callable[[], None] | None = None,
    confidence: bool = False,
    uncertain: tuple[int, float] | None = None,
    export_uncertain: str | Path | None = None,
) -> ReplaySummary:
    """One recording to one output bag. ``pipeline``: one already loaded with these parameters (a
    corpus worker's, loaded once for all its bags); ``on_frame``: called per camera frame (progress);
    ``confidence``: write each frame's confidence image; ``uncertain`` (top, min_gap_s): keep each
    camera's least sure frames in the summary, and with ``export_uncertain`` write them as a
    labelling set (label_export.py)."""
    if export_uncertain:
        check_out_dir(export_uncertain)
        if uncertain is None:
            raise ValueError("export_uncertain needs uncertain=(top, min_gap_s)")
    values = load_params_yaml(params) if params else {}
    values.update(overrides or {})
    cfg = NodeConfig.from_dict(values)
    rec = open_recording(in_bag)
    available = {t: c.msgtype for t, c in rec.connections.items()}
    summary = ReplaySummary(input=str(in_bag), output=str(out_bag))
    if topics:
        missing = [t for t in topics if t not in available]
        if missing:
            raise ValueError(f"topics not in {in_bag}: {missing} (it has {sorted(available)})")
        wrong = [t for t in topics if available[t] not in IMAGE_TYPES]
        if wrong:
            raise ValueError(f"not image topics: {wrong}")
        image_topics = list(topics)
    else:
        image_topics = camera_topics(rec)
        for t in (t for t, m in available.items() if m in IMAGE_TYPES and t not in image_topics):
            summary.skipped_topics[t] = "an output of fcn_perception (name it with --topics to segment it anyway)"
    if not image_topics:
        raise ValueError(f"{in_bag} has no camera topics (sensor_msgs/Image or CompressedImage outside segmentation/ and drivable_area/)")
    pipeline = pipeline or Pipeline(cfg.segmenter(), cfg.drivable(), cfg.max_pixels)
    order = {t: i for i, t in enumerate(dict.fromkeys(cfg.image_topics))}  # camera_pose is indexed like image_topics
    unposed = [t for t in image_topics if t not in order]
    if len(cfg.camera_pose) > 6 and unposed:
        raise ValueError(f"camera_pose gives one pose per image_topics entry, and {unposed} is not in image_topics {cfg.image_topics}")
    ground = cfg.ground()
    cams = {
        t: CameraWorkflow(t, order.get(t, 0), cfg.pose(order.get(t, 0)), ground, cfg.temporal_smoothing, f"no {camera_info_topic(t)} in the bag", keep=None)
        for t in image_topics
    }
    by_info = {camera_info_topic(t): t for t in image_topics if available.get(camera_info_topic(t)) == CAMERA_INFO}
    tf = TfGraph()
    use_tf = cfg.use_tf and any(t in available for t in TF_TOPICS)
    keys = ["mask", "mask_compressed", "polygon", "polygon_ground", "grid", "markers", "lane_points"]
    keys += (["overlay_compressed"] if overlay else []) + (["confidence"] if confidence else [])
    written = {output_topic(camera_namespace(t), OUTPUTS[k].topic) for t in image_topics for k in keys}

    # CameraInfo and /tf_static usually come with or after the first frames: take them up front so the
    # first frames get ground outputs too; later ones update them in recorded order.
    if by_info or use_tf:
        for m in rec.messages(set(by_info) | {"/tf_static"}):
            with contextlib.suppress(Exception):  # a malformed message is skipped here and counted below
                if m.topic in by_info and cams[by_info[m.topic]].info is None:
                    cams[by_info[m.topic]].info = TYPESTORE.deserialize_cdr(m.data, CAMERA_INFO)
                elif m.topic == "/tf_static" and use_tf:
                    tf.add(TYPESTORE.deserialize_cdr(m.data, m.msgtype), static=True)

    def bag_pose(header) -> tuple[np.ndarray | None, str]:
        """The bag's TF at the image's stamp, by the node's rules (the camera then falls back to camera_pose)."""
        if not use_tf:
            return None, "no TF in the bag"
        m = tf.lookup(cfg.base_frame, header.frame_id, stamp_ns(header)) if header.frame_id else None
        return (m, "tf in the bag") if m is not None else (None, f"the bag's TF has no {cfg.base_frame} -> {header.frame_id or '(empty frame_id)'}")

    videos: dict[str, VideoOut] = {}
    video_stamps: dict[str, list[int]] = {t: [] for t in image_topics}
    total = sum(rec.counts.get(t, 0) for t in image_topics) or None
    start = time.perf_counter()
    frames_for_video: dict[str, list[np.ndarray]] = {t: [] for t in image_topics} if video_dir else {}
    scores: dict[str, list[Candidate]] = {t: [] for t in image_topics}  # --export-uncertain
    with BagWriter(out_bag, storage, compress=True) as bag, tqdm(total=total, desc="replay", unit="frame", disable=not progress) as bar:
        for m in rec.messages():
            if m.topic in written:
                summary.replaced_messages += 1
                continue
            conn = rec.connections[m.topic]
            bag.write_raw(m.topic, m.msgtype, m.timestamp, m.data, msgdef=conn.msgdef, rihs01=conn.rihs01)  # inputs pass through unchanged
            summary.passed_through += 1
            if m.topic in by_info:
                with contextlib.suppress(Exception):  # an unreadable CameraInfo keeps the previous one
                    cams[by_info[m.topic]].info = TYPESTORE.deserialize_cdr(m.data, CAMERA_INFO)
                continue
            if m.topic in TF_TOPICS and use_tf:
                with contextlib.suppress(Exception):  # a malformed TF message is skipped, as tf2 would
                    tf.add(TYPESTORE.deserialize_cdr(m.data, m.msgtype), static=m.topic == "/tf_static")
                continue
            cam = cams.get(m.topic)
            if cam is None:
                continue
            bar.update(1)
            if on_frame is not None:
                on_frame()
            try:
                msg = TYPESTORE.deserialize_cdr(m.data, m.msgtype)
                cam.received(msg.header)
            except Exception as exc:  # a message that does not even deserialize: counted, never fatal
                cam.counters.count("received")
                cam.bad(f"unreadable_message ({exc.__class__.__name__})", str(exc))
                continue
            cam.calibrate(*bag_pose(msg.header))
            out = cam.process(pipeline, msg)
            if out.result is None:
                continue
            t = time.perf_counter()
            picture = pipeline.overlay_bgr(out.result, cfg.overlay_alpha) if (overlay or video_dir) else None
            outs = frame_messages(
                rosbags_message,
                msg.header,
                out.result,
                cfg.base_frame,
                picture if overlay else None,
                raw_mask=True,
                mask_png=True,
                overlay_jpeg=True,
                confidence=confidence,
            )
            ns = camera_namespace(m.topic)
            for key, o in outs.items():
                bag.write(output_topic(ns, OUTPUTS[key].topic), OUTPUTS[key].msgtype, m.timestamp, o)
            if video_dir:
                frames_for_video[m.topic].append(_jpeg(picture))  # the rate is known only at the end
                video_stamps[m.topic].append(stamp_ns(msg.header))
            out.result.timings_ms["publish"] = (time.perf_counter() - t) * 1e3
            cam.served(0.0, out.result)
            sure = out.result.drivable_confidence
            if uncertain and sure is not None:  # a frame with no drivable pixels has nothing to be unsure of
                scores[m.topic].append(Candidate(str(in_bag), m.topic, stamp_ns(msg.header), m.timestamp, sure, sure))
    summary.cut_short = rec.cut_short
    summary.seconds = time.perf_counter() - start
    summary.cameras = {t: cam.summary() for t, cam in cams.items()}
    if video_dir:
        for t, jpegs in frames_for_video.items():
            if not jpegs:
                continue
            name = (camera_namespace(t).strip("/") or "camera").replace("/", "_")
            video = videos[t] = VideoOut(Path(video_dir) / f"{name}_overlay.mp4", recorded_fps(video_stamps[t]))
            import cv2

            for data in jpegs:
                video.write(cv2.imdecode(data, cv2.IMREAD_COLOR))
            video.close()
            summary.cameras[t].video, summary.cameras[t].video_frames = str(video.path), video.frames
    if uncertain:
        top, gap = uncertain
        kept = [c for t in image_topics for c in spread_lowest(scores[t], top, gap)]
        if export_uncertain:  # this recording's pick: over its cameras' candidates
            kept = spread_lowest(kept, top, gap)
            summary.exported = str(write_label_set(export_uncertain, kept, pipeline))
        summary.uncertain = [c.to_json() for c in kept]
    summary.output_counts = dict(bag.counts)
    summary.input_bytes, summary.output_bytes = _size(Path(in_bag)), _size(Path(out_bag))
    if summary_json:
        Path(summary_json).parent.mkdir(parents=True, exist_ok=True)
        Path(summary_json).write_text(json.dumps(summary.to_json(), indent=2) + "\n")
    return summary


def _jpeg(bgr: np.ndarray) -> np.ndarray:
    """Frames for a video are held as JPEG until the camera's rate is known: a tenth of the memory."""
    import cv2

    return cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
