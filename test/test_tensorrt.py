"""TensorRT backend: runs where TensorRT and a CUDA GPU exist (a vehicle computer), skips elsewhere.

Per major: TensorRT 10 builds fp16 and int8 from the fp32 graph with builder flags and a calibrator;
11 is strongly typed — fp16 from the fp16 export, int8 from the symmetric Q/DQ graph — and refuses
the flags' route. Each test that belongs to one major skips on the other with its reason.

On a vehicle: `make setup && .venv/bin/python -m pytest -q test/test_tensorrt.py`
"""

import json

import numpy as np
import pytest

from fcn_perception.inference.backends import create_backend, onnx_for
from fcn_perception.inference.model_store import default_model_path
from fcn_perception.inference.tensorrt import versions
from fcn_perception.inference.tensorrt.build import build_engine, calibration_frames
from fcn_perception.inference.tensorrt.runtime import TensorRTBackend
from fcn_perception.inference.torch_backend import TorchBackend
from fcn_perception.model.fcn import load_model

pytestmark = pytest.mark.skipif(not versions.available(), reason=versions.unavailable_reason() or "available")
STRONG = versions.strongly_typed()  # TensorRT 11 (evaluated only where TensorRT is installed)
only_10 = pytest.mark.skipif(versions.trt_major() != 10, reason="TensorRT 10's weak typing (builder flags, calibrator); 11 removed it")
only_11 = pytest.mark.skipif(versions.trt_major() != 11, reason="TensorRT 11's strongly typed routes")


def fp16_graph(w: int = 480, h: int = 360):
    """The graph an fp16 engine is built from: the fp32 export on 10, the fp16 export on 11."""
    return onnx_for(default_model_path(), w, h, half=STRONG)


@pytest.fixture(scope="module")
def frames():
    """The shipped sample drive: real frames that exist on a vehicle too (no dataset needed)."""
    from fcn_perception.inference.preprocess import preprocess_rgb
    from fcn_perception.tools.samples import sample_frames

    cfg = load_model(default_model_path()).cfg
    return [preprocess_rgb(bgr[..., ::-1].copy(), cfg.input_size, cfg.mean, cfg.std) for bgr in sample_frames(cfg.input_size, 40)[::8]]


@pytest.mark.parametrize(("precision", "agreement"), [("fp32", 0.995), ("fp16", 0.99)])
def test_engine_masks_agree_with_torch(frames, precision, agreement):
    ref = TorchBackend(load_model(default_model_path()), device="cuda", fp16=False)
    trt = create_backend("tensorrt", default_model_path(), precision=precision)
    for x in frames:
        assert np.mean(trt.infer(x).mask == ref.infer(x).mask) >= agreement


def test_engines_are_cached_by_key_and_rebuilt_when_stale():
    onnx = fp16_graph()
    first = build_engine(onnx, "fp16")
    assert build_engine(onnx, "fp16") == first  # cache hit
    manifest = first.with_suffix(".json")
    data = json.loads(manifest.read_text())
    data["key"]["tensorrt"] = "0.0.0"  # a mismatched build key must never be loaded
    manifest.write_text(json.dumps(data))
    rebuilt = build_engine(onnx, "fp16")
    assert json.loads(rebuilt.with_suffix(".json").read_text())["key"]["tensorrt"] != "0.0.0"


@only_10
def test_int8_calibrated_on_real_frames(frames, tmp_path):
    import cv2

    from fcn_perception.tools.samples import sample_frames

    for i, bgr in enumerate(sample_frames((480, 360), 40)):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), bgr)
    onnx = onnx_for(default_model_path(), 480, 360)
    calib = calibration_frames(onnx, tmp_path, limit=40, size=(480, 360))
    engine = build_engine(onnx, "int8", calib_frames=calib)
    trt = TensorRTBackend(onnx, "int8")  # no frames now: the INT8 engine built above is found
    ref = TorchBackend(load_model(default_model_path()), device="cuda", fp16=False)
    assert engine.is_file()
    assert np.mean([np.mean(trt.infer(x).mask == ref.infer(x).mask) for x in frames]) >= 0.97


@only_10
def test_int8_without_frames_or_an_engine_is_a_clear_error(tmp_path):
    onnx = onnx_for(default_model_path(), 320, 240)
    with pytest.raises(ValueError, match="int8 from an fp32 graph on TensorRT 10 needs calibration frames"):
        build_engine(onnx, "int8", cache=tmp_path / "empty_cache")


