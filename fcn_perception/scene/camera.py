"""One camera's workflow, the same live and offline (no ROS): the node and replay are adapters over it.

A camera owns what happens to its frames between a message arriving and its outputs leaving: the
header checks, the choice of camera pose (TF, else the ``camera_pose`` parameter, else none — never
a guess), the CameraInfo checks, the pipeline run with every failure counted by reason, and the
counters that diagnostics and replay's summary both read. The node adds subscriptions, TF lookups
and publishing; replay adds reading and writing bags.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from fcn_perception.inference.base import InferenceError
from fcn_perception.inference.segmenter import EngineBuilding
from fcn_perception.scene.drivable import MaskSmoother
from fcn_perception.scene.ground import GroundConfig
from fcn_perception.scene.image_codec import BadFrame, header_warnings
from fcn_perception.scene.pipeline import STAGES, CameraState, FrameResult, Pipeline, Segmented
from fcn_perception.stats import percentiles

#: What a served frame is timed in: the pipeline's stages and handing the outputs over (publish/write).
SERVED_STAGES = (*STAGES, "publish")
BAD_LOG_PERIOD_S = 5.0  # one log line per camera per period at most: a broken driver must not flood the log
Pose = tuple  # (xyz, rpy, optical rotation 3x3 or None) of the camera in base_frame


@dataclass
class CameraCounters:
    """What happens to a camera's frames. ``window`` restarts at every diagnostics message; ``keep``
    bounds the latency/stage history (the node's rolling window; replay keeps every frame)."""

    stages: tuple[str, ...] = SERVED_STAGES
    keep: int | None = 300
    received: int = 0
    published: int = 0
    lane_frames: int = 0  # served frames with lane points on the ground (a pose and a lane class)
    lanes_both: int = 0  # ... of which both ego boundaries were found
    dropped: int = 0
    bad: int = 0
    lost: int = 0  # sent by the camera's publisher, never taken (its sequence numbers skipped)
    bad_reasons: dict[str, int] = field(default_factory=dict)
    drop_reasons: dict[str, int] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)  # served, with a header problem
    latencies_ms: deque = field(init=False)
    stages_ms: dict[str, deque] = field(init=False)
    confidences: deque = field(init=False)  # each served frame's mean confidence over its drivable pixels
    window: dict[str, int] = field(default_factory=lambda: {"received": 0, "published": 0, "dropped": 0, "bad": 0, "lost": 0, "warnings": 0})

    def __post_init__(self) -> None:
        self.latencies_ms = deque(maxlen=self.keep)
        self.stages_ms = {s: deque(maxlen=self.keep) for s in self.stages}
        self.confidences = deque(maxlen=self.keep)
        self._lock = threading.Lock()  # the executor counts arrivals while the worker counts outcomes

    def count(self, key: str, reason: str = "", n: int = 1) -> None:
        with self._lock:
            setattr(self, key, getattr(self, key) + n)
            self.window[key] += n
            reasons = {"bad": self.bad_reasons, "dropped": self.drop_reasons}.get(key)
            if reasons is not None and reason:
                reasons[reason] = reasons.get(reason, 0) + 1

    def warn(self, reason: str) -> None:
        with self._lock:
            self.warnings[reason] = self.warnings.get(reason, 0) + 1
            self.window["warnings"] += 1

    def served(self, latency_ms: float, timings_ms: dict[str, float], confidence: float | None = None) -> None:
        with self._lock:
            self.published += 1
            self.window["published"] += 1
            self.latencies_ms.append(latency_ms)
            for stage in self.stages:
                self.stages_ms[stage].append(timings_ms.get(stage, 0.0))
            if confidence is not None:
                self.confidences.append(confidence)

    def take_window(self) -> dict[str, int]:
        with self._lock:
            window, self.window = self.window, dict.fromkeys(self.window, 0)
        return window

    def latency(self) -> dict[str, float]:
        with self._lock:
            return percentiles(self.latencies_ms or [0.0], (50, 95), digits=1)

    def stage_p50(self) -> dict[str, float]:
        with self._lock:
            return {s: percentiles(v, (50,), digits=2)["p50"] for s, v in self.stages_ms.items() if v}

    def mean_confidence(self) -> float | None:
        """Mean drivable-region confidence of the kept frames (None: no frame had one)."""
        with self._lock:
            return round(float(np.mean(self.confidences)), 4) if self.confidences else None


