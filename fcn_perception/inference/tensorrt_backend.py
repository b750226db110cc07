"""TensorRT backend: engines built from the ONNX export, cached on disk by build key, run on a CUDA stream.

Written against NVIDIA's documented Python API of TensorRT 10 and 11. The difference that matters
here is typing: TensorRT 10 builds "weakly typed" networks, where builder flags (FP16, INT8 with a
calibrator on real frames) let it choose lower precision; TensorRT 11 removed those flags and builds
every network strongly typed, so the precision is the graph's own — fp32 from the fp32 export, fp16
from an fp16 export (made from the checkpoint), int8 from a Q/DQ graph with symmetric INT8 scales
(``fcn-perception quantize --symmetric``), no calibrator. :func:`build_plan` decides this without
TensorRT, so the logic is tested on machines without a GPU.

Buffers are torch CUDA tensors, so preprocessing (resize, normalise) and the argmax stay on the GPU
and only the uint8 mask crosses to the host. Nothing here runs on machines without TensorRT and a
CUDA GPU; ``available()`` says whether it can.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fcn_perception.files import atomic_write_bytes, file_sha256
from fcn_perception.inference.backends import Inference
from fcn_perception.inference.model_store import cache_dir, cache_file
from fcn_perception.model.config import CONFIDENCE_NAME, INPUT_NAME, LOGITS_NAME, MASK_NAME, read_onnx_config

PRECISIONS = ("fp32", "fp16", "int8")
#: The majors this module is written against: 10 (weak typing with builder flags and calibrators) and
#: 11 (always strongly typed: BuilderFlag.FP16/INT8 and IInt8Calibrator removed).
TRT_MAJORS = (10, 11)
UNAVAILABLE_REASON = "TensorRT 10.x or 11.x and a CUDA GPU are required"
INPUTS, OUTPUTS = (INPUT_NAME,), (LOGITS_NAME, MASK_NAME)
#: an engine of a graph exported before the confidence output serves masks without it
OPTIONAL_OUTPUTS = (CONFIDENCE_NAME,)
_LOGGER = None


def trt_major() -> int | None:
    """The installed TensorRT's major version, None where it is not installed."""
    try:
        import tensorrt as trt
    except ImportError:
        return None
    return int(trt.__version__.split(".")[0])


def strongly_typed(major: int | None = None) -> bool:
    """Whether networks are strongly typed (TensorRT 11 and later): the graph fixes the precision."""
    major = trt_major() if major is None else major
    return major is not None and major >= 11


def unavailable_reason() -> str:
    """Why the TensorRT backend cannot run here ("" when it can)."""
    try:
        import tensorrt as trt
    except ImportError:
        return UNAVAILABLE_REASON + " (tensorrt is not installed)"
    major = int(trt.__version__.split(".")[0])
    if major not in TRT_MAJORS:
        return f"TensorRT {trt.__version__} is installed; this backend is written for TensorRT {' and '.join(f'{m}.x' for m in TRT_MAJORS)}"
    try:
        import torch
    except ImportError:
        return UNAVAILABLE_REASON + " (torch with CUDA holds the buffers)"
    return "" if torch.cuda.is_available() else UNAVAILABLE_REASON + " (no CUDA device)"


def available() -> bool:
    return not unavailable_reason()


def logger():
    """One TensorRT logger for the process (builder, parser and runtime share it)."""
    global _LOGGER
    if _LOGGER is None:
        import tensorrt as trt

        _LOGGER = trt.Logger(trt.Logger.WARNING)
    return _LOGGER


