"""Building an engine with TensorRT's Builder: parse, profile, precision (TensorRT 10's flags and
calibrator, or 11's strong typing), timing cache, serialize into the engine cache."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from fcn_perception.files import atomic_write_bytes
from fcn_perception.inference.tensorrt import engine_cache
from fcn_perception.inference.tensorrt.plan import BuildPlan, build_plan
from fcn_perception.inference.tensorrt.versions import logger
from fcn_perception.model.config import read_onnx_config

#: The functions of this module that run on one TensorRT major only (the others run on both): the
#: names test holds each function's TensorRT names against that major's bindings.
ONLY_ON = {"configure_weak_typing": (10,), "EntropyCalibrator": (10,)}
WORKSPACE_BYTES = 2 << 30


def calibration_frames(onnx_path: str | Path, folder: str | Path, limit: int = 200, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Real frames preprocessed exactly as the pipeline does, at the engine's input ``size`` (w, h;
    the profile's shape — calibration runs at that shape), else the model's own size."""
    from fcn_perception.inference.frames import calibration_batch

    cfg = read_onnx_config(onnx_path)
    return calibration_batch(folder, size or tuple(cfg.input_size), cfg.mean, cfg.std, limit)


def EntropyCalibrator(frames: list[np.ndarray], cache_file: Path):
    """INT8 calibration on real frames (TensorRT 10; 11 removed calibrators). Built lazily because its
    base class is TensorRT's."""
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


def configure_weak_typing(trt, profile, config, plan: BuildPlan, calib_frames, calib_file: Path) -> None:
    """TensorRT 10: precision by builder flags; INT8 from an fp32 graph calibrated on real frames at
    the profile's shape, with the engine's profile as the calibration profile (10's docs: required
    with runtime dims)."""
    for flag in plan.flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if not plan.calibrate:
        return
    shape = plan.input_shape
    if any(tuple(f.shape) != shape for f in calib_frames):
        raise ValueError(f"calibration frames must be {shape} (the engine's profile), got {sorted({tuple(f.shape) for f in calib_frames})}")
    config.set_calibration_profile(profile)
    config.int8_calibrator = EntropyCalibrator(calib_frames, calib_file)


def _parse(trt, builder, onnx_path: Path):
    # TensorRT 11: strong typing is always on (creation flags 0); 10: weak typing with builder flags
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger())
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ValueError(f"TensorRT could not parse {onnx_path}: {errors}")
    return network, parser


def _use_timing_cache(config, timing_file: Path):
    """The shared timing cache, when TensorRT takes it; one it refuses (another version's, a damaged
    file) costs build time only: a warning, and the engine is built without it."""
    timing = config.create_timing_cache(timing_file.read_bytes() if timing_file.is_file() else b"")
    if timing is None or not config.set_timing_cache(timing, ignore_mismatch=False):
        warnings.warn(f"TensorRT did not take the timing cache {timing_file}; building without it", RuntimeWarning, stacklevel=3)
        return False
    return True


def build_engine(
    onnx_path: str | Path, precision: str = "fp16", size: tuple[int, int] | None = None, calib_frames: list[np.ndarray] | None = None, cache: str | Path = ""
) -> Path:
    """Build (or find in the cache) a serialized engine for frames of ``size`` (w, h; a fixed graph's
    own size when None); returns its path. The cache is asked before any Builder or parser exists."""
    import tensorrt as trt

    onnx_path = Path(onnx_path)
    plan = build_plan(onnx_path, precision, size, int(trt.__version__.split(".")[0]))
    key = engine_cache.build_key(onnx_path, precision, plan.shapes, engine_cache.frames_hash(calib_frames) if plan.calibrate else "")
    if plan.calibrate and not calib_frames:
        cached = engine_cache.cached_int8(key, cache)
        if cached is None:
            raise ValueError(
                "int8 from an fp32 graph on TensorRT 10 needs calibration frames (--calib-dir) or an INT8 engine built earlier for this model, TensorRT and GPU"
            )
        return cached
    if (cached := engine_cache.cached_engine(key, cache)) is not None:
        return cached
    builder = trt.Builder(logger())
    network, _parser = _parse(trt, builder, onnx_path)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in plan.shapes.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    timing_file = engine_cache.timing_cache_path(key, cache)
    timed = _use_timing_cache(config, timing_file)
    if not plan.strongly_typed:
        configure_weak_typing(trt, profile, config, plan, calib_frames, engine_cache.engine_paths(key, cache)[0].with_suffix(".calib"))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    engine = engine_cache.write_engine(key, bytes(serialized), cache)
    if timed and (timing := config.get_timing_cache()) is not None:
        atomic_write_bytes(timing_file, bytes(timing.serialize()))
    return engine
