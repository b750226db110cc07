"""Which frame to serve next when several cameras share one inference worker (no ROS here).

Each camera keeps only its newest frame, so latency never grows under load (older frames are
dropped and counted); cameras are served round robin, so a synchronised rig shares the worker
fairly (oldest-frame-first starved the later cameras of a rig triggered together).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
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


class FrameWorker:
    """One inference thread over :class:`LatestFrames`: callers park frames and never block on inference.

    ``serve(camera, item, received)`` runs on the worker for each frame taken. ``lock`` is held
    while a frame is parked or taken, never while one is served; settings that must change between
    frames (the node's runtime parameters) are swapped under it.
    """

    def __init__(self, cameras: int, serve: Callable[[int, Any, float], None], name: str = "fcn_inference") -> None:
        self.lock = threading.Condition()
        self._frames = LatestFrames(cameras)
        self._serve, self._name = serve, name
        self._stop = False
        self._thread: threading.Thread | None = None
        self.busy_since: float | None = None  # monotonic start of the frame being served (a hung call shows here)

    def start(self) -> None:
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def put(self, camera: int, item: Any, now: float | None = None) -> bool:
        """Park a frame; True when it replaced one never served (a drop)."""
        with self.lock:
            dropped = self._frames.put(camera, item, now)
            self.lock.notify()
        return dropped

    def take(self) -> tuple[int, Any, float] | None:
        with self.lock:
            return self._frames.take()

    def clear(self) -> int:
        with self.lock:
            return self._frames.clear()

    def serve_one(self, camera: int, item: Any, received: float) -> None:
        self.busy_since = time.monotonic()
        try:
            self._serve(camera, item, received)
        finally:
            self.busy_since = None

    def _run(self) -> None:
        while True:
            with self.lock:
                while not self._stop and (item := self._frames.take()) is None:
                    self.lock.wait(0.5)
                if self._stop:
                    return
            self.serve_one(*item)

    def stop(self, timeout: float = 10.0) -> None:
        with self.lock:
            self._stop = True
            self.lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None