def onnx_graph_info(onnx_path: str | Path) -> tuple[list[int], str]:
    """(input dims with -1 for a free one, graph precision: ``fp32``, ``fp16``, ``qdq-int8`` (symmetric
    INT8 Q/DQ, what TensorRT takes) or ``qdq-other`` (ONNX Runtime's asymmetric uint8 Q/DQ)), read
    from the file without TensorRT."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(onnx_path), load_external_data=False)
    inp = next(i for i in proto.graph.input if i.name == INPUT_NAME)
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in inp.type.tensor_type.shape.dim]
    quant = [n for n in proto.graph.node if n.op_type == "QuantizeLinear"]
    if quant:
        inits = {i.name: i for i in proto.graph.initializer}
        points = [inits[n.input[2]] for n in quant if len(n.input) > 2 and n.input[2] in inits]
        symmetric = all(z.data_type == onnx.TensorProto.INT8 and not numpy_helper.to_array(z).any() for z in points)
        return dims, "qdq-int8" if symmetric else "qdq-other"
    half = any(i.data_type == onnx.TensorProto.FLOAT16 for i in proto.graph.initializer)
    return dims, "fp16" if half else "fp32"


@dataclass
class BuildPlan:
    """How one engine is built, decided before TensorRT is touched (so a cache hit parses nothing)."""

    shapes: dict[str, tuple]  # input -> (min, opt, max) shapes of the optimisation profile
    flags: list[str] = field(default_factory=list)  # TensorRT 10 BuilderFlag names (FP16, INT8)
    calibrate: bool = False  # TensorRT 10 INT8 from an fp32 graph: calibration frames or an earlier engine
    strongly_typed: bool = False


def build_plan(onnx_path: str | Path, precision: str, size: tuple[int, int] | None, major: int) -> BuildPlan:
    """The profile (a fixed graph's own shape; a free height/width set to the frame ``size``) and
    the precision route for this TensorRT major; a clear ValueError where the graph cannot give the
    precision asked for."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    dims, kind = onnx_graph_info(onnx_path)
    if len(dims) != 4:
        raise ValueError(f"{onnx_path}: input {INPUT_NAME} has {len(dims)} dims, expected (N, 3, H, W)")
    if any(d < 0 for d in dims[2:]):
        if size is None:
            raise ValueError(f"{onnx_path} has a free height/width: the engine needs the frame size it is built for")
        dims = [dims[0], dims[1], size[1], size[0]]
    elif size is not None and tuple(dims[2:][::-1]) != tuple(size):
        raise ValueError(f"{onnx_path} is fixed to {dims[3]}x{dims[2]}, not {size[0]}x{size[1]}")
    shape = (1 if dims[0] < 0 else dims[0], 3, dims[2], dims[3])
    plan = BuildPlan({INPUT_NAME: (shape, shape, shape)})
    if kind == "qdq-other":
        raise ValueError(f"{onnx_path}: its Q/DQ scales are asymmetric uint8 (ONNX Runtime's); TensorRT takes symmetric INT8 (quantize --symmetric)")
    if strongly_typed(major):  # TensorRT 11: the graph is the precision
        plan.strongly_typed = True
        want = {"fp32": "fp32", "fp16": "fp16", "int8": "qdq-int8"}[precision]
        if kind != want:
            how = {"fp16": "an fp16 export (the node makes one from a .pt checkpoint)", "qdq-int8": "a symmetric INT8 Q/DQ ONNX (quantize --symmetric)"}
            needs = how.get(want, "an fp32 graph")
            raise ValueError(f"TensorRT {major} builds strongly typed networks: precision {precision} needs {needs}, and {onnx_path} is {kind}")
        return plan
    if kind == "qdq-int8":  # explicit quantization: the scales are in the graph
        plan.flags = ["FP16", "INT8"]
    elif precision in ("fp16", "int8"):
        plan.flags = ["FP16", "INT8"] if precision == "int8" else ["FP16"]
        plan.calibrate = precision == "int8"
    return plan


def _gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0)


def build_key(onnx_path: Path, precision: str, shapes: dict[str, tuple], calibration: str = "") -> dict:
    """Everything an engine depends on: a change in any of these means a rebuild, never a load.
    ``calibration``: hash of the INT8 calibration frames (their scales are baked into the engine)."""
    import tensorrt as trt

    return {
        "onnx_sha256": file_sha256(onnx_path),
        "tensorrt": trt.__version__,
        "gpu": _gpu_name(),
        "precision": precision,
        "shapes": {k: list(map(list, v)) for k, v in shapes.items()},
        "calibration": calibration,
    }


def frames_hash(frames: list[np.ndarray] | None) -> str:
    if not frames:
        return ""
    h = hashlib.sha256()
    for f in frames:
        h.update(np.ascontiguousarray(f).tobytes())
    return h.hexdigest()[:16]


