"""TensorRT's build logic on the CPU (no TensorRT, no GPU here): what profile and precision route an
engine gets for TensorRT 10 and 11, that a cache hit touches no Builder or parser, and that the mask
cast is one TensorRT accepts. The GPU tests themselves are in test_tensorrt.py (skipped here)."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import numpy as np
import onnx
import pytest

from fcn_perception.inference.backends import onnx_for
from fcn_perception.inference.model_store import default_model_path
from fcn_perception.inference.tensorrt import engine_cache, versions
from fcn_perception.inference.tensorrt.build import build_engine, calibration_frames
from fcn_perception.inference.tensorrt.graph import onnx_graph_info
from fcn_perception.inference.tensorrt.plan import build_plan
from fcn_perception.inference.tensorrt.runtime import TensorRTBackend
from fcn_perception.model.config import route_mask_through_float

SIZE = (96, 64)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory, camvid):
    """fp32 and fp16 fixed-size exports of the shipped checkpoint, and a symmetric INT8 Q/DQ one."""
    from fcn_perception.inference.quantize import quantize_int8

    cache = tmp_path_factory.mktemp("cache")
    fp32 = onnx_for(default_model_path(), *SIZE, cache=cache)
    fp16 = onnx_for(default_model_path(), *SIZE, cache=cache, half=True)
    calib = tmp_path_factory.mktemp("calib")
    for f in sorted((camvid / "train").iterdir())[:4]:
        (calib / f.name).write_bytes(f.read_bytes())
    qdq = quantize_int8(fp32, cache / "sym.int8.onnx", calib, frames=4, symmetric=True)
    return {"fp32": fp32, "fp16": fp16, "qdq": qdq, "calib": calib}


def test_graph_precision_is_read_from_the_file(graphs):
    assert onnx_graph_info(graphs["fp32"]) == ([1, 3, SIZE[1], SIZE[0]], "fp32")
    assert onnx_graph_info(graphs["fp16"])[1] == "fp16"
    assert onnx_graph_info(graphs["qdq"])[1] == "qdq-int8"
    dims, kind = onnx_graph_info(default_model_path("int8"))  # ONNX Runtime's uint8 Q/DQ, free size
    assert dims[2:] == [-1, -1] and kind == "qdq-other"


def test_tensorrt_10_weak_typing_uses_builder_flags_and_a_calibrator(graphs):
    assert build_plan(graphs["fp32"], "fp32", None, 10).flags == []
    assert build_plan(graphs["fp32"], "fp16", None, 10).flags == ["FP16"]
    int8 = build_plan(graphs["fp32"], "int8", None, 10)
    assert int8.flags == ["FP16", "INT8"] and int8.calibrate and not int8.strongly_typed
    explicit = build_plan(graphs["qdq"], "int8", None, 10)  # scales in the graph: no calibrator
    assert explicit.flags == ["FP16", "INT8"] and not explicit.calibrate


def test_tensorrt_11_strong_typing_takes_the_precision_from_the_graph(graphs):
    for precision, graph in (("fp32", "fp32"), ("fp16", "fp16"), ("int8", "qdq")):
        plan = build_plan(graphs[graph], precision, None, 11)
        assert plan.strongly_typed and plan.flags == [] and not plan.calibrate
    with pytest.raises(ValueError, match="precision fp16 needs an fp16 export"):
        build_plan(graphs["fp32"], "fp16", None, 11)
    with pytest.raises(ValueError, match="precision int8 needs a symmetric INT8 Q/DQ ONNX"):
        build_plan(graphs["fp32"], "int8", None, 11)
    with pytest.raises(ValueError, match=r"parser would refuse .*output is UINT8.*quantize --symmetric"):
        build_plan(default_model_path("int8"), "int8", (480, 360), 11)


def test_a_free_size_graph_gets_a_profile_for_the_frame_size_and_a_fixed_one_its_own(graphs):
    shipped = default_model_path("onnx")
    with pytest.raises(ValueError, match="free height/width: the engine needs the frame size"):
        build_plan(shipped, "fp32", None, 10)
    assert build_plan(shipped, "fp32", (704, 360), 10).shapes == {"image": ((1, 3, 360, 704),) * 3}
    assert build_plan(graphs["fp32"], "fp32", None, 10).shapes == {"image": ((1, 3, SIZE[1], SIZE[0]),) * 3}
    with pytest.raises(ValueError, match="fixed to 96x64, not 480x360"):
        build_plan(graphs["fp32"], "fp32", (480, 360), 10)


def test_a_cached_engine_is_found_before_any_builder_or_parser_exists(graphs, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a cache hit must not create a Builder or parse the ONNX")

    logger = SimpleNamespace(WARNING=2)
    fake = SimpleNamespace(__version__="11.1.0", Builder=refuse, OnnxParser=refuse, Logger=lambda level: logger)
    fake.Logger.WARNING = 2
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(versions, "_LOGGER", None)
    monkeypatch.setattr(engine_cache, "gpu_name", lambda: "Fake GPU")
    plan = build_plan(graphs["fp16"], "fp16", None, 11)
    key = engine_cache.build_key(graphs["fp16"], "fp16", plan.shapes)
    engine, manifest = engine_cache.engine_paths(key, tmp_path)
    engine.write_bytes(b"engine")
    manifest.write_text(json.dumps({"key": key}))
    assert build_engine(graphs["fp16"], "fp16", cache=tmp_path) == engine
    key["tensorrt"] = "10.9.0"  # another build key: a miss, which builds (and here meets the refusing Builder)
    manifest.write_text(json.dumps({"key": key}))
    with pytest.raises(AssertionError, match="must not create a Builder"):
        build_engine(graphs["fp16"], "fp16", cache=tmp_path)


def test_the_mask_reaches_uint8_through_float32_in_every_shipped_graph(graphs):
    for path in (default_model_path("onnx"), default_model_path("int8"), graphs["fp16"], graphs["qdq"]):
        proto = onnx.load(str(path))
        assert route_mask_through_float(proto) == 0, f"{path.name}: ArgMax casts straight to uint8"
    # what a cast-folding tool makes of an ArgMax tail (the old export and ORT's pre-processing did this)
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 2, 2])
    y = helper.make_tensor_value_info("mask", TensorProto.UINT8, [1, 2, 2])
    nodes = [helper.make_node("ArgMax", ["logits"], ["ids"], axis=1, keepdims=0), helper.make_node("Cast", ["ids"], ["mask"], to=TensorProto.UINT8)]
    folded = helper.make_model(helper.make_graph(nodes, "tail", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    assert route_mask_through_float(folded) == 1
    onnx.checker.check_model(folded)
    import onnxruntime as ort

    logits = np.random.default_rng(0).standard_normal((1, 3, 2, 2)).astype(np.float32)
    mask = ort.InferenceSession(folded.SerializeToString()).run(["mask"], {"logits": logits})[0]
    assert np.array_equal(mask, logits.argmax(1).astype(np.uint8))
    # the export's own tail: the running max gives float ids, cast once to uint8
    proto = onnx.load(str(graphs["fp32"]))
    producers = {o: n for n in proto.graph.node for o in n.output}
    tail = producers["mask"]
    assert tail.op_type == "Cast" and producers[tail.input[0]].op_type == "Where" and not any(n.op_type == "ArgMax" for n in proto.graph.node)


class _Engine:
    """An engine's I/O table as TensorRT reports it (names, modes, dtypes, shapes)."""

    def __init__(self, io: dict[str, tuple[str, str]]) -> None:
        self.io = io  # name -> (mode, dtype)
        self.num_io_tensors = len(io)

    def get_tensor_name(self, i: int) -> str:
        return list(self.io)[i]

    def get_tensor_mode(self, name: str) -> str:
        return self.io[name][0]

    def get_tensor_dtype(self, name: str) -> str:
        return self.io[name][1]

    def get_tensor_shape(self, name: str) -> tuple:
        return (1, 3, -1, -1)


