"""ONNX Runtime as the node runs it (``inference/onnxruntime_backend.py``); its stencil head is
tested beside OpenVINO's in ``test_stencil_head.py``."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from fcn_perception.inference.model_store import default_model_path
from fcn_perception.inference.onnxruntime_backend import OnnxRuntimeBackend


def _cpu_ns(tids: set[str]) -> int:
    """CPU time of these threads of this process (the scheduler's own count, in ns)."""
    stats = [Path(f"/proc/self/task/{t}/schedstat") for t in tids]
    return sum(int(p.read_text().split()[0]) for p in stats if p.exists())


def test_its_threads_rest_between_frames():
    """Spinning threads took the CPU that the rest of the frame needed on these cores. Between two
    frames (here 50 ms with nothing to infer) the runtime's own threads must not run: spinning,
    they took 20-40 ms of CPU there, resting well under 1 ms."""
    before = set(os.listdir("/proc/self/task"))
    backend = OnnxRuntimeBackend(default_model_path("int8"), 2)
    own = set(os.listdir("/proc/self/task")) - before  # the runtime's thread pool
    assert own and backend.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    x = np.zeros((1, 3, 120, 160), np.float32)
    for _ in range(3):
        backend.infer(x)
    cpu, end = _cpu_ns(own), time.perf_counter() + 0.05
    while (left := end - time.perf_counter()) > 0:  # the gap between frames, slept through
        time.sleep(left)
    assert _cpu_ns(own) - cpu < 5_000_000, "the runtime's threads ran between frames"


def test_a_damaged_model_file_is_named(tmp_path):
    path = tmp_path / "damaged.onnx"
    path.write_bytes(default_model_path("int8").read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"damaged\.onnx: not a readable ONNX model"):
        OnnxRuntimeBackend(path)


def test_two_streams_infer_two_cameras_frames_at_once_with_the_same_masks():
    """``streams=2`` (the node's two cameras): two calls at once from two threads, a thread each, and
    the masks of one stream on both threads."""
    import threading

    from fcn_perception.inference.preprocess import preprocess_rgb
    from fcn_perception.inference.segmenter import Segmenter, SegmenterConfig
    from fcn_perception.tools.samples import sample_frames

    seg = Segmenter(SegmenterConfig(backend="onnxruntime", threads=2, streams=2))
    two = seg.backend
    assert two.streams == 2 and two.session.get_session_options().intra_op_num_threads == 1
    one = OnnxRuntimeBackend(default_model_path("int8"), 2)
    xs = [preprocess_rgb(f[..., ::-1], (480, 360), one.config.mean, one.config.std) for f in sample_frames((480, 360), 2)]
    got: dict[int, object] = {}
    start = threading.Barrier(2)

    def infer(k: int) -> None:
        start.wait()
        got[k] = two.infer(xs[k])

    workers = [threading.Thread(target=infer, args=(k,)) for k in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    for k, x in enumerate(xs):
        want = one.infer(x)
        assert np.array_equal(got[k].mask, want.mask) and np.array_equal(got[k].confidence, want.confidence)