def _cached_int8(key: dict, cache: str | Path) -> Path | None:
    """An INT8 engine built earlier for the same model, TensorRT, GPU and shapes, with whatever frames."""
    folder = cache_dir(cache) / "engines"
    want = {k: v for k, v in key.items() if k != "calibration"}
    for manifest in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        found = json.loads(manifest.read_text()).get("key", {})
        if {k: v for k, v in found.items() if k != "calibration"} == want and found.get("calibration") and manifest.with_suffix(".engine").is_file():
            return manifest.with_suffix(".engine")
    return None


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
    onnx_path: str | Path,
    precision: str = "fp16",
    size: tuple[int, int] | None = None,
    calib_frames: list[np.ndarray] | None = None,
    cache: str | Path = "",
) -> Path:
    """Build (or find in the cache) a serialized engine for frames of ``size`` (w, h; a fixed graph's
    own size when None); returns its path. The cache is asked before any Builder or parser exists."""
    import tensorrt as trt

    onnx_path = Path(onnx_path)
    major = int(trt.__version__.split(".")[0])
    plan = build_plan(onnx_path, precision, size, major)
    key = build_key(onnx_path, precision, plan.shapes, frames_hash(calib_frames) if plan.calibrate else "")
    if plan.calibrate and not calib_frames:
        cached = _cached_int8(key, cache)
        if cached is None:
            raise ValueError("int8 needs calibration frames (--calib-dir) or an INT8 engine built earlier for this model, TensorRT and GPU")
        return cached
    engine_file, manifest_file = engine_paths(key, cache)
    if engine_file.is_file() and manifest_file.is_file() and json.loads(manifest_file.read_text()).get("key") == key:
        return engine_file
    builder = trt.Builder(logger())
    # TensorRT 11: strong typing is always on (its flag is ignored); 10: weak typing with builder flags
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger())
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ValueError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 2 << 30)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in plan.shapes.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    timing_file = cache_file(cache_dir(cache), "engines", f"timing-{key['gpu'].replace(' ', '_').replace('/', '_')}-{key['tensorrt']}.cache")
    timing = config.create_timing_cache(timing_file.read_bytes() if timing_file.is_file() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)
    for flag in plan.flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if plan.calibrate:
        config.int8_calibrator = EntropyCalibrator(calib_frames, engine_file.with_suffix(".calib"))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    atomic_write_bytes(timing_file, bytes(config.get_timing_cache().serialize()))
    atomic_write_bytes(engine_file, bytes(serialized))
    atomic_write_bytes(manifest_file, json.dumps({"key": key, "engine_sha256": file_sha256(engine_file)}, indent=2).encode())
    return engine_file