FAKE_TRT = SimpleNamespace(TensorIOMode=SimpleNamespace(INPUT="in", OUTPUT="out"), DataType=SimpleNamespace(FLOAT="f32", UINT8="u8"))


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({}, None),  # an engine of a graph exported before the confidence output: masks only
        ({"confidence": ("out", "u8")}, None),
        ({"confidence": ("out", "f32")}, "tensor confidence is f32"),
        ({"scores": ("out", "f32")}, "outputs"),
    ],
)
def test_an_engine_with_or_without_the_confidence_output_is_taken_and_others_refused(extra, error):
    io = {"image": ("in", "f32"), "logits": ("out", "f32"), "mask": ("out", "u8"), **extra}
    backend = TensorRTBackend.__new__(TensorRTBackend)
    backend.engine = _Engine(io)
    if error:
        with pytest.raises(ValueError, match=error):
            backend._check_io(FAKE_TRT, "x.engine")
    else:
        backend._check_io(FAKE_TRT, "x.engine")
        assert backend.outputs == ("logits", "mask", *extra)


def test_the_symmetric_int8_graph_is_one_tensorrt_parses_and_the_shipped_uint8_one_is_refused(graphs):
    from fcn_perception.inference.tensorrt.graph import parser_refusals

    assert parser_refusals(onnx.load(str(graphs["fp32"]))) == []
    assert parser_refusals(onnx.load(str(graphs["fp16"]))) == []
    qdq = onnx.load(str(graphs["qdq"]))
    assert parser_refusals(qdq) == []
    inits = {i.name: i for i in qdq.graph.initializer}
    dq_inputs = [inits[n.input[0]].data_type for n in qdq.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    assert dq_inputs and set(dq_inputs) == {onnx.TensorProto.INT8}  # weights INT8, biases stay float
    shipped = parser_refusals(onnx.load(str(default_model_path("int8"))))
    assert any("output is UINT8" in r for r in shipped) and any("zero point is not 0" in r for r in shipped)


def test_int32_biases_and_foreign_ops_are_refused(graphs, tmp_path, monkeypatch):
    """ONNX Runtime's default bias quantisation (what quantize --symmetric made before) is refused,
    by the check and by quantize itself; so is an op outside the matrix."""
    from fcn_perception.inference import quantize
    from fcn_perception.inference.tensorrt.graph import parser_refusals

    monkeypatch.setattr(quantize, "TENSORRT_OPTIONS", {"ActivationSymmetric": True, "WeightSymmetric": True})
    calib = tmp_path / "calib"
    calib.mkdir()
    for f in sorted(graphs["calib"].iterdir())[:2]:
        (calib / f.name).write_bytes(f.read_bytes())
    with pytest.raises(RuntimeError, match=r"TensorRT would refuse .*input is INT32"):
        quantize.quantize_int8(graphs["fp32"], tmp_path / "old.onnx", calib, frames=2, symmetric=True)
    proto = onnx.load(str(graphs["fp32"]))
    proto.graph.node[0].op_type = "Gelu"
    assert any("op Gelu is not in onnx-tensorrt's matrix" in r for r in parser_refusals(proto))


def test_the_symmetric_graph_segments_as_the_fp32_one(graphs, camvid, tmp_path):
    """Parsable is not enough: the graph TensorRT gets gives the fp32 graph's masks (ONNX Runtime runs
    it here), at the model's own size (16 calibration frames: 92.6 % of pixels; 4 here)."""
    from fcn_perception.inference.frames import read_rgb
    from fcn_perception.inference.onnxruntime_backend import OnnxRuntimeBackend
    from fcn_perception.inference.preprocess import preprocess_rgb
    from fcn_perception.inference.quantize import quantize_int8

    size = (480, 360)
    fp32 = onnx_for(default_model_path(), *size, cache=tmp_path)
    ref = OnnxRuntimeBackend(fp32)
    qdq = OnnxRuntimeBackend(quantize_int8(fp32, tmp_path / "sym.onnx", graphs["calib"], frames=4, symmetric=True))
    cfg = ref.config
    frames = [preprocess_rgb(read_rgb(f), size, cfg.mean, cfg.std) for f in sorted((camvid / "val").iterdir())[::25]]
    agreement = np.mean([np.mean(ref.infer(x).mask == qdq.infer(x).mask) for x in frames])
    assert agreement >= 0.88, agreement


class _Recorder:
    """Stands in for TensorRT's Builder objects (TensorRT cannot load here): records the calls."""

    def __init__(self, log: list, name: str, **returns) -> None:
        self._log, self._name, self._returns = log, name, returns

    def __getattr__(self, attr):
        def call(*args, **kwargs):
            self._log.append((self._name, attr, args))
            value = self._returns.get(attr)
            return value(*args) if callable(value) else value

        return call


def _fake_tensorrt(major: int, log: list, take_timing_cache: bool):
    profile = _Recorder(log, "profile")
    config = _Recorder(log, "config", create_timing_cache=object(), set_timing_cache=take_timing_cache, get_timing_cache=None)
    made = {"create_network": object(), "create_builder_config": config, "create_optimization_profile": profile}
    builder = _Recorder(log, "builder", **made, build_serialized_network=b"serialized engine")
    parser = _Recorder(log, "parser", parse=True)

    class Calibrator:  # IInt8EntropyCalibrator2's place: the build only constructs it
        def __init__(self) -> None:
            log.append(("calibrator", "init", ()))

    return SimpleNamespace(
        __version__=f"{major}.0.0",
        Builder=lambda logger: builder,
        OnnxParser=lambda network, logger: parser,
        Logger=SimpleNamespace(WARNING=2, __call__=None),
        MemoryPoolType=SimpleNamespace(WORKSPACE="workspace"),
        BuilderFlag=SimpleNamespace(FP16="fp16-flag", INT8="int8-flag"),
        IInt8EntropyCalibrator2=Calibrator,
    )


@pytest.mark.parametrize("major", [10, 11])
def test_a_refused_timing_cache_is_a_warning_and_the_engine_is_still_written(graphs, tmp_path, monkeypatch, major):
    log: list = []
    fake = _fake_tensorrt(major, log, take_timing_cache=False)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(versions, "_LOGGER", "logger")
    monkeypatch.setattr(engine_cache, "gpu_name", lambda: "Fake GPU")
    with pytest.warns(RuntimeWarning, match="did not take the timing cache"):
        engine = build_engine(graphs["fp16"] if major == 11 else graphs["fp32"], "fp16", cache=tmp_path)
    assert engine.read_bytes() == b"serialized engine" and json.loads(engine.with_suffix(".json").read_text())["engine_sha256"]
    flags = [args for name, attr, args in log if attr == "set_flag"]
    assert flags == ([] if major == 11 else [("fp16-flag",)])


def test_tensorrt_10_calibrates_at_the_profiles_shape_with_the_calibration_profile_set(graphs, tmp_path, monkeypatch):
    import torch

    log: list = []
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt(10, log, take_timing_cache=True))
    monkeypatch.setattr(versions, "_LOGGER", "logger")
    monkeypatch.setattr(engine_cache, "gpu_name", lambda: "Fake GPU")
    monkeypatch.setattr(torch, "empty", lambda *a, **k: None)  # the calibrator's first device buffer
    shipped = default_model_path("onnx")  # free height/width: the profile is the frame's size
    frames = calibration_frames(shipped, graphs["calib"], limit=2, size=(704, 360))
    assert {f.shape for f in frames} == {(1, 3, 360, 704)}
    build_engine(shipped, "int8", (704, 360), calib_frames=frames, cache=tmp_path)
    calls = [(name, attr) for name, attr, _ in log]
    assert ("config", "set_calibration_profile") in calls and ("calibrator", "init") in calls
    shapes = [args for name, attr, args in log if name == "profile" and attr == "set_shape"]
    assert shapes and all(args[1] == (1, 3, 360, 704) for args in shapes)
    with pytest.raises(ValueError, match=r"calibration frames must be \(1, 3, 360, 480\)"):
        build_engine(shipped, "int8", (480, 360), calib_frames=frames, cache=tmp_path)


