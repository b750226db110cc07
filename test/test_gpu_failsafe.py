"""The GPU path fails safe, shown on the CPU with a fake GPU backend (no GPU or TensorRT here).

The fake stands in for TensorRT exactly where TensorRT differs from ONNX Runtime: it has one fixed
graph per frame size, built on demand, and a build can fail (out of memory, a parse error) or take
long (minutes for a real engine). Its masks come from the real shipped model on ONNX Runtime. The
node under test is real (rclpy, in-process); the worker thread runs as in the car unless a test
serves frames itself to know each frame's fate.
"""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np
import pytest

from fcn_perception.inference import segmenter as segmenter_module
from fcn_perception.inference.backends import create_backend
from fcn_perception.inference.base import Backend
from fcn_perception.inference.model_store import resolve_model
from fcn_perception.inference.onnxruntime_backend import OnnxRuntimeBackend
from fcn_perception.inference.preprocess import inference_size
from fcn_perception.inference.segmenter import EngineBuilding, Segmenter, SegmenterConfig
from fcn_perception.waiting import wait_until

FRONT, SIDE = "/gpu_front/image_raw", "/gpu_side/image_raw"
FRONT_SIZE, SIDE_FRAME = (480, 360), (720, 360)  # 4:3 (the model's own size) and 2:1 (a second build)
SIDE_SIZE = inference_size(*SIDE_FRAME, 360)  # what the 2:1 frames run at


class FakeGpuBackend(Backend):
    """A fixed-size "engine" per input size, whose build for one size fails or takes ``build_s``."""

    dynamic = False
    builds: ClassVar[list[tuple[int, int]]] = []

    def __init__(self, size, fail: tuple[int, int] | None, build_s: float, cpu: OnnxRuntimeBackend) -> None:
        self.size = tuple(size) if size else tuple(cpu.config.input_size)
        FakeGpuBackend.builds.append(self.size)
        if self.size == fail:
            raise RuntimeError(f"out of memory while building the {self.size[0]}x{self.size[1]} engine (injected)")
        if self.size != tuple(cpu.config.input_size):
            time.sleep(build_s)
        self.name, self.config, self._cpu = "fake-gpu", cpu.config, cpu

    def infer(self, batch: np.ndarray):
        if tuple(batch.shape[2:][::-1]) != self.size:
            raise RuntimeError(f"engine for {self.size} got {batch.shape}")
        return self._cpu.infer(batch)


@pytest.fixture
def fake_gpu(monkeypatch):
    """``backend: torch`` builds fake GPU engines; ONNX Runtime (the CPU fallback) stays real."""
    cpu = OnnxRuntimeBackend(resolve_model("", "int8"))
    settings = {"fail": None, "build_s": 0.0}
    FakeGpuBackend.builds = []

    def create(name, model_path, input_size=None, *args, **kwargs):
        if name == "torch":
            return FakeGpuBackend(input_size, settings["fail"], settings["build_s"], cpu)
        return create_backend(name, model_path, input_size, *args, **kwargs)

    monkeypatch.setattr(segmenter_module, "create_backend", create)
    return settings


def _image(size, sec: int, frame_id: str):
    from sensor_msgs.msg import Image

    w, h = size
    rgb = np.random.default_rng(sec).integers(0, 255, (h, w, 3), dtype=np.uint8)
    msg = Image(height=h, width=w, encoding="rgb8", step=w * 3, data=rgb.tobytes())
    msg.header.stamp.sec, msg.header.frame_id = sec, frame_id
    return msg


def _node(params):
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from fcn_perception.ros.node import FcnPerceptionNode

    n = FcnPerceptionNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    assert n.trigger_configure() == TransitionCallbackReturn.SUCCESS
    n.trigger_activate()
    return n


def _status(node, topic):
    from fcn_perception.ros.diagnostics import read_statuses

    return next(v for k, v in read_statuses(node.diagnostics()).items() if k.endswith(topic))