class TensorRTBackend:
    """Loads only engines this package built (manifest with build key and SHA-256), else builds one;
    an engine from elsewhere only when named as ``trusted_engine``."""

    dynamic = False  # one engine per input size (the Segmenter keeps one backend per size)

    def __init__(
        self, onnx_path: str | Path, precision: str = "fp16", engine: str | Path | None = None, cache: str | Path = "", size: tuple[int, int] | None = None
    ) -> None:
        import tensorrt as trt
        import torch

        if reason := unavailable_reason():
            raise ValueError(f"backend tensorrt: {reason}")
        self.config = read_onnx_config(onnx_path)
        dims, _ = onnx_graph_info(onnx_path)
        #: a graph with a free height/width gets an engine per frame size from the same file
        self.resizable = any(d < 0 for d in dims[2:])
        if engine and not Path(engine).is_file():
            raise FileNotFoundError(f"trusted_engine not found: {engine}")
        engine_file = Path(engine).resolve() if engine else build_engine(onnx_path, precision, size, cache=cache)
        data = engine_file.read_bytes()  # read once: the bytes hashed are the bytes deserialized
        if not engine:
            manifest = json.loads(engine_file.with_suffix(".json").read_text())
            if manifest["engine_sha256"] != hashlib.sha256(data).hexdigest():
                raise ValueError(f"{engine_file}: does not match its manifest; delete it to rebuild")
        self.engine = trt.Runtime(logger()).deserialize_cuda_engine(data)
        if self.engine is None:
            raise ValueError(f"{engine_file}: not a TensorRT engine for this TensorRT/GPU")
        self._check_io(trt, engine_file)
        if engine:  # an engine from elsewhere serves the shapes it was built for, and no other
            lo, _, hi = (tuple(d) for d in self.engine.get_tensor_profile_shape(INPUT_NAME, 0))
            want = size or tuple(self.config.input_size)
            if not (lo[2] <= want[1] <= hi[2] and lo[3] <= want[0] <= hi[3]):
                raise ValueError(f"trusted_engine {engine} serves {lo[3]}x{lo[2]} to {hi[3]}x{hi[2]}, not {want[0]}x{want[1]} frames")
        self.context = self.engine.create_execution_context()
        self.device = torch.device("cuda")
        self.stream = torch.cuda.Stream()
        self.torch = torch
        self.name = f"tensorrt-{precision}"
        self.size = size

    def _check_io(self, trt, engine_file: Path) -> None:
        """The engine's I/O tensors by mode, names and dtypes: an engine of another graph is refused here,
        not by a wrong answer or a crash in the first frame."""
        modes = {self.engine.get_tensor_name(i): self.engine.get_tensor_mode(self.engine.get_tensor_name(i)) for i in range(self.engine.num_io_tensors)}
        inputs = tuple(n for n, m in modes.items() if m == trt.TensorIOMode.INPUT)
        outputs = tuple(sorted(n for n, m in modes.items() if m == trt.TensorIOMode.OUTPUT))
        extra = tuple(n for n in outputs if n not in OUTPUTS)
        if inputs != INPUTS or not set(OUTPUTS) <= set(outputs) or not set(extra) <= set(OPTIONAL_OUTPUTS):
            raise ValueError(f"{engine_file}: engine inputs {inputs} / outputs {outputs}, expected {INPUTS} / {OUTPUTS} (+ {OPTIONAL_OUTPUTS})")
        self.outputs = OUTPUTS + extra
        want = {INPUT_NAME: trt.DataType.FLOAT, LOGITS_NAME: trt.DataType.FLOAT, MASK_NAME: trt.DataType.UINT8, CONFIDENCE_NAME: trt.DataType.UINT8}
        want = {n: d for n, d in want.items() if n in INPUTS + self.outputs}
        for name, dtype in want.items():
            if self.engine.get_tensor_dtype(name) != dtype:
                raise ValueError(f"{engine_file}: tensor {name} is {self.engine.get_tensor_dtype(name)}, expected {dtype}")
        shape = tuple(self.engine.get_tensor_shape(INPUT_NAME))
        if len(shape) != 4 or shape[1] not in (3, -1):
            raise ValueError(f"{engine_file}: input shape {shape}, expected (N, 3, H, W)")

    def infer(self, batch: np.ndarray) -> Inference:
        torch = self.torch
        with torch.cuda.stream(self.stream):
            x = torch.from_numpy(batch).cuda(non_blocking=True)
            mask, confidence = self.infer_device(x)
            return Inference(mask.cpu().numpy(), None if confidence is None else confidence.cpu().numpy())

    def infer_device(self, x):
        """(N, 3, H, W) float32 CUDA tensor -> (N, H, W) uint8 class ids and confidence (None from an
        engine without it) as CUDA tensors; they stay on the GPU."""
        torch = self.torch
        self.stream.wait_stream(torch.cuda.current_stream())  # x may come from work queued on another stream
        x = x.contiguous()
        if not self.context.set_input_shape(INPUT_NAME, tuple(x.shape)):
            raise RuntimeError(f"TensorRT refused input shape {tuple(x.shape)} (outside the engine's profile)")
        shapes = {n: tuple(self.context.get_tensor_shape(n)) for n in self.outputs}  # allocated as the context says
        if any(d < 0 for s in shapes.values() for d in s):
            raise RuntimeError(f"TensorRT left output shapes unresolved: {shapes}")
        tensors = {INPUT_NAME: x}
        for name in self.outputs:
            tensors[name] = torch.empty(shapes[name], device="cuda", dtype=torch.float32 if name == LOGITS_NAME else torch.uint8)
        for name, tensor in tensors.items():
            if not self.context.set_tensor_address(name, int(tensor.data_ptr())):
                raise RuntimeError(f"TensorRT refused the address of {name}")
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        self.stream.synchronize()
        return tensors[MASK_NAME], tensors.get(CONFIDENCE_NAME)
