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

from fcn_perception.inference import tensorrt_backend as trtb
from fcn_perception.inference.backends import onnx_for
from fcn_perception.inference.model_store import default_model_path
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
    return {"fp32": fp32, "fp16": fp16, "qdq": qdq}


def test_graph_precision_is_read_from_the_file(graphs):
    assert trtb.onnx_graph_info(graphs["fp32"]) == ([1, 3, SIZE[1], SIZE[0]], "fp32")
    assert trtb.onnx_graph_info(graphs["fp16"])[1] == "fp16"
    assert trtb.onnx_graph_info(graphs["qdq"])[1] == "qdq-int8"
    dims, kind = trtb.onnx_graph_info(default_model_path("int8"))  # ONNX Runtime's uint8 Q/DQ, free size
    assert dims[2:] == [-1, -1] and kind == "qdq-other"


def test_tensorrt_10_weak_typing_uses_builder_flags_and_a_calibrator(graphs):
    assert trtb.build_plan(graphs["fp32"], "fp32", None, 10).flags == []
    assert trtb.build_plan(graphs["fp32"], "fp16", None, 10).flags == ["FP16"]
    int8 = trtb.build_plan(graphs["fp32"], "int8", None, 10)
    assert int8.flags == ["FP16", "INT8"] and int8.calibrate and not int8.strongly_typed
    explicit = trtb.build_plan(graphs["qdq"], "int8", None, 10)  # scales in the graph: no calibrator
    assert explicit.flags == ["FP16", "INT8"] and not explicit.calibrate


def test_tensorrt_11_strong_typing_takes_the_precision_from_the_graph(graphs):
    for precision, graph in (("fp32", "fp32"), ("fp16", "fp16"), ("int8", "qdq")):
        plan = trtb.build_plan(graphs[graph], precision, None, 11)
        assert plan.strongly_typed and plan.flags == [] and not plan.calibrate
    with pytest.raises(ValueError, match="precision fp16 needs an fp16 export"):
        trtb.build_plan(graphs["fp32"], "fp16", None, 11)
    with pytest.raises(ValueError, match="precision int8 needs a symmetric INT8 Q/DQ ONNX"):
        trtb.build_plan(graphs["fp32"], "int8", None, 11)
    with pytest.raises(ValueError, match="asymmetric uint8"):
        trtb.build_plan(default_model_path("int8"), "int8", (480, 360), 11)


def test_a_free_size_graph_gets_a_profile_for_the_frame_size_and_a_fixed_one_its_own(graphs):
    shipped = default_model_path("onnx")
    with pytest.raises(ValueError, match="free height/width: the engine needs the frame size"):
        trtb.build_plan(shipped, "fp32", None, 10)
    assert trtb.build_plan(shipped, "fp32", (704, 360), 10).shapes == {"image": ((1, 3, 360, 704),) * 3}
    assert trtb.build_plan(graphs["fp32"], "fp32", None, 10).shapes == {"image": ((1, 3, SIZE[1], SIZE[0]),) * 3}
    with pytest.raises(ValueError, match="fixed to 96x64, not 480x360"):
        trtb.build_plan(graphs["fp32"], "fp32", (480, 360), 10)


def test_a_cached_engine_is_found_before_any_builder_or_parser_exists(graphs, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a cache hit must not create a Builder or parse the ONNX")

    logger = SimpleNamespace(WARNING=2)
    fake = SimpleNamespace(__version__="11.1.0", Builder=refuse, OnnxParser=refuse, Logger=lambda level: logger)
    fake.Logger.WARNING = 2
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(trtb, "_LOGGER", None)
    monkeypatch.setattr(trtb, "_gpu_name", lambda: "Fake GPU")
    plan = trtb.build_plan(graphs["fp16"], "fp16", None, 11)
    key = trtb.build_key(graphs["fp16"], "fp16", plan.shapes)
    engine, manifest = trtb.engine_paths(key, tmp_path)
    engine.write_bytes(b"engine")
    manifest.write_text(json.dumps({"key": key}))
    assert trtb.build_engine(graphs["fp16"], "fp16", cache=tmp_path) == engine
    key["tensorrt"] = "10.9.0"  # another build key: a miss, which builds (and here meets the refusing Builder)
    manifest.write_text(json.dumps({"key": key}))
    with pytest.raises(AssertionError, match="must not create a Builder"):
        trtb.build_engine(graphs["fp16"], "fp16", cache=tmp_path)


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
    backend = trtb.TensorRTBackend.__new__(trtb.TensorRTBackend)
    backend.engine = _Engine(io)
    if error:
        with pytest.raises(ValueError, match=error):
            backend._check_io(FAKE_TRT, "x.engine")
    else:
        backend._check_io(FAKE_TRT, "x.engine")
        assert backend.outputs == ("logits", "mask", *extra)