def test_a_failed_build_is_a_backend_fault_not_retried_and_the_node_falls_back_serving_every_camera(ros_node, fake_gpu):
    fake_gpu["fail"] = SIDE_SIZE
    node = _node({"image_topics": [FRONT, SIDE], "backend": "torch", "backend_failure_limit": 3, "diagnostics_period": 60.0})
    try:
        node.worker.stop()  # the test serves each frame itself: every frame's fate is known
        front, side = node.cameras

        def serve(cam, size, sec):
            node._on_image(cam.index, _image(size, sec, "cam"))
            node.worker.serve_one(*node.worker.take())
            wait_until(lambda: not node.pipeline.segmenter.building, 10, 0.01)  # the build thread ends

        for sec in range(1, 6):  # interleaved: the healthy camera's successes must not hide the broken one
            serve(front, FRONT_SIZE, sec)
            serve(side, SIDE_FRAME, sec)
        # the side camera: first frame dropped while its engine was built; the failed build then turned
        # into backend faults (3 = the limit) without a rebuild; then ONNX Runtime on the CPU served it
        assert side.counters.drop_reasons == {"engine_building": 1}
        assert side.counters.bad_reasons == {"inference_error": 3}
        assert side.counters.published == 1
        assert FakeGpuBackend.builds.count(SIDE_SIZE) == 1  # not retried per frame
        assert front.counters.published == 5 and front.counters.bad == 0
        health = node.guard.health
        assert health.fell_back and health.name == "onnxruntime-cpu" and node.pipeline.segmenter.backend_name == "onnxruntime-cpu"
        for sec in range(6, 9):
            serve(front, FRONT_SIZE, sec)
            serve(side, SIDE_FRAME, sec)
        assert front.counters.published == 8 and side.counters.published == 4
        values = _status(node, SIDE)
        assert values["level"] == 1 and "fallback" in values["message"] and values["backend_fell_back"] == "true"
    finally:
        node.on_shutdown(None)
        node.destroy_node()


def test_a_long_build_runs_off_the_serving_path_and_diagnostics_say_engine_building(ros_node, fake_gpu):
    fake_gpu["build_s"] = 5.0
    node = _node({"image_topics": [FRONT, SIDE], "backend": "torch", "diagnostics_period": 60.0, "stall_timeout": 1.0})
    try:
        front, side = node.cameras
        _status(node, FRONT)  # start a fresh diagnostics window
        t0, sec, during = time.monotonic(), 0, None
        while time.monotonic() - t0 < 8.0:
            sec += 1
            node._on_image(front.index, _image(FRONT_SIZE, sec, "cam"))
            node._on_image(side.index, _image(SIDE_FRAME, sec, "cam"))
            time.sleep(0.05)
            if during is None and time.monotonic() - t0 > 2.5:  # mid-build
                during = (_status(node, FRONT), _status(node, SIDE), front.counters.published)
        assert wait_until(lambda: node.worker.busy_since is None, 10)  # the last frames served
        front_during, side_during, front_served_mid_build = during
        for values in (front_during, side_during):  # WARN, not the ERROR of a stalled worker
            assert values["level"] == 1 and f"engine building for {SIDE_SIZE[0]}x{SIDE_SIZE[1]}" in values["message"], values
            assert values["engine_building"] == f"{SIDE_SIZE[0]}x{SIDE_SIZE[1]}"
        assert front_served_mid_build >= 10  # the other camera's masks never stopped
        assert side.counters.drop_reasons.get("engine_building", 0) >= 10
        assert side.counters.published >= 5  # served once its engine was there
        assert FakeGpuBackend.builds.count(SIDE_SIZE) == 1
        assert _status(node, SIDE)["engine_building"] == "none"
    finally:
        node.on_shutdown(None)
        node.destroy_node()


def test_shutdown_waits_for_a_background_build_instead_of_exiting_inside_it(ros_node, fake_gpu):
    """A build thread still inside a runtime's compile at interpreter exit aborts the process: the
    node's cleanup waits for it (bounded) before letting the backend go."""
    fake_gpu["build_s"] = 1.5
    node = _node({"image_topics": [SIDE], "backend": "torch", "diagnostics_period": 60.0})
    segmenter = node.pipeline.segmenter
    try:
        node._on_image(node.cameras[0].index, _image(SIDE_FRAME, 1, "cam"))
        assert wait_until(lambda: segmenter.building == [SIDE_SIZE], 5, 0.01)
        threads = list(segmenter._building.values())
    finally:
        node.on_shutdown(None)
        node.destroy_node()
    assert threads and not any(t.is_alive() for t in threads)
    assert segmenter.close() == []


def test_replay_and_eval_build_in_the_caller_and_a_failed_size_stays_failed(fake_gpu):
    """Without background builds (replay, eval) a new size is built before the frame is served; a
    failed one is an InferenceError for every later frame of that size, without a rebuild."""
    fake_gpu["fail"] = SIDE_SIZE
    seg = Segmenter(SegmenterConfig(backend="torch"))
    assert seg.segment(np.zeros((360, 480, 3), np.uint8)).mask.shape == (360, 480)
    for _ in range(3):
        with pytest.raises(segmenter_module.InferenceError, match=f"{SIDE_SIZE[0]}x{SIDE_SIZE[1]}: its build failed .*out of memory"):
            seg.segment(np.zeros((SIDE_FRAME[1], SIDE_FRAME[0], 3), np.uint8))
    assert FakeGpuBackend.builds.count(SIDE_SIZE) == 1
    background = Segmenter(SegmenterConfig(backend="torch", background_builds=True))
    with pytest.raises(EngineBuilding):
        background.segment(np.zeros((270, 480, 3), np.uint8))  # 16:9 -> a 640x360 build starts
