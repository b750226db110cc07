"""The one per-frame sequence — network, pose, the rest of the pipeline, emit, served — that the
node, replay, compare and the label export all run, so a bad frame is counted the same way
everywhere. The network part reads none of the camera's state but its kept stride-32 scores, so the
node may run two of one camera's frames through it at once; the rest waits for the frame's turn.

A :class:`Sink` receives what a served frame produced: the node's publishers, replay's bag writer,
compare's collector, the label exporter. The loop owns the order and the counting; the sink only
emits. A failing sink costs that frame (``publish_error``), never the caller.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from fcn_perception.scene.backend_guard import BackendGuard
from fcn_perception.scene.camera import CameraWorkflow, Outcome
from fcn_perception.scene.pipeline import FrameResult, Pipeline

#: (4x4 base_frame -> camera or None, where it came from or why there is none), for a frame's header
PoseSource = Callable[[object], tuple[np.ndarray | None, str]]
#: the car's 4x4 pose in odom_frame at a frame's stamp, or None where TF does not have it
OdomSource = Callable[[object], np.ndarray | None]


class Sink(Protocol):
    def emit(self, cam: CameraWorkflow, msg, result: FrameResult) -> None:
        """Send, write or keep what one served frame produced (``msg``: the input message)."""


@dataclass
class Served:
    """What became of one frame, and the lines worth logging (level, line), in order."""

    result: FrameResult | None = None
    logs: list[tuple[str, str]] = field(default_factory=list)


def serve_frame(
    cam: CameraWorkflow,
    pipeline: Pipeline,
    msg,
    pose: PoseSource,
    sink: Sink,
    guard: BackendGuard | None = None,
    received_s: float | None = None,
    odom: OdomSource | None = None,
    in_turn: Callable[[], None] | None = None,
) -> Served:
    """One frame, whatever happens: emitted and counted as served, or counted with its reason.
    ``received_s``: ``time.monotonic()`` at arrival, for the latency (replay has none: 0); ``odom``:
    the car's motion for the lane tracker (none: frame to frame); ``in_turn``: called once the
    network is done, before the camera's state is read or changed (the node's workers: it returns
    when the camera's earlier frames are served, so one camera's frames may run the network side
    by side and still leave in order)."""
    out = Served()
    try:  # a malformed header is this frame's problem, not the caller's
        stamp_s = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
    except Exception as exc:
        return _bad(cam, out, f"header: {exc.__class__.__name__}: {exc}")
    part, failed = cam.segment(pipeline, msg, stamp_s)
    if failed is None and in_turn is not None:
        in_turn()
    done = failed or _finish(cam, pipeline, msg, part, stamp_s, pose, odom, out)
    if done is None:
        return out
    if done.log:
        out.logs.append(("warning", done.log))
    if done.fault and guard is not None and (line := guard.fault(cam.index, done.detail)[1]):
        out.logs.append(("error", line))
    if done.result is None:
        return out
    if guard is not None:
        guard.ok(cam.index)
    t = time.perf_counter()
    try:  # a sink that fails (a publisher at shutdown, a full disk) costs this frame only
        sink.emit(cam, msg, done.result)
    except Exception as exc:
        if line := cam.bad("publish_error", f"{exc.__class__.__name__}: {exc}").log:
            out.logs.append(("warning", line))
        return out
    done.result.timings_ms["publish"] = (time.perf_counter() - t) * 1e3
    cam.served((time.monotonic() - received_s) * 1e3 if received_s is not None else 0.0, done.result)
    out.result = done.result
    return out


def _finish(cam: CameraWorkflow, pipeline: Pipeline, msg, part, stamp_s: float, pose: PoseSource, odom: OdomSource | None, out: Served) -> Outcome | None:
    """The frame's pose, then the rest of the pipeline (the camera's state is this frame's meanwhile);
    None where the pose lookup failed (counted, its line in ``out``)."""
    try:
        line = cam.calibrate(*pose(msg.header)) if cam.info is not None else None
    except Exception as exc:
        _bad(cam, out, f"pose lookup: {exc.__class__.__name__}: {exc}")
        return None
    if line:  # once per change of calibration, not per frame
        out.logs.append(("info" if cam.state.ground is not None else "warning", f"{cam.topic}: {line}"))
    cam.state.stamp_s, cam.state.odom_pose = stamp_s, _odom_pose(odom, msg.header)
    return cam.finish(pipeline, part)


def _bad(cam: CameraWorkflow, out: Served, detail: str) -> Served:
    if bad := cam.bad("processing_error", detail).log:
        out.logs.append(("warning", bad))
    return out


def _odom_pose(odom: OdomSource | None, header) -> np.ndarray | None:
    """The car's pose for the tracker; a TF that cannot answer is no pose, never this frame's failure."""
    if odom is None:
        return None
    try:
        return odom(header)
    except Exception:
        return None


class KeepLast:
    """The sink of compare and the label export: the served frame's result, kept for the caller."""

    result: FrameResult | None = None

    def emit(self, cam: CameraWorkflow, msg, result: FrameResult) -> None:
        self.result = result
