"""TensorRT backend: engines built from the ONNX export, cached on disk by build key, run on a CUDA stream.

Written against the TensorRT 10 Python API (``tensorrt``). Buffers are torch CUDA tensors, so
preprocessing (resize, normalise) and the argmax stay on the GPU and only the uint8 mask crosses
to the host. Nothing here runs on machines without TensorRT and a CUDA GPU; ``available()``
says whether it can.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from fcn_perception.files import atomic_write_bytes, file_sha256
from fcn_perception.inference.model_store import cache_dir, cache_file
from fcn_perception.model.config import read_onnx_config

PRECISIONS = ("fp32", "fp16", "int8")
UNAVAILABLE_REASON = "TensorRT and a CUDA GPU are required"


def available() -> bool:
    try:
        import tensorrt  # noqa: F401
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def build_key(onnx_path: Path, precision: str, shapes: dict[str, tuple]) -> dict:
    """Everything an engine depends on: a change in any of these means a rebuild, never a load."""
    import tensorrt as trt
    import torch

    return {
        "onnx_sha256": file_sha256(onnx_path),
        "tensorrt": trt.__version__,
        "gpu": torch.cuda.get_device_name(0),
        "precision": precision,
        "shapes": {k: list(map(list, v)) for k, v in shapes.items()},
    }


def engine_paths(key: dict, cache: str | Path = "") -> tuple[Path, Path]:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    root = cache_dir(cache)
    return cache_file(root, "engines", f"{digest}.engine"), cache_file(root, "engines", f"{digest}.json")


def calibration_frames(onnx_path: str | Path, folder: str | Path, limit: int = 200) -> list[np.ndarray]:
    """Real frames preprocessed exactly as the pipeline does, at the engine's fixed input size."""
    from fcn_perception.inference.frames import calibration_batch

    cfg = read_onnx_config(onnx_path)
    return calibration_batch(folder, cfg.input_size, cfg.mean, cfg.std, limit)


class EntropyCalibrator:
    """INT8 calibration on real frames, preprocessed exactly as at inference (lazy TensorRT base class)."""

    def __new__(cls, frames: list[np.ndarray], cache_file: Path):
        import tensorrt as trt
        import torch

        class _Calibrator(trt.IInt8EntropyCalibrator2):
            def __init__(self) -> None:
                super().__init__()
                self.frames, self.index, self.cache_file = frames, 0, cache_file
                self.device = torch.empty(0, device="cuda")

            def get_batch_size(self) -> int:
                return 1

            def get_batch(self, names):
                if self.index >= len(self.frames):
                    return None
                self.device = torch.from_numpy(self.frames[self.index]).cuda().contiguous()
                self.index += 1
                return [int(self.device.data_ptr())]

            def read_calibration_cache(self):
                return self.cache_file.read_bytes() if self.cache_file.is_file() else None

            def write_calibration_cache(self, cache) -> None:
                atomic_write_bytes(self.cache_file, bytes(cache))

        return _Calibrator()


def build_engine(
    onnx_path: str | Path, precision: str = "fp16", shapes: dict[str, tuple] | None = None, calib_frames: list[np.ndarray] | None = None, cache: str | Path = ""
) -> Path:
    """Build (or find in the cache) a serialized engine; returns its path. ``shapes``: input -> (min, opt, max)."""
    import tensorrt as trt

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    onnx_path = Path(onnx_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ValueError(f"TensorRT could not parse {onnx_path}: {errors}")
    inp = network.get_input(0)
    if shapes is None:
        fixed = tuple(inp.shape)
        if any(d < 0 for d in fixed):
            raise ValueError(f"{onnx_path} has dynamic input {fixed}: pass shapes={{'{inp.name}': (min, opt, max)}}")
        shapes = {inp.name: (fixed, fixed, fixed)}
    key = build_key(onnx_path, precision, shapes)
    engine_file, manifest_file = engine_paths(key, cache)
    if engine_file.is_file() and manifest_file.is_file() and json.loads(manifest_file.read_text()).get("key") == key:
        return engine_file
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 2 << 30)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in shapes.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    timing_file = cache_file(cache_dir(cache), "engines", f"timing-{key['gpu'].replace(' ', '_').replace('/', '_')}-{key['tensorrt']}.cache")
    timing = config.create_timing_cache(timing_file.read_bytes() if timing_file.is_file() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        if not calib_frames:
            raise ValueError("int8 needs calibration frames (--calib-dir)")
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = EntropyCalibrator(calib_frames, engine_file.with_suffix(".calib"))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    atomic_write_bytes(timing_file, bytes(config.get_timing_cache().serialize()))
    atomic_write_bytes(engine_file, bytes(serialized))
    atomic_write_bytes(manifest_file, json.dumps({"key": key, "engine_sha256": file_sha256(engine_file)}, indent=2).encode())
    return engine_file


class TensorRTBackend:
    """Loads only engines this package built (manifest with build key and SHA-256), else builds one."""

    def __init__(self, onnx_path: str | Path, precision: str = "fp16", engine: str | Path | None = None, cache: str | Path = "") -> None:
        import tensorrt as trt
        import torch

        self.config = read_onnx_config(onnx_path)
        if engine and not Path(engine).is_file():
            raise FileNotFoundError(f"trusted_engine not found: {engine}")
        engine_file = Path(engine).resolve() if engine else build_engine(onnx_path, precision, cache=cache)
        if not engine:
            manifest = json.loads(engine_file.with_suffix(".json").read_text())
            if manifest["engine_sha256"] != file_sha256(engine_file):
                raise ValueError(f"{engine_file}: does not match its manifest; delete it to rebuild")
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(self.logger).deserialize_cuda_engine(engine_file.read_bytes())
        if self.engine is None:
            raise ValueError(f"{engine_file}: not a TensorRT engine for this TensorRT/GPU")
        self.context = self.engine.create_execution_context()
        self.device = torch.device("cuda")
        self.stream = torch.cuda.Stream()
        self.torch = torch
        self.input_name = self.engine.get_tensor_name(0)
        self.name = f"tensorrt-{precision}"

    def infer(self, batch: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.cuda.stream(self.stream):
            x = torch.from_numpy(batch).cuda(non_blocking=True)
            return self.infer_device(x).cpu().numpy()

    def infer_device(self, x):
        """(N, 3, H, W) float32 CUDA tensor -> (N, H, W) uint8 CUDA tensor; stays on the GPU."""
        torch = self.torch
        n, _, h, w = x.shape
        self.stream.wait_stream(torch.cuda.current_stream())  # x may come from work queued on another stream
        self.context.set_input_shape(self.input_name, (n, 3, h, w))
        logits = torch.empty((n, len(self.config.classes), h, w), device="cuda", dtype=torch.float32)
        mask = torch.empty((n, h, w), device="cuda", dtype=torch.uint8)
        self.context.set_tensor_address(self.input_name, int(x.data_ptr()))
        self.context.set_tensor_address("logits", int(logits.data_ptr()))
        self.context.set_tensor_address("mask", int(mask.data_ptr()))
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        self.stream.synchronize()
        return mask
