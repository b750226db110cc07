"""OpenVINO on the CPU: the shipped files as they are, one compiled model per size, its blob cache
inside the package's cache only, ``auto`` choosing it, and masks that agree with ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest

from fcn_perception.cpu import this_cpu
from fcn_perception.inference.backends import concrete_backend, create_backend
from fcn_perception.inference.frames import read_rgb
from fcn_perception.inference.model_store import default_model_path
from fcn_perception.inference.segmenter import Segmenter, SegmenterConfig
from fcn_perception.training.datasets import open_split

pytest.importorskip("openvino", reason="openvino is in the lock (tools/bootstrap.sh installs it)")


@pytest.fixture(scope="module")
def frames(camvid):
    return [read_rgb(f) for f, _ in open_split(camvid, "val").pairs[::25]]


@pytest.mark.parametrize(("precision", "agreement"), [("fp32", 0.99), ("int8", 0.97), ("auto", 0.97)])
def test_masks_agree_with_onnx_runtime_on_real_frames(frames, precision, agreement, tmp_path):
    ov = Segmenter(SegmenterConfig(backend="openvino", precision=precision, cache_dir=str(tmp_path)))
    ort = Segmenter(SegmenterConfig(backend="onnxruntime", precision="int8" if precision == "auto" else precision))
    assert ov.backend_name == "openvino-cpu" and ov.model_path == ort.model_path
    for rgb in frames:
        a, b = ov.segment(rgb).mask, ort.segment(rgb).mask
        assert a.shape == rgb.shape[:2] and np.mean(a == b) >= agreement


def test_one_compiled_model_per_size_and_blobs_only_in_the_cache(frames, tmp_path):
    import cv2

    cache = tmp_path / "cache"
    seg = Segmenter(SegmenterConfig(backend="openvino", cache_dir=str(cache)))
    wide = cv2.resize(frames[0], (1280, 720))
    assert seg.segment(frames[0]).mask.shape == frames[0].shape[:2]
    assert seg.segment(wide).mask.shape == (720, 1280)
    assert sorted(seg._backends) == [(480, 360), (640, 360)]  # 16:9 at height 360: its own compiled model
    assert {b.size for b in seg._backends.values()} == {(480, 360), (640, 360)}
    # only the class scores at 1/4 leave the graph (the stencil head upsamples them), not the float
    # logits at full size (11 MB at 640x360); beside them the stride-32 scores, for the next frames
    outputs = [[list(o.get_shape()) for o in b.compiled.outputs] for b in seg._backends.values()]
    assert outputs == [[[1, 12, 90, 120], [1, 12, 12, 15]], [[1, 12, 90, 160], [1, 12, 12, 20]]]
    blobs = list((cache / "openvino" / "blobs").iterdir())
    assert blobs and all(p.resolve().is_relative_to(cache.resolve()) for p in blobs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_the_stencil_head_gives_the_graphs_masks_on_real_frames(frames, tmp_path):
    """The graph cut at its final upsampling, the head on the host: the same class on nearly every
    pixel and the confidence within a level or two on average (``inference/stencil_head.py``)."""
    import cv2

    from fcn_perception.inference.openvino_backend import OpenVinoBackend

    path = default_model_path("int8")
    cut = OpenVinoBackend(path, (640, 360), threads=1, cache=tmp_path)
    whole = OpenVinoBackend(path, (640, 360), threads=1, cache=tmp_path, stencil_head=False)
    assert {n for o in whole.compiled.outputs for n in o.get_names()} == {"mask", "confidence"}
    for rgb in frames:
        x = cv2.resize(rgb, (640, 360))[None]
        a, b = cut.infer_rgb(x), whole.infer_rgb(x)
        assert a.mask.shape == a.confidence.shape == (1, 360, 640)
        assert np.mean(a.mask == b.mask) > 0.9995, np.mean(a.mask == b.mask)
        assert np.abs(a.confidence.astype(int) - b.confidence).mean() < 2.5


def test_auto_on_a_cpu_is_openvino_and_onnx_runtime_stays_one_parameter_away(tmp_path):
    assert concrete_backend("auto", "cpu") == "openvino"
    assert Segmenter(SegmenterConfig(backend="onnxruntime")).backend_name == "onnxruntime-cpu"
    with pytest.raises(ValueError, match="bf16 runs on OpenVINO"):
        Segmenter(SegmenterConfig(backend="onnxruntime", precision="bf16"))
    with pytest.raises(ValueError, match="fp16 needs a GPU backend; openvino"):
        Segmenter(SegmenterConfig(backend="openvino", precision="fp16"))
    be = create_backend("openvino", default_model_path("onnx"), (480, 360), precision="fp32", cache=tmp_path)
    assert be.execution_precision() == "f32"


def test_auto_precision_is_measured_once_per_cpu_and_kept(frames, tmp_path, monkeypatch):
    """First start: INT8 served at once, the candidates timed once enough frames are served, the
    fastest switched to and stored; the next Segmenter with that cache takes the stored choice
    without timing anything."""
    from fcn_perception.inference import segmenter
    from fcn_perception.waiting import wait_until

    monkeypatch.setattr(segmenter, "MEASURE_AFTER_FRAMES", 3)

    first = Segmenter(SegmenterConfig(backend="openvino", cache_dir=str(tmp_path), threads=2))
    assert first.precision == "int8" and first.needs_measuring and "not yet measured" in first.precision_status
    lines = []
    first.settle_precision(lambda level, line: lines.append((level, line)))
    for _ in range(2):
        first.segment(frames[0])
    assert first._measuring is None  # not before the third frame
    first.segment(frames[0])
    assert wait_until(lambda: lines, timeout=120) and lines[0][0] == "info", lines
    choice = first.auto
    assert choice.how == "measured" and set(choice.ms) >= {"int8", "fp32"} and choice.precision == min(choice.ms, key=choice.ms.get)
    assert first.precision == choice.precision and first.segment(frames[0]).mask.shape == frames[0].shape[:2]
    again = Segmenter(SegmenterConfig(backend="openvino", cache_dir=str(tmp_path), threads=2))
    assert not again.needs_measuring and again.auto.how == "cached" and again.precision == choice.precision
    assert again.model_path.name.endswith(".int8.onnx") == (choice.precision == "int8")
    other = Segmenter(SegmenterConfig(backend="openvino", cache_dir=str(tmp_path), threads=1))  # another setting: its own entry
    assert other.needs_measuring
    assert this_cpu().signature() in (tmp_path / "openvino" / "auto_precision.json").read_text()
    fixed = Segmenter(SegmenterConfig(backend="openvino", precision="fp32", cache_dir=str(tmp_path)))
    assert fixed.auto is None and fixed.precision_status == "fp32"
    stopped = []
    other.settle_precision(lambda level, line: stopped.append(line))
    for _ in range(3):
        other.segment(frames[0])
    assert other.close(timeout=60) == [] and stopped == []  # a shutdown stops the measuring between compiles, silently


def test_two_streams_infer_two_frames_at_once_with_the_same_masks(frames, tmp_path):
    """Two cameras' frames in the network side by side (a request each, the threads split): what
    served 35-40 % more frames a second on 2 cores; the masks are those of one stream."""
    import threading

    one = Segmenter(SegmenterConfig(backend="openvino", precision="int8", cache_dir=str(tmp_path)))
    two = Segmenter(SegmenterConfig(backend="openvino", precision="int8", cache_dir=str(tmp_path), threads=2, streams=2))
    assert one.backend.streams == 1 and two.backend.streams == 2
    assert two.backend.compiled.get_property("NUM_STREAMS") == 2
    out = [None] * len(frames)

    def serve(k: int) -> None:
        for i in range(k, len(frames), 2):
            out[i] = two.segment(frames[i]).mask

    threads = [threading.Thread(target=serve, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(np.array_equal(one.segment(rgb).mask, got) for rgb, got in zip(frames, out, strict=True))


def test_the_stream_gate_admits_as_many_as_the_backend_has_streams_and_all_waits_for_them():
    import threading

    from fcn_perception.inference.segmenter import _StreamGate

    gate = _StreamGate(2)
    inside, release = threading.Semaphore(0), threading.Event()

    def infer() -> None:
        with gate:
            inside.release()
            release.wait(30)

    workers = [threading.Thread(target=infer) for _ in range(2)]
    for w in workers:
        w.start()
    assert inside.acquire(timeout=30) and inside.acquire(timeout=30)  # both inside at once
    took_all = threading.Event()

    def measure() -> None:
        with gate.all:
            took_all.set()

    measuring = threading.Thread(target=measure)
    measuring.start()
    assert not took_all.wait(0.2)  # auto's timing waits while a frame is inferred
    release.set()
    assert took_all.wait(30)
    for t in [*workers, measuring]:
        t.join(30)
    single = _StreamGate(1)
    with single:
        assert not single._free.acquire(timeout=0.05)  # one stream: the second frame waits


def test_input_height_alone_runs_the_network_at_that_height_and_each_frames_aspect(frames, tmp_path):
    import cv2

    seg = Segmenter(SegmenterConfig(backend="openvino", precision="int8", input_height=270, cache_dir=str(tmp_path)))
    assert seg.input_size == (352, 270) and seg.backend.size == (352, 270)  # 4:3 at 270, width to the stride
    wide = cv2.resize(frames[0], (1280, 720))
    assert seg.segment(wide).mask.shape == (720, 1280) and seg.segment(frames[0]).mask.shape == frames[0].shape[:2]
    assert sorted(seg._backends) == [(352, 270), (480, 270)]  # 16:9 at height 270: its own compiled model
    with pytest.raises(ValueError, match="input_width needs input_height"):
        Segmenter(SegmenterConfig(backend="openvino", input_width=480))


def test_frames_go_in_as_uint8_normalised_in_the_graph_with_the_float_path_s_masks(frames, tmp_path):
    """The served input is the uint8 frame (OpenVINO's preprocessing normalises it in the graph); the
    contract's float input, compiled on first use, gives the same masks."""
    from fcn_perception.inference.preprocess import resize_rgb

    seg = Segmenter(SegmenterConfig(backend="openvino", precision="int8", cache_dir=str(tmp_path)))
    be = seg.backend
    assert be.rgb_input and be.compiled.input(0).get_element_type().get_type_name() == "u8"
    assert list(be.compiled.input(0).get_shape()) == [1, be.size[1], be.size[0], 3]
    for rgb in frames:
        assert np.mean(be.infer_rgb(resize_rgb(rgb, be.size)[None]).mask == be.infer(seg.preprocess(rgb)).mask) >= 0.999
    be.infer = None  # the Segmenter serves without the float input
    assert seg.segment(frames[0]).mask.shape == frames[0].shape[:2]


def test_a_frame_given_stride_32_scores_runs_on_them_and_its_own_give_the_plain_graph_s_masks(frames, tmp_path):
    """The stride-32 path behind a switch in one graph (inference/openvino_clockwork.py): a frame that
    computes its own scores, or is given them back, gets exactly the masks of the graph without the
    switch; given another frame's, it runs on those (the mask moves) while its finer strides are its own."""
    import cv2

    from fcn_perception.inference.openvino_backend import OpenVinoBackend

    path = default_model_path("int8")
    plain = OpenVinoBackend(path, (640, 360), threads=1, cache=tmp_path)
    clock = OpenVinoBackend(path, (640, 360), threads=1, cache=tmp_path, reuse_coarse=True)
    assert clock.reuses_coarse and not plain.reuses_coarse
    assert len(clock.compiled.inputs) == 3 and len(plain.compiled.inputs) == 1
    xs = [cv2.resize(rgb, (640, 360))[None] for rgb in frames[:3]]
    own = []
    for x in xs:
        want = plain.infer_rgb(x)
        computed, coarse = clock.infer_rgb_reusing(x, None)
        given, nothing = clock.infer_rgb_reusing(x, coarse)
        assert coarse.shape == (1, 12, 12, 20) and nothing is None
        for got in (computed, given, clock.infer_rgb(x)):
            assert np.array_equal(got.mask, want.mask) and np.array_equal(got.confidence, want.confidence)
        own.append(coarse)
    other, _ = clock.infer_rgb_reusing(xs[0], own[1])  # frames 25 apart (1.7 s): not the frame's own
    agree = np.mean(other.mask == plain.infer_rgb(xs[0]).mask)
    assert 0.6 < agree < 0.9999, agree


def test_a_camera_s_frames_take_its_stride_32_scores_by_stamp_within_coarse_reuse_ms(camvid, tmp_path):
    """At 30 Hz and the default 70 ms, two frames in three reuse; a stamp that goes back, a gap, no
    stamp or another frame size computes anew; 0 compiles no switch. Consecutive real frames (CamVid
    val, 67 ms apart) reusing agree with computing on nearly every pixel."""
    import cv2

    from fcn_perception.inference.coarse_reuse import CoarseScores

    pairs = open_split(camvid, "val").pairs[:4]  # 0016E5 at 15 Hz: each 67 ms after the last
    rgbs = [read_rgb(f) for f, _ in pairs]
    seg = Segmenter(SegmenterConfig(backend="openvino", precision="int8", cache_dir=str(tmp_path)))
    assert seg.cfg.coarse_reuse_ms == 70.0 and seg.backend.reuses_coarse
    cam = CoarseScores()
    stamps = [10.0 + i / 30 for i in range(6)] + [10.0, 11.0, None]
    reused = []
    for t in stamps:
        before = cam.reused
        seg.segment(rgbs[0], None, cam, t)
        reused.append(cam.reused > before)
    assert reused == [False, True, True, False, True, True, False, False, False]
    seg.segment(cv2.resize(rgbs[0], (1280, 720)), None, cam, 11.0 + 1 / 30)  # another size: its own backend
    assert (cam.reused, cam.computed) == (4, 6)
    cam = CoarseScores()
    for i, rgb in enumerate(rgbs):
        fresh = seg.segment(rgb).mask
        assert np.mean(seg.segment(rgb, None, cam, 20.0 + i / 15).mask == fresh) >= (0.99 if i else 1.0)
    assert cam.reused == 2  # 67 ms after a frame that computed
    off = Segmenter(SegmenterConfig(backend="openvino", precision="int8", cache_dir=str(tmp_path), coarse_reuse_ms=0.0))
    cam = CoarseScores()
    for t in stamps[:3]:
        off.segment(rgbs[0], None, cam, t)
    assert not off.backend.reuses_coarse and (cam.reused, cam.computed) == (0, 0)


def test_a_graph_whose_switch_cannot_be_made_computes_every_layer(frames, tmp_path, monkeypatch):
    """Where OpenVINO cannot make or compile the stride-32 switch (another export, a plugin without
    ``If``), the backend serves every frame with every layer instead of failing to start."""
    import cv2

    from fcn_perception.inference import openvino_backend

    def cannot(model):
        raise RuntimeError("no If here")

    monkeypatch.setattr(openvino_backend, "clockwork", cannot)
    backend = openvino_backend.OpenVinoBackend(default_model_path("int8"), (640, 360), threads=1, cache=tmp_path, reuse_coarse=True)
    assert not backend.reuses_coarse and len(backend.compiled.inputs) == 1
    assert backend.infer_rgb(cv2.resize(frames[0], (640, 360))[None]).mask.shape == (1, 360, 640)


def test_the_first_graph_is_compiled_for_a_camera_s_first_frame_asked_once_the_model_is_read(frames, tmp_path, monkeypatch):
    """A 16:9 car camera's first frame, heard while the model loads, decides the first compiled size:
    one compile, no graph for the model's own 4:3 size (a second compile, 1.4 s later, and 30-42 MB kept);
    with ``input_height`` at that height too. No frame in time: the model's own size, as before."""
    import cv2

    from fcn_perception.inference import openvino_backend

    compiled, asked = [], []
    real = openvino_backend.OpenVinoBackend._compile_model
    monkeypatch.setattr(openvino_backend.OpenVinoBackend, "_compile_model", lambda self, m: compiled.append(self.size) or real(self, m))

    def first_frame(settled: bool):
        asked.append((settled, len(compiled)))
        return (1280, 720)

    seg = Segmenter(SegmenterConfig(backend="openvino", precision="int8", cache_dir=str(tmp_path), first_frame=first_frame))
    assert asked == [(False, 0), (True, 0)] and seg.input_size == (640, 360) and compiled == [(640, 360)] and sorted(seg._backends) == [(640, 360)]
    assert seg.segment(cv2.resize(frames[0], (1280, 720))).mask.shape == (720, 1280) and sorted(seg._backends) == [(640, 360)]
    compiled.clear()
    low = Segmenter(SegmenterConfig(backend="openvino", precision="int8", cache_dir=str(tmp_path), input_height=270, first_frame=lambda settled: (1280, 720)))
    assert low.input_size == (480, 270) and compiled == [(480, 270)]
    compiled.clear()
    none = Segmenter(SegmenterConfig(backend="openvino", precision="int8", cache_dir=str(tmp_path), first_frame=lambda settled: None))
    assert none.input_size == (480, 360) and compiled == [(480, 360)]
    compiled.clear()  # prepared for the model's size while the frame is awaited, then for the frame's
    late_frame = SegmenterConfig(backend="openvino", precision="int8", cache_dir=str(tmp_path), first_frame=lambda settled: (1280, 720) if settled else None)
    late = Segmenter(late_frame)
    assert late.input_size == (640, 360) and compiled == [(640, 360)]
    assert late.segment(cv2.resize(frames[0], (1280, 720))).mask.shape == (720, 1280) and sorted(late._backends) == [(640, 360)]
    compiled.clear()  # no frame in time, and the camera's is another size: its graph is made, the unused first let go
    later = Segmenter(SegmenterConfig(backend="openvino", precision="int8", cache_dir=str(tmp_path), first_frame=lambda settled: None))
    assert later.segment(cv2.resize(frames[0], (1280, 720))).mask.shape == (720, 1280)
    assert compiled == [(480, 360), (640, 360)] and sorted(later._backends) == [(640, 360)] and later.input_size == (640, 360)
    assert later.segment(frames[0]).mask.shape == frames[0].shape[:2] and sorted(later._backends) == [(480, 360), (640, 360)]
    ort = Segmenter(SegmenterConfig(backend="onnxruntime", first_frame=lambda settled: pytest.fail("ONNX Runtime takes any size: nothing to wait for")))
    assert ort.input_size == (480, 360)


def test_a_load_yields_to_work_beside_it_when_openvino_compiles_and_at_once_elsewhere(tmp_path, monkeypatch):
    """The node opens its outputs beside the model's load once the load yields (inference/base.py,
    LOAD_YIELDS): OpenVINO as its compile starts, after its Python part (reading, graph surgery),
    which work beside it stalled; ONNX Runtime at once."""
    import contextvars
    import threading

    from fcn_perception.inference import openvino_backend
    from fcn_perception.inference.base import LOAD_YIELDS

    real = openvino_backend.core()
    at_compile = []

    class Spy:
        def __getattr__(self, name):
            return getattr(real, name)

        def compile_model(self, *args, **kwargs):
            at_compile.append(LOAD_YIELDS.get().is_set())
            return real.compile_model(*args, **kwargs)

    monkeypatch.setattr(openvino_backend, "core", Spy)

    def load(backend: str) -> tuple[bool, bool]:
        yields = threading.Event()
        LOAD_YIELDS.set(yields)
        before = yields.is_set()
        create_backend(backend, default_model_path("int8"), (320, 192), threads=1, cache=tmp_path, reuse_coarse=True)
        return before, yields.is_set()

    assert contextvars.copy_context().run(load, "openvino") == (False, True)
    assert at_compile == [True]  # one compile: the graph with the stride-32 switch
    assert contextvars.copy_context().run(load, "onnxruntime") == (False, True)
    assert LOAD_YIELDS.get() is None  # the loads' own contexts only
