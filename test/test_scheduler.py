"""The node's frame workers: several cameras served at once, each camera's frames one at a time, or
with ``overlap`` side by side and leaving in order."""

from __future__ import annotations

import threading

from fcn_perception.scene.scheduler import FrameWorker, LatestFrames, overlaps
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

    def serve(camera: int, item: int, received: float, in_turn) -> None:
        in_turn()  # returns at once without overlap
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


def test_frames_overlap_only_with_a_stream_and_a_worker_to_spare_and_the_hint_asks_for_what_takes_effect():
    from fcn_perception.ros.node import _spare_streams_for

    assert overlaps(2, 1, 2)
    assert not overlaps(2, 1, 1)  # one worker: nothing runs the next frame
    assert not overlaps(3, 2, 2)  # two cameras on two workers: it would only take the other camera's turn
    assert not overlaps(2, 2, 3)  # a stream each, none to spare
    for cameras in (1, 2, 3):
        for workers in (1, 2, 3, 4):
            spare = _spare_streams_for(cameras, workers, False, cpu_pct=10.0)
            assert (spare is not None) == (workers > cameras), (cameras, workers, spare)
            assert spare is None or overlaps(spare, cameras, workers)
            assert _spare_streams_for(cameras, workers, True, cpu_pct=10.0) is None


def test_with_overlap_a_camera_in_service_is_taken_again_and_its_frames_finish_in_turn():
    frames = LatestFrames(1, overlap=True)
    for i in range(3):
        frames.put(0, f"a{i}", now=float(i))
        assert frames.take(now=float(i))[1:] == (f"a{i}", float(i), i)  # taken while the earlier ones are in service
    assert frames.earlier_done(0, 0) and not frames.earlier_done(0, 1)
    frames.done(0, 1)  # frame 1 finished first (its network failed, say): frame 2 still waits for frame 0
    assert not frames.earlier_done(0, 2)
    frames.done(0, 0)
    assert frames.earlier_done(0, 2)


def test_a_camera_s_next_frame_runs_beside_its_last_and_waits_its_turn_with_overlap():
    """Frame 0 holds in its network part until released; frame 1, taken meanwhile by the second
    worker, must wait in ``in_turn`` until frame 0 is done, so the camera's outputs leave in order."""
    release = threading.Event()
    events: list[str] = []
    lock = threading.Lock()

    def serve(camera: int, item: int, received: float, in_turn) -> None:
        with lock:
            events.append(f"start {item}")
        if item == 0:
            assert release.wait(10)
        with lock:
            events.append(f"turn {item}")
        in_turn()
        with lock:
            events.append(f"served {item}")

    worker = FrameWorker(1, serve, threads=2, overlap=True)
    worker.start()
    try:
        worker.put(0, 0)
        assert wait_until(lambda: "start 0" in events, 10)
        worker.put(0, 1)
        assert wait_until(lambda: "turn 1" in events, 10)  # frame 1 started while frame 0 is in service
        assert not wait_until(lambda: "served 1" in events, 0.5)  # ... and waits for it
        release.set()
        assert wait_until(lambda: "served 1" in events, 10)
    finally:
        release.set()
        worker.stop()
    assert [e for e in events if e.startswith("served")] == ["served 0", "served 1"]


def test_one_camera_on_two_inference_streams_runs_its_next_frame_beside_and_publishes_in_order(ros_node):
    """The real node: frame B is taken while frame A is in service, runs its network, then waits for A;
    the masks leave A first. (A node with one stream would not take B at all: ``take`` gives None.)"""
    import numpy as np
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image

    from fcn_perception.ros.node import FcnPerceptionNode

    topic = "/overlapcam/image_raw"
    got = []
    sub = ros_node.create_subscription(Image, "/overlapcam/segmentation/mask", lambda m: got.append(m.header.stamp.nanosec), 10)
    node = FcnPerceptionNode(parameter_overrides=[Parameter("image_topics", value=[topic]), Parameter("inference_streams", value=2)])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        node.trigger_activate()
        node.worker.stop()  # the test serves the frames itself
        assert wait_until(lambda: node.io[0].pubs["mask"].get_subscription_count() > 0, 20)
        rng = np.random.default_rng(0)
        frames = []
        for nanosec in (0, 33_000_000):  # 30 Hz stamps
            msg = Image(height=360, width=480, encoding="rgb8", step=480 * 3, data=rng.integers(0, 255, 360 * 480 * 3, dtype=np.uint8).tobytes())
            msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = 7, nanosec, "overlapcam_optical_frame"
            node._on_image(0, msg)
            frames.append(node.worker.take())
        assert frames[1] is not None  # taken while the first is in service
        later = threading.Thread(target=node.worker.serve_one, args=frames[1])
        later.start()
        coarse = node.cameras[0].state.coarse
        assert wait_until(lambda: coarse.computed + coarse.reused == 1, 30)  # B's network has run
        assert not wait_until(lambda: got, 0.5)  # ... and B waits for A
        node.worker.serve_one(*frames[0])
        later.join(30)
        assert wait_until(lambda: len(got) == 2, 20)
        assert got == [0, 33_000_000]
    finally:
        node.on_shutdown(None)
        node.destroy_node()
        ros_node.destroy_subscription(sub)
