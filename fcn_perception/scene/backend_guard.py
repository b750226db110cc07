"""What the node does when its backend fails (no ROS): count faults, report, fall back to the CPU.

Faults are counted in a row *per camera*: a backend that fails for one camera's frame size (an
engine that would not build) is a failed backend for that camera even while another camera's size
works, so a rig's healthy camera cannot hide a broken one by resetting the count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from fcn_perception.inference.segmenter import Segmenter
from fcn_perception.scene.pipeline import Pipeline


@dataclass
class BackendHealth:
    """The backend's state as diagnostics report it."""

    name: str
    faults: int = 0
    consecutive: int = 0  # the longest run of faults in a row of any camera
    limit: int = 5
    last_fault: str = ""
    fell_back: bool = False
    busy_s: float = 0.0  # how long the current frame has been in the pipeline
    stall_timeout: float = 2.0
    building: list[tuple[int, int]] = field(default_factory=list)  # sizes whose backend is being built
    precision: str = ""  # what the backend runs, and for auto how it was chosen
    streams: int = 1  # frames the backend infers at once


class BackendGuard:
    """Applies ``on_backend_failure`` after ``limit`` inference errors in a row of one camera:
    ``fallback_cpu`` swaps the pipeline's segmenter for ``fallback()`` once (ONNX Runtime on the
    CPU), ``retry`` keeps the backend. Either way the health turns ERROR while the run lasts."""

    def __init__(self, pipeline: Pipeline, fallback: Callable[[], Segmenter], limit: int = 5, policy: str = "fallback_cpu", stall_timeout: float = 2.0) -> None:
        self.pipeline, self.fallback, self.policy = pipeline, fallback, policy
        self.health = BackendHealth(pipeline.segmenter.backend_name, limit=limit, stall_timeout=stall_timeout)
        self._runs: dict[object, int] = {}

    def configure(self, limit: int, policy: str, stall_timeout: float) -> None:
        """Runtime parameter changes (backend_failure_limit, on_backend_failure, stall_timeout)."""
        self.health.limit, self.policy, self.health.stall_timeout = limit, policy, stall_timeout

    def ok(self, camera: object) -> None:
        self._runs[camera] = 0
        self.health.consecutive = max(self._runs.values())

    def fault(self, camera: object, detail: str) -> tuple[str, str]:
        """Count one fault; returns (level, line) to log now, ``("", "")`` for nothing."""
        h = self.health
        h.faults += 1
        self._runs[camera] = self._runs.get(camera, 0) + 1
        h.consecutive = max(self._runs.values())
        h.last_fault = detail
        run = self._runs[camera]
        if run < h.limit:
            return "", ""
        if self.policy == "fallback_cpu" and not h.fell_back:
            h.fell_back = True  # one fallback attempt; afterwards keep trying what there is
            try:
                segmenter = self.fallback()
            except Exception as exc:
                return "error", f"fallback to ONNX Runtime failed: {exc.__class__.__name__}: {exc}; retrying the current backend"
            old = h.name
            self.pipeline.segmenter = segmenter
            h.name, h.consecutive, self._runs = segmenter.backend_name, 0, {}
            return "error", f"backend {old} failed {run} times in a row ({detail}); fell back to {h.name} on the CPU"
        if run == h.limit or run % 100 == 0:
            return "error", f"backend {h.name}: {run} inference errors in a row ({detail}); still retrying"
        return "", ""

    def observe(self, busy_s: float) -> BackendHealth:
        """The health as of now, for a diagnostics message."""
        self.health.busy_s = busy_s
        self.health.building = self.pipeline.segmenter.building
        self.health.precision = self.pipeline.segmenter.precision_status
        self.health.streams = self.pipeline.segmenter.backend.streams
        return self.health
