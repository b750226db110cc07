"""The node's frame workers: several cameras served at once, each camera's frames one at a time."""

from __future__ import annotations

import threading

from fcn_perception.scene.scheduler import FrameWorker, LatestFrames
from fcn_perception.waiting import wait_until


def test_a_camera_in_service_is_not_taken_again_until_done():
    frames = LatestFrames(2)
    frames.put(0, "a0", now=1.0)
    frames.put(1, "b0", now=2.0)
    assert frames.take(now=3.0)[:2] == (0, "a0")
    frames.put(0, "a1", now=4.0)
    assert frames.take(now=5.0)[:2] == (1, "b0")  # camera 0 is still in service
    assert frames.take(now=6.0) is None
    frames.done(0)
    assert frames.take(now=7.0)[:2] == (0, "a1")


def test_two_workers_serve_two_cameras_at_once_and_each_camera_in_order():
    """Each serve holds until both cameras are in service (a barrier): one worker could never pass it."""
    barrier = threading.Barrier(2, timeout=10)
    lock = threading.Lock()
    served: dict[int, list[int]] = {0: [], 1: []}
    in_service: set[int] = set()
    overlap = []

    def serve(camera: int, item: int, received: float) -> None:
        with lock:
            assert camera not in in_service  # never two frames of one camera at once
            in_service.add(camera)
        if item == 0:
            barrier.wait()
        with lock:
            overlap.append(len(in_service))
            in_service.discard(camera)
            served[camera].append(item)

    worker = FrameWorker(2, serve, threads=2)
    worker.start()
    try:
        for cam in (0, 1):
            worker.put(cam, 0)
        assert wait_until(lambda: len(served[0]) == 1 and len(served[1]) == 1, timeout=15)
        for i in range(1, 30):
            for cam in (0, 1):
                worker.put(cam, i)
            assert wait_until(lambda i=i: served[0][-1] == i and served[1][-1] == i, timeout=10)
    finally:
        worker.stop()
    assert max(overlap) == 2
    for cam in (0, 1):
        assert served[cam] == sorted(served[cam]) and served[cam][0] == 0