@dataclass
class CameraSummary:
    """A camera's totals as replay's summary (and a corpus record) reports them: a snapshot of its
    :class:`CameraCounters` and ground state."""

    frames: int = 0
    masks: int = 0
    bad_frames: int = 0
    bad_reasons: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    drop_reasons: dict[str, int] = field(default_factory=dict)
    header_warnings: dict[str, int] = field(default_factory=dict)
    ground_status: str = ""
    pose_source: str = ""
    stages_ms_p50: dict[str, float] = field(default_factory=dict)
    #: mean over the served frames of each one's mean confidence on its drivable pixels (None: the
    #: model has no confidence output, or no frame had drivable pixels)
    drivable_confidence: float | None = None
    #: share of the frames with lane points where both ego boundaries were found (None: no such frame)
    ego_lanes_both: float | None = None
    video: str = ""  # replay --video: the overlay video written for this camera
    video_frames: int = 0


@dataclass
class Outcome:
    """What became of one frame: a result to publish, or why there is none."""

    result: FrameResult | None = None
    reason: str = ""  # bad or dropped frame: the counter's key
    detail: str = ""
    fault: bool = False  # the backend failed (counts toward the failure limit), not the input
    log: str = ""  # a line worth logging now (throttled, or a change of state)


class CameraWorkflow:
    """One camera of the node or of a replayed bag: everything between its messages and its outputs."""

    def __init__(
        self, topic: str, index: int, param_pose: Pose | None, ground_cfg: GroundConfig, smoothing: float, why_no_info: str, keep: int | None = 300
    ) -> None:
        self.topic, self.index = topic, index  # index: position in image_topics (selects its camera_pose)
        self.param_pose = param_pose  # (xyz, rpy) from the camera_pose parameter, or None: not set
        self.ground_cfg = ground_cfg
        self.state = CameraState.for_camera(why_no_info, smoothing)
        self.counters = CameraCounters(keep=keep)
        self.info = None  # the latest CameraInfo
        self.ground_error = ""  # a calibrated camera whose frames still cannot be projected (e.g. resolution mismatch)
        self.last_stamp_ns: int | None = None
        self.last_sequence: tuple[bytes | None, int] | None = None  # (publisher, its sequence number) of the last frame
        self._last_bad_log = -float("inf")

    # -- arrival -------------------------------------------------------------------------------
    def received(self, header, sequence: int | None = None, publisher: bytes | None = None) -> None:
        """Count a frame in, with its header problems (served anyway: consumers must hear of them).

        ``sequence``: the frame's number in its publisher's sequence where the transport says it (None:
        unknown); ``publisher``: that publisher's id where the transport says it (None: the caller
        vouches that one publisher writes the topic). Numbers skipped since the same publisher's last
        frame are frames sent that never arrived — lost on the network, or overwritten in the
        subscription's queue while the process was busy — counted as lost: without them a frame could
        vanish between the camera and the node with no counter to show it."""
        last = self.last_sequence
        if sequence is not None and last is not None and publisher == last[0] and sequence > last[1] + 1:
            self.counters.count("lost", n=sequence - last[1] - 1)
        self.last_sequence = None if sequence is None else (publisher, sequence)  # another publisher, or one started anew: no gap
        try:
            warnings, stamp = header_warnings(header, self.last_stamp_ns)
        except Exception:  # a message without a usable header still gets counted and decoded
            warnings, stamp = ["header_unreadable"], self.last_stamp_ns
        self.counters.count("received")
        self.last_stamp_ns = stamp
        for w in warnings:
            self.counters.warn(w)

    def unreadable(self, exc: Exception) -> None:
        """A message that does not even deserialize: received, and a bad frame."""
        self.counters.count("received")
        self.bad(f"unreadable_message ({exc.__class__.__name__})", str(exc))

    def dropped(self, reason: str) -> None:
        """A frame replaced before it was served (``newer_frame``)."""
        self.counters.count("dropped", reason)

    def set_smoothing(self, value: float) -> None:
        """A new ``temporal_smoothing``: the average starts again."""
        self.state.smoother = MaskSmoother(value)

    # -- pose and calibration --------------------------------------------------------------------
    def calibrate(self, tf: np.ndarray | None, tf_note: str) -> str | None:
        """Take the pose for this frame, by the one rule: TF (``tf``: base_frame -> the image's optical
        frame, 4x4; ``tf_note``: where it came from), else the camera_pose parameter, else none
        (``tf_note`` then says why TF had none). Returns a line to log when the ground outputs changed."""
        if self.info is None:
            return None
        if tf is not None:
            changed = self.state.calibrate(self.info, self.ground_cfg, tuple(tf[:3, 3]), (0.0, 0.0, 0.0), tf[:3, :3], tf_note)
        elif self.param_pose is not None:
            changed = self.state.calibrate(self.info, self.ground_cfg, *self.param_pose, None, "camera_pose parameter")
        else:
            changed = self.state.no_pose(f"no camera pose: {tf_note}, and camera_pose is not set")
        return f"ground outputs {self.state.ground_status}" if changed else None

    def ground_report(self) -> tuple[str, bool]:
        """(status of the ground outputs, whether it is worth a WARN)."""
        if self.ground_error:
            return f"disabled: {self.ground_error}", True
        return self.state.ground_status, self.state.calibration_refused

    # -- one frame -----------------------------------------------------------------------------
    def segment(self, pipeline: Pipeline, msg, stamp_s: float | None) -> tuple[Segmented | None, Outcome | None]:
        """A message's network part (:meth:`Pipeline.segment_msg`, for a frame stamped ``stamp_s``):
        (its result, None), or (None, the outcome that counts why there is none)."""
        return self._counted(lambda: pipeline.segment_msg(msg, self.state, stamp_s))

    def finish(self, pipeline: Pipeline, part: Segmented) -> Outcome:
        """The rest of the frame (:meth:`Pipeline.finish`), at ``state.stamp_s``; every failure is
        counted by reason, none escapes."""
        result, failed = self._counted(lambda: pipeline.finish(part, self.state))
        if failed is not None:
            return failed
        out = Outcome(result)
        error = result.ground_error if self.state.ground is not None else ""
        if error != self.ground_error:  # logged when it starts and when it ends, not per frame
            self.ground_error = error
            out.log = f"{self.topic}: ground outputs skipped: {error}" if error else f"{self.topic}: ground outputs back"
        return out

    def _counted(self, call) -> tuple[object, Outcome | None]:
        """``call()``'s value and None, or None and the outcome counting its failure: none escapes."""
        try:
            return call(), None
        except EngineBuilding as exc:  # the backend for this size is being made off the serving path
            self.counters.count("dropped", "engine_building")
            return None, Outcome(reason="engine_building", detail=str(exc), log=self._throttled(f"{self.topic}: dropped a frame: {exc}"))
        except BadFrame as exc:
            return None, self.bad(exc.reason, str(exc))
        except InferenceError as exc:
            out = self.bad("inference_error", str(exc))
            out.fault = True
            return None, out
        except Exception as exc:  # a bug in post-processing must not stop the node either
            return None, self.bad("processing_error", f"{exc.__class__.__name__}: {exc}")

    def bad(self, reason: str, detail: str) -> Outcome:
        self.counters.count("bad", reason)
        return Outcome(reason=reason, detail=detail, log=self._throttled(f"{self.topic}: dropped bad frame ({detail}); {self.counters.bad} bad frames so far"))

    def served(self, latency_ms: float, result: FrameResult) -> None:
        self.counters.served(latency_ms, result.timings_ms, result.drivable_confidence)
        if result.ego_lane is not None:
            with self.counters._lock:
                self.counters.lane_frames += 1
                self.counters.lanes_both += result.ego_lane.found == 2

    def _throttled(self, line: str) -> str:
        now = time.monotonic()
        if now - self._last_bad_log < BAD_LOG_PERIOD_S:
            return ""
        self._last_bad_log = now
        return line

    # -- reports -------------------------------------------------------------------------------
    def summary(self) -> CameraSummary:
        c = self.counters
        return CameraSummary(
            frames=c.received,
            masks=c.published,
            bad_frames=c.bad,
            bad_reasons=dict(c.bad_reasons),
            dropped=c.dropped,
            drop_reasons=dict(c.drop_reasons),
            header_warnings=dict(c.warnings),
            ground_status=self.ground_report()[0],
            pose_source=self.state.pose_source,
            stages_ms_p50=c.stage_p50(),
            drivable_confidence=c.mean_confidence(),
            ego_lanes_both=round(c.lanes_both / c.lane_frames, 4) if c.lane_frames else None,
        )
