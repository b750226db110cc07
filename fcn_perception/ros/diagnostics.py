"""Per-camera health for /diagnostics, decided from plain counters (no ROS types here), and the one
reader of a DiagnosticArray that the demo, the load harness and the tests share."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels


@dataclass
class CameraCounters:
    """What the node counts per camera; ``window`` restarts at every diagnostics message."""

    stages: tuple[str, ...]
    received: int = 0
    published: int = 0
    dropped: int = 0
    bad: int = 0
    bad_reasons: dict[str, int] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)  # served, with a header problem
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=300))
    stages_ms: dict[str, deque] = field(default_factory=dict)
    window: dict[str, int] = field(default_factory=lambda: {"received": 0, "published": 0, "dropped": 0, "bad": 0, "warnings": 0})

    def __post_init__(self) -> None:
        self.stages_ms = {s: deque(maxlen=300) for s in self.stages}

    def count(self, key: str, reason: str = "") -> None:
        setattr(self, key, getattr(self, key) + 1)
        self.window[key] += 1
        if key == "bad":
            self.bad_reasons[reason] = self.bad_reasons.get(reason, 0) + 1

    def warn(self, reason: str) -> None:
        self.warnings[reason] = self.warnings.get(reason, 0) + 1
        self.window["warnings"] += 1

    def served(self, latency_ms: float, timings_ms: dict[str, float]) -> None:
        self.count("published")
        self.latencies_ms.append(latency_ms)
        for stage in self.stages:
            self.stages_ms[stage].append(timings_ms.get(stage, 0.0))

    def take_window(self) -> dict[str, int]:
        window, self.window = self.window, dict.fromkeys(self.window, 0)
        return window


@dataclass
class BackendHealth:
    name: str
    faults: int = 0
    consecutive: int = 0
    limit: int = 5
    last_fault: str = ""
    fell_back: bool = False
    busy_s: float = 0.0  # how long the current frame has been in the pipeline
    stall_timeout: float = 2.0


def camera_status(c: CameraCounters, window: dict[str, int], period: float, backend: BackendHealth, ground: str, ground_warn: bool) -> tuple[int, str, dict]:
    """(level, message, values) of one camera: the first matching condition, most severe first."""
    if backend.busy_s > backend.stall_timeout:  # a call that hangs cannot be interrupted; it can be reported
        level, message = ERROR, f"processing stalled: the current frame has been in the pipeline for {backend.busy_s:.1f} s"
    elif backend.consecutive >= backend.limit:  # the backend, not the input: every camera is affected
        level, message = ERROR, f"backend failing: {backend.consecutive} inference errors in a row ({backend.last_fault})"
    elif backend.fell_back:
        level, message = WARN, f"running on the fallback backend {backend.name} after inference errors ({backend.last_fault})"
    elif window["received"] == 0:
        level, message = WARN, "no input"
    elif window["bad"] or window["dropped"]:
        level, message = WARN, f"{window['dropped']} dropped, {window['bad']} bad in the last {period:.1f} s"
    elif window["warnings"]:
        level, message = WARN, f"{window['warnings']} frames with header problems in the last {period:.1f} s"
    elif ground_warn:  # image outputs go on, ground ones stop
        level, message = WARN, f"ground outputs {ground}"
    else:
        level, message = OK, "ok"
    lat = np.array(c.latencies_ms) if c.latencies_ms else np.zeros(1)
    p50, p95 = np.percentile(lat, [50, 95])
    values = {
        "input_rate_hz": f"{window['received'] / period:.2f}",
        "output_rate_hz": f"{window['published'] / period:.2f}",
        "latency_p50_ms": f"{p50:.1f}",
        "latency_p95_ms": f"{p95:.1f}",
        "frames_received": str(c.received),
        "frames_published": str(c.published),
        "frames_dropped": str(c.dropped),
        "frames_bad": str(c.bad),
        "bad_reasons": ", ".join(f"{k}={v}" for k, v in sorted(c.bad_reasons.items())) or "none",
        "header_warnings": ", ".join(f"{k}={v}" for k, v in sorted(c.warnings.items())) or "none",
        "backend": backend.name,
        "backend_faults": str(backend.faults),
        "backend_consecutive_faults": str(backend.consecutive),
        "backend_fell_back": str(backend.fell_back).lower(),
        "current_frame_age_s": f"{backend.busy_s:.2f}",
        "ground_outputs": ground,
        **{f"{s}_ms_p50": f"{float(np.median(v)) if v else 0.0:.2f}" for s, v in c.stages_ms.items()},
    }
    return level, message, values


def read_statuses(arr) -> dict[str, dict]:
    """A DiagnosticArray (rclpy or rosbags) as {status name: {key: value, ..., "level": int, "message": str}}."""
    out = {}
    for s in arr.status:
        level = s.level if isinstance(s.level, int) else int.from_bytes(s.level, "little")
        out[s.name] = {kv.key: kv.value for kv in s.values} | {"level": level, "message": s.message}
    return out
