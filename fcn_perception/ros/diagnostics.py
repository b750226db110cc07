"""Per-camera health for /diagnostics, decided from the camera's counters and the backend's health
(no ROS types here), and the one reader of a DiagnosticArray that the demo, the load harness and the
tests share."""

from __future__ import annotations

from fcn_perception.scene.backend_guard import BackendHealth
from fcn_perception.scene.camera import CameraWorkflow

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels
#: a camera that loses this share of a window's frames to newer ones while the node's CPU is under
#: ``ROOM_CPU_PCT`` busy is served one frame at a time slower than it sends, with a core idle between
#: its frames (one 480x360 camera on an AVX2-only EPYC: a third of the CPU idle, BENCHMARKS.md,
#: eighteenth sitting); its status then says what to set
SLOW_DROPPED_SHARE, ROOM_CPU_PCT = 0.1, 80.0


def camera_status(
    cam: CameraWorkflow, window: dict[str, int], period: float, backend: BackendHealth, spare_streams: int | None = None
) -> tuple[int, str, dict]:
    """(level, message, values) of one camera: the first matching condition, most severe first.
    ``spare_streams``: the ``inference_streams`` that would let the camera's next frame start beside
    its last, where the CPU has room for it (None: it has not, or its frames overlap already)."""
    c = cam.counters
    ground, ground_warn = cam.ground_report()
    building = ", ".join(f"{w}x{h}" for w, h in backend.building)
    if backend.busy_s > backend.stall_timeout:  # a call that hangs cannot be interrupted; it can be reported
        level, message = ERROR, f"processing stalled: the current frame has been in the pipeline for {backend.busy_s:.1f} s"
    elif backend.consecutive >= backend.limit:  # the backend, not the input: every camera is affected
        level, message = ERROR, f"backend failing: {backend.consecutive} inference errors in a row ({backend.last_fault})"
    elif building:  # a long build runs off the serving path: a warning, not a stall
        level, message = WARN, f"engine building for {building}: frames of that size are dropped meanwhile"
    elif backend.fell_back:
        level, message = WARN, f"running on the fallback backend {backend.name} after inference errors ({backend.last_fault})"
    elif window["received"] == 0:
        level, message = WARN, "no input"
    elif window["bad"] or window["dropped"] or window["lost"]:
        lost = f", {window['lost']} lost before the node took them" if window["lost"] else ""
        level, message = WARN, f"{window['dropped']} dropped, {window['bad']} bad{lost} in the last {period:.1f} s"
        if spare_streams and window["dropped"] >= SLOW_DROPPED_SHARE * window["received"]:
            message += (
                f"; frames one at a time are slower than the camera and the CPU has room: inference_streams {spare_streams}"
                " runs its next frame beside its last (README, 'One camera on a slow CPU')"
            )
    elif window["warnings"]:
        level, message = WARN, f"{window['warnings']} frames with header problems in the last {period:.1f} s"
    elif ground_warn:  # image outputs go on, ground ones stop
        level, message = WARN, f"ground outputs {ground}"
    else:
        level, message = OK, "ok"
    lat, stages, sure = c.latency(), c.stage_p50(), c.mean_confidence()
    values = {
        "input_rate_hz": f"{window['received'] / period:.2f}",
        "output_rate_hz": f"{window['published'] / period:.2f}",
        "latency_p50_ms": f"{lat['p50']:.1f}",
        "latency_p95_ms": f"{lat['p95']:.1f}",
        "frames_received": str(c.received),
        "frames_published": str(c.published),
        "frames_dropped": str(c.dropped),
        "frames_bad": str(c.bad),
        "frames_lost": str(c.lost),
        "bad_reasons": ", ".join(f"{k}={v}" for k, v in sorted(c.bad_reasons.items())) or "none",
        "drop_reasons": ", ".join(f"{k}={v}" for k, v in sorted(c.drop_reasons.items())) or "none",
        "header_warnings": ", ".join(f"{k}={v}" for k, v in sorted(c.warnings.items())) or "none",
        "backend": backend.name,
        "precision": backend.precision or "n/a",
        "inference_streams": str(backend.streams),
        "backend_faults": str(backend.faults),
        "backend_consecutive_faults": str(backend.consecutive),
        "backend_fell_back": str(backend.fell_back).lower(),
        "current_frame_age_s": f"{backend.busy_s:.2f}",
        "engine_building": building or "none",
        "ground_outputs": ground,
        # how sure the model is where the car may drive (recent frames; n/a: no confidence output)
        "drivable_confidence_mean": "n/a" if sure is None else f"{sure:.3f}",
        "ego_lanes_both": f"{c.lanes_both}/{c.lane_frames}",
        # frames that took an earlier frame's stride-32 scores, of those the network ran (coarse_reuse_ms)
        "coarse_reused": cam.state.coarse.share(),
        **{f"{s}_ms_p50": f"{stages.get(s, 0.0):.2f}" for s in c.stages},
    }
    return level, message, values


def fusion_status(warn: bool, values: dict[str, str]) -> tuple[int, str, dict]:
    """The fused grid's status: WARN while a camera is stale (it fades out) or none takes part."""
    if values["fusion_cameras"] == "none":
        return WARN, "no camera takes part in the fused grid yet (a camera needs CameraInfo and a pose)", values
    if warn:
        return WARN, f"stale cameras fade out of the fused grid: {values['fusion_stale_cameras']}", values
    return OK, f"fused from {values['fusion_cameras']} in {values['fusion_frame']}", values


def read_statuses(arr) -> dict[str, dict]:
    """A DiagnosticArray (rclpy or rosbags) as {status name: {key: value, ..., "level": int, "message": str}}."""
    out = {}
    for s in arr.status:
        level = s.level if isinstance(s.level, int) else int.from_bytes(s.level, "little")
        out[s.name] = {kv.key: kv.value for kv in s.values} | {"level": level, "message": s.message}
    return out


def node_connected(values: dict | None, outputs: list[str]) -> bool:
    """A camera's status (as :func:`read_statuses` gives it) says DDS matched, on the node's side, its
    subscription to a camera publisher and each of ``outputs`` (the registry's keys) to a reader:
    what the demo and the load harness wait on before their first frame."""
    if not values or int(values.get("camera_publishers", 0)) < 1:
        return False
    return set(outputs) <= set(values.get("outputs_read", "").split(", "))