@only_11
def test_tensorrt_11_refuses_the_flag_routes_with_the_graph_they_need(tmp_path):
    onnx = onnx_for(default_model_path(), 320, 240)
    with pytest.raises(ValueError, match="precision fp16 needs an fp16 export"):
        build_engine(onnx, "fp16", cache=tmp_path)
    with pytest.raises(ValueError, match="precision int8 needs a symmetric INT8 Q/DQ ONNX"):
        build_engine(onnx, "int8", cache=tmp_path)


def test_int8_from_the_symmetric_qdq_graph_on_either_major(frames, tmp_path):
    """The explicit-quantisation route: 11's only INT8, 10's without a calibrator."""
    import cv2

    from fcn_perception.inference.quantize import quantize_int8
    from fcn_perception.tools.samples import sample_frames

    for i, bgr in enumerate(sample_frames((480, 360), 16)):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), bgr)
    qdq = quantize_int8(onnx_for(default_model_path(), 480, 360), tmp_path / "sym.int8.onnx", tmp_path, frames=16, symmetric=True)
    trt = TensorRTBackend(qdq, "int8", cache=tmp_path / "cache")
    ref = TorchBackend(load_model(default_model_path()), device="cuda", fp16=False)
    assert np.mean([np.mean(trt.infer(x).mask == ref.infer(x).mask) for x in frames]) >= 0.9


def test_the_segmenter_on_tensorrt_serves_as_the_node_does():
    """On-device preprocessing on the backend's stream, masks at the frame's size, per-size engines."""
    import cv2

    from fcn_perception.inference.segmenter import Segmenter, SegmenterConfig
    from fcn_perception.tools.samples import sample_frames

    seg = Segmenter(SegmenterConfig(backend="tensorrt", precision="fp16"))
    dynamic = Segmenter(SegmenterConfig(backend="tensorrt", precision="fp32", model=str(default_model_path("onnx"))))
    assert dynamic.forced_size is None  # the shipped free-size .onnx gets an engine per frame size
    host = Segmenter(SegmenterConfig(backend="torch", device="cuda", device_preprocess="off"))
    assert seg.on_device and seg.backend_name == "tensorrt-fp16"
    for bgr in sample_frames((480, 360), 40)[::10]:
        for size in ((480, 360), (1280, 720)):
            rgb = cv2.resize(bgr, size)[..., ::-1].copy()
            a, b = seg.segment(rgb).mask, host.segment(rgb).mask
            assert a.shape == (size[1], size[0]) and np.mean(a == b) >= 0.99


def test_the_first_engine_is_built_for_the_camera_s_first_frame(tmp_path):
    """A 16:9 camera heard while the model loads: one engine, at its size (test_tensorrt_logic.py
    checks the same route on the CPU with a stand-in engine)."""
    from fcn_perception.inference.segmenter import Segmenter, SegmenterConfig

    seg = Segmenter(SegmenterConfig(backend="tensorrt", precision="fp16", cache_dir=str(tmp_path), first_frame=lambda settled: (1280, 720)))
    assert seg.input_size == (640, 360) and sorted(seg._backends) == [(640, 360)]
    frame = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    assert seg.segment(frame).mask.shape == (720, 1280) and sorted(seg._backends) == [(640, 360)]


def test_trusted_engine_is_used_and_a_tampered_cached_engine_is_refused(tmp_path):
    onnx = fp16_graph()
    engine = build_engine(onnx, "fp16", cache=tmp_path / "cache")
    elsewhere = tmp_path / "vendor.engine"
    elsewhere.write_bytes(engine.read_bytes())
    trusted = create_backend("tensorrt", default_model_path(), input_size=(480, 360), engine=elsewhere, cache=tmp_path / "other")
    assert trusted.infer(np.zeros((1, 3, 360, 480), np.float32)).mask.shape == (1, 360, 480)
    with pytest.raises(ValueError, match="serves 480x360 to 480x360, not 640x360 frames"):  # only the shape it was built for
        create_backend("tensorrt", default_model_path(), input_size=(640, 360), engine=elsewhere, cache=tmp_path / "other")
    data = bytearray(engine.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the cached engine
    engine.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match its manifest"):
        TensorRTBackend(onnx, "fp16", cache=tmp_path / "cache")


def test_gpu_check_builds_both_routes_and_agrees_with_the_cpu_path(tmp_path):
    """The one command for the car: TensorRT fp16 and int8 (symmetric Q/DQ) per size, figures printed."""
    from fcn_perception.tools.cli import main

    out = tmp_path / "gpu.json"
    assert main(["gpu-check", "--sizes", "480x360", "--frames", "10", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    routes = {r["route"]: r for r in rows}
    assert {"tensorrt-fp16", "tensorrt-int8"} <= set(routes)
    assert routes["tensorrt-fp16"]["agreement"] >= 0.97 and routes["tensorrt-int8"]["agreement"] >= 0.9