def test_gpu_check_without_a_gpu_is_one_line_and_exit_code_2(capsys):
    from fcn_perception.inference.backends import torch_cuda_available
    from fcn_perception.tools.cli import main

    if torch_cuda_available():
        pytest.skip("a CUDA GPU is here: test/test_tensorrt.py runs the real thing")
    assert main(["gpu-check", "--sizes", "96x64", "--frames", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CUDA GPU here" in err[0]


def test_the_first_engine_is_built_for_a_camera_s_first_frame_from_the_checkpoint_exported_at_its_size(tmp_path, monkeypatch):
    """On a vehicle a 16:9 camera's engine was the second one built: the first, at configure, was for
    the model's own 4:3 size (minutes of a build no frame used), then frames were dropped while the
    camera's was built. Now the checkpoint is exported at the size of the first frame heard, and that
    one engine is built; a free-size .onnx gets its first profile for it. A trusted engine, or a
    fixed-size .onnx, serves the size it was made for, and the first frame is not asked. TensorRT cannot
    run here: the engine is a stand-in that records the graph it was given and infers on ONNX
    Runtime."""
    from fcn_perception.inference.backends import create_backend
    from fcn_perception.inference.onnxruntime_backend import OnnxRuntimeBackend
    from fcn_perception.inference.segmenter import Segmenter, SegmenterConfig, asks_first_frame
    from fcn_perception.inference.tensorrt import runtime

    built = []

    class Engine(OnnxRuntimeBackend):
        def __init__(self, onnx_path, precision="fp16", engine=None, cache="", size=None) -> None:
            dims, _ = onnx_graph_info(onnx_path)
            built.append((size, tuple(dims[2:][::-1]), engine))
            super().__init__(onnx_path)
            self.name, self.size = f"tensorrt-{precision}", size

    monkeypatch.setattr(versions, "unavailable_reason", lambda: None)
    monkeypatch.setattr(runtime, "TensorRTBackend", Engine)
    asked = []
    cfg = SegmenterConfig(backend="tensorrt", precision="fp32", cache_dir=str(tmp_path), first_frame=lambda settled: asked.append(settled) or (1280, 720))
    assert asks_first_frame(cfg)
    seg = Segmenter(cfg)
    assert asked == [True] and built == [((640, 360), (640, 360), None)]  # one engine, the exported graph at the camera's size
    assert seg.input_size == (640, 360) and sorted(seg._backends) == [(640, 360)]
    frame = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    assert seg.segment(frame).mask.shape == (720, 1280) and sorted(seg._backends) == [(640, 360)] and len(built) == 1
    assert not asks_first_frame(SegmenterConfig(backend="tensorrt", engine=str(tmp_path / "vendor.engine")))
    assert not asks_first_frame(SegmenterConfig(backend="tensorrt", input_width=640, input_height=360))
    built.clear()  # the shipped free-size .onnx: its first profile for the camera's size; a fixed-size one: its own
    create_backend("tensorrt", default_model_path("onnx"), lambda mc, settled: (640, 360), cache=tmp_path)
    fixed = onnx_for(default_model_path(), *SIZE, cache=tmp_path)
    create_backend("tensorrt", fixed, lambda mc, settled: pytest.fail("a fixed-size graph runs its own size: nothing to ask"), cache=tmp_path)
    assert built == [((640, 360), (-1, -1), None), (None, SIZE, None)]
