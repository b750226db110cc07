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
        self._serving: set[int] = set()  # cameras with a frame in service: their next waits (frames in order)

    def put(self, camera: int, item: Any, now: float | None = None) -> bool:
        """Park ``item`` as the camera's newest frame; True when it replaced one that was never served."""
        slot = self._slots[camera]
        dropped = slot.full
        slot.item, slot.received, slot.full = item, time.monotonic() if now is None else now, True
        return dropped

    def take(self, now: float | None = None) -> tuple[int, Any, float] | None:
        """(camera, item, received time) of the camera served longest ago (then the older frame), or None.
        A camera whose previous frame is still in service is not taken until :meth:`done`."""
        ready = [(s.last_served, s.received, i) for i, s in enumerate(self._slots) if s.full and i not in self._serving]
        if not ready:
            return None
        _, _, i = min(ready)
        slot = self._slots[i]
        slot.last_served = time.monotonic() if now is None else now
        item, received = slot.item, slot.received
        slot.item, slot.full = None, False
        self._serving.add(i)
        return i, item, received

    def done(self, camera: int) -> None:
        """The camera's frame in service is finished: its next frame may be taken."""
        self._serving.discard(camera)

    def clear(self) -> int:
        """Drop every parked frame (deactivation); returns how many."""
        n = sum(s.full for s in self._slots)
        for s in self._slots:
            s.item, s.full = None, False
        return n


class FrameWorker:
    """Worker threads over :class:`LatestFrames`: callers park frames and never block on inference.

    With ``threads`` > 1, frames of different cameras are served at once (one camera's frames stay
    in order, one at a time): the runtimes' inference is serialised by the Segmenter, so what runs
    beside it on the other core is another camera's decoding, resizing, drivable area, lanes and
    publishing — the serial half of each frame, which a single worker left that core idle for.

    ``serve(camera, item, received)`` runs on the worker for each frame taken. ``lock`` is held
    while a frame is parked or taken, never while one is served; settings that must change between
    frames (the node's runtime parameters) are swapped under it.
    """

    def __init__(self, cameras: int, serve: Callable[[int, Any, float], None], name: str = "fcn_inference", threads: int = 1) -> None:
        self.lock = threading.Condition()
        self._frames = LatestFrames(cameras)
        self._serve, self._name, self._count = serve, name, max(1, threads)
        self._stop = False
        self._threads: list[threading.Thread] = []
        self._busy: dict[int, float] = {}  # thread ident -> monotonic start of the frame it serves

    @property
    def busy_since(self) -> float | None:
        """Monotonic start of the longest-running frame in service (a hung call shows here), or None."""
        busy = list(self._busy.values())
        return min(busy) if busy else None

    def start(self) -> None:
        self._stop = False
        self._threads = [threading.Thread(target=self._run, name=f"{self._name}_{i}", daemon=True) for i in range(self._count)]
        for t in self._threads:
            t.start()

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
        me = threading.get_ident()
        self._busy[me] = time.monotonic()
        try:
            self._serve(camera, item, received)
        finally:
            self._busy.pop(me, None)
            with self.lock:
                self._frames.done(camera)
                self.lock.notify()  # that camera's next frame, parked meanwhile, may go to a waiting thread

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
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        self._threads = []
