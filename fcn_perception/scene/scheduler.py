"""Which frame to serve next when several cameras share one inference worker (no ROS here).

Each camera keeps only its newest frame, so latency never grows under load (older frames are
dropped and counted); cameras are served round robin, so a synchronised rig shares the worker
fairly (oldest-frame-first starved the later cameras of a rig triggered together).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass
class _Slot:
    item: Any = None
    received: float = 0.0
    last_served: float = 0.0
    full: bool = False


class LatestFrames:
    """One slot per camera. Not locked: the caller holds its own lock around put/take."""

    def __init__(self, cameras: int) -> None:
        self._slots = [_Slot() for _ in range(cameras)]

    def put(self, camera: int, item: Any, now: float | None = None) -> bool:
        """Park ``item`` as the camera's newest frame; True when it replaced one that was never served."""
        slot = self._slots[camera]
        dropped = slot.full
        slot.item, slot.received, slot.full = item, time.monotonic() if now is None else now, True
        return dropped

    def take(self, now: float | None = None) -> tuple[int, Any, float] | None:
        """(camera, item, received time) of the camera served longest ago (then the older frame), or None."""
        ready = [(s.last_served, s.received, i) for i, s in enumerate(self._slots) if s.full]
        if not ready:
            return None
        _, _, i = min(ready)
        slot = self._slots[i]
        slot.last_served = time.monotonic() if now is None else now
        item, received = slot.item, slot.received
        slot.item, slot.full = None, False
        return i, item, received

    def clear(self) -> int:
        """Drop every parked frame (deactivation); returns how many."""
        n = sum(s.full for s in self._slots)
        for s in self._slots:
            s.item, s.full = None, False
        return n
