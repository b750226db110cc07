"""Which frame to serve next when several cameras share one inference worker (no ROS here).

Each camera keeps only its newest frame, so latency never grows under load (older frames are
dropped and counted); cameras are served round robin, so a synchronised rig shares the worker
fairly (oldest-frame-first starved the later cameras of a rig triggered together).

A camera's frames are served one at a time, unless ``overlap`` lets its next frame start while
earlier ones are in service (the node: more inference streams than cameras). Then each frame's
network runs beside the last one's, and what reads and changes the camera's state (drivable area,
ground, lanes and their tracker, the outputs) waits its turn (``in_turn``): outputs leave in the
order the frames were taken.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any


def overlaps(streams: int, cameras: int, workers: int) -> bool:
    """Whether a camera's next frame may start beside its last: a stream and a worker to spare for it
    once every camera has one. With no worker to spare it would only take another camera's turn."""
    return streams > cameras and workers > cameras


@dataclass
class _Slot:
    item: Any = None
    received: float = 0.0
    last_served: float = 0.0
    full: bool = False


class LatestFrames:
    """One slot per camera. Not locked: the caller holds its own lock around put/take/done."""

    def __init__(self, cameras: int, overlap: bool = False) -> None:
        self._slots = [_Slot() for _ in range(cameras)]
        self.overlap = overlap
        #: per camera, the numbers of its frames in service (taken, not done), in the order taken
        self._serving: dict[int, list[int]] = {}
        self._taken = [0] * cameras

    def put(self, camera: int, item: Any, now: float | None = None) -> bool:
        """Park ``item`` as the camera's newest frame; True when it replaced one that was never served."""
        slot = self._slots[camera]
        dropped = slot.full
        slot.item, slot.received, slot.full = item, time.monotonic() if now is None else now, True
        return dropped

    def take(self, now: float | None = None) -> tuple[int, Any, float, int] | None:
        """(camera, item, received time, the frame's number among the camera's frames taken) of the
        camera served longest ago (then the older frame), or None. A camera whose previous frame is
        still in service is not taken until :meth:`done`, unless ``overlap``."""
        ready = [(s.last_served, s.received, i) for i, s in enumerate(self._slots) if s.full and (self.overlap or not self._serving.get(i))]
        if not ready:
            return None
        _, _, i = min(ready)
        slot = self._slots[i]
        slot.last_served = time.monotonic() if now is None else now
        item, received = slot.item, slot.received
        slot.item, slot.full = None, False
        seq = self._taken[i]
        self._taken[i] += 1
        self._serving.setdefault(i, []).append(seq)
        return i, item, received, seq

    def earlier_done(self, camera: int, seq: int) -> bool:
        """Whether every frame of the camera taken before frame ``seq`` is done."""
        serving = self._serving.get(camera)
        return not serving or serving[0] >= seq

    def done(self, camera: int, seq: int | None = None) -> None:
        """The camera's frame ``seq`` (None: its oldest) is finished: its next frame may be taken."""
        serving = self._serving.get(camera, [])
        if seq in serving:
            serving.remove(seq)
        elif seq is None and serving:
            serving.pop(0)

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

    With ``overlap`` a camera's next frame is taken while its last is in service, so one camera
    whose frame takes longer than its frame period still keeps both cores busy (each frame's
    network on an inference stream of its own). Where two cameras already fill the workers it only
    delayed them (BENCHMARKS.md, 2026-12-06, sixth sitting), so the node asks for it only where
    there are more inference streams than cameras.

    ``serve(camera, item, received, in_turn)`` runs on the worker for each frame taken; it calls
    ``in_turn()`` before it reads or changes the camera's state, which returns once the camera's
    frames taken before this one are done (at once without ``overlap``). ``lock`` is held while a
    frame is parked or taken, never while one is served; settings that must change between frames
    (the node's runtime parameters) are swapped under it.
    """

    def __init__(self, cameras: int, serve: Callable[..., None], name: str = "fcn_inference", threads: int = 1, overlap: bool = False) -> None:
        self.lock = threading.Condition()
        self._frames = LatestFrames(cameras, overlap)
        self._serve, self._name, self._count = serve, name, max(1, threads)
        self._stop = False
        self._threads: list[threading.Thread] = []
        self._busy: dict[int, float] = {}  # thread ident -> monotonic start of the frame it serves

    @property
    def overlap(self) -> bool:
        """Whether a camera's next frame may start while its last is in service."""
        return self._frames.overlap

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

    def take(self) -> tuple[int, Any, float, int] | None:
        with self.lock:
            return self._frames.take()

    def clear(self) -> int:
        with self.lock:
            return self._frames.clear()

    def serve_one(self, camera: int, item: Any, received: float, seq: int | None = None) -> None:
        """One frame as :meth:`take` gave it (``seq``: its number among the camera's frames taken)."""
        me = threading.get_ident()
        self._busy[me] = time.monotonic()
        try:
            self._serve(camera, item, received, partial(self._in_turn, camera, seq))
        finally:
            self._busy.pop(me, None)
            with self.lock:
                self._frames.done(camera, seq)
                # that camera's next frame, parked meanwhile, may go to a waiting thread; a frame of it
                # waiting for its turn may go on
                self.lock.notify_all()

    def _in_turn(self, camera: int, seq: int | None) -> None:
        if seq is None or not self._frames.overlap:
            return
        with self.lock:
            self.lock.wait_for(lambda: self._frames.earlier_done(camera, seq))

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
