"""Inference backends behind one call: normalised NCHW float32 in, uint8 class ids and confidence out.

The argmax and the confidence happen inside the backend (in the exported graph), so a GPU backend
only ships two compact uint8 images to the host.
Only what the chosen backend needs is imported: ONNX Runtime serves an .onnx model without PyTorch.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np

from fcn_perception.files import file_sha256
from fcn_perception.inference.model_store import cache_dir, cache_file
from fcn_perception.model.config import CONFIDENCE_NAME, EXPORT_VERSION, MASK_NAME, ModelConfig, config_from_metadata

#: The one list of backend names: node parameter, CLI choices and replay overrides all read it.
BACKENDS = ("auto", "tensorrt", "openvino", "onnxruntime", "torch")
#: Device files an NVIDIA driver creates (desktop/server GPUs, Jetson's integrated GPU).
_GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/nvhost-ctrl-gpu", "/dev/nvgpu")


def gpu_present() -> bool:
    """Whether a CUDA GPU can exist here, asked of the driver's device files rather than of torch:
    ``auto`` on a machine without one must not pay PyTorch's import (a second, 600 MB runtime)."""
    return any(os.path.exists(p) for p in _GPU_DEVICE_FILES)


def concrete_backend(name: str, device: str = "auto") -> str:
    """The backend ``name`` means here — the one decision of what ``auto`` picks, for the model file
    (Segmenter) and the backend (create_backend) alike: TensorRT where it can run, else PyTorch on
    CUDA; on the CPU OpenVINO where it is installed (the faster CPU runtime, BENCHMARKS.md), else
    ONNX Runtime. Neither GPU runtime is imported where no GPU exists."""
    if name != "auto":
        return name
    if device != "cpu" and gpu_present():
        from fcn_perception.inference import tensorrt_backend

        if tensorrt_backend.available():
            return "tensorrt"
        if torch_cuda_available():
            return "torch"
    from fcn_perception.inference import openvino_backend

    return "openvino" if openvino_backend.available() else "onnxruntime"


def torch_cuda_available() -> bool:
    if not gpu_present() or importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


class InferenceError(RuntimeError):
    """The backend failed on a frame (driver error, out of memory, a broken session) — as opposed to a
    bad frame. The node counts these apart and applies its ``on_backend_failure`` policy."""


class Inference(NamedTuple):
    """What a backend returns for a batch: (N, H, W) uint8 class ids, and (N, H, W) uint8 confidence
    (the top class's softmax probability, 255 = 1.0) — None from a graph exported without it."""

    mask: np.ndarray
    confidence: np.ndarray | None = None


class Backend(Protocol):
    name: str
    config: ModelConfig

    def infer(self, batch: np.ndarray) -> Inference:
        """(N, 3, H, W) float32 normalised -> class ids and confidence."""


class OnnxRuntimeBackend:
    """ONNX Runtime on the CPU execution provider: the real-time path on machines without a GPU."""

    def __init__(self, onnx_path: str | Path, threads: int = 0) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads or (os.cpu_count() or 1)
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        self.config = config_from_metadata(self.session.get_modelmeta().custom_metadata_map)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        #: a graph exported with symbolic height/width takes every frame size
        self.dynamic = any(not isinstance(d, int) for d in inp.shape[2:])
        has_confidence = CONFIDENCE_NAME in {o.name for o in self.session.get_outputs()}
        self._outputs = [MASK_NAME, CONFIDENCE_NAME] if has_confidence else [MASK_NAME]
        self.name = "onnxruntime-cpu"

    def infer(self, batch: np.ndarray) -> Inference:
        return Inference(*self.session.run(self._outputs, {self.input_name: np.ascontiguousarray(batch, np.float32)}))


def onnx_for(model_path: Path, width: int, height: int, cache: str | Path = "", model=None, half: bool = False) -> Path:
    """The fixed-size ONNX export of a checkpoint, made once and cached by the checkpoint's hash and
    the export's version (``model``: the checkpoint already loaded, to avoid loading it twice;
    ``half``: float16 compute)."""
    key = file_sha256(model_path)[:16]
    name = f"{model_path.stem}-{key}-v{EXPORT_VERSION}-{width}x{height}{'-fp16' if half else ''}.onnx"
    out = cache_file(cache_dir(cache), "onnx", name)
    if not out.is_file():
        from fcn_perception.model.export import export_onnx
        from fcn_perception.model.fcn import load_model

        export_onnx(model or load_model(model_path), out, height=height, width=width, half=half)
    return out


def create_backend(
    name: str,
    model_path: Path,
    input_size: tuple[int, int] | None = None,
    threads: int = 0,
    device: str = "auto",
    precision: str = "auto",
    cache: str | Path = "",
    engine: str | Path = "",
) -> Backend:
    """``input_size`` (w, h) fixes the ONNX graph's shape; ``None`` takes the size the model was trained for.

    auto: TensorRT when it is importable and a GPU is present, else PyTorch on CUDA, else ONNX Runtime.
    ``engine``: a TensorRT engine from outside the cache, trusted explicitly (tensorrt only).
    """
    from fcn_perception.inference import tensorrt_backend

    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "tensorrt" and (reason := tensorrt_backend.unavailable_reason()):
        raise ValueError(f"backend tensorrt: {reason}")
    if model_path.suffix in (".engine", ".plan", ".trt"):
        raise ValueError(f"{model_path}: TensorRT engines are not models; give the .pt or .onnx it was built from, and the engine as trusted_engine")
    chosen = concrete_backend(name, device)
    use_trt = chosen == "tensorrt"
    trt_precision = "fp16" if precision == "auto" else precision  # TensorRT's default: fp16
    if engine and not use_trt:
        raise ValueError(f"trusted_engine {engine} needs the tensorrt backend ({tensorrt_backend.UNAVAILABLE_REASON}, and backend tensorrt or auto)")

    def trt(onnx: Path):
        return tensorrt_backend.TensorRTBackend(onnx, trt_precision, engine=engine or None, cache=cache, size=input_size)

    def cpu(onnx: Path):
        if chosen == "openvino":
            from fcn_perception.inference.openvino_backend import OpenVinoBackend

            return OpenVinoBackend(onnx, input_size, threads, precision, cache)
        return OnnxRuntimeBackend(onnx, threads)

    if model_path.suffix == ".onnx":
        if name == "torch":
            raise ValueError("the torch backend needs a .pt checkpoint, not an .onnx file")
        return trt(model_path) if use_trt else cpu(model_path)
    if chosen == "torch":
        from fcn_perception.inference.torch_backend import TorchBackend
        from fcn_perception.model.fcn import load_model

        return TorchBackend(load_model(model_path), device=device, threads=threads)
    model = None
    if input_size is None:
        from fcn_perception.model.fcn import load_model

        model = load_model(model_path)
        input_size = tuple(model.cfg.input_size)
    # TensorRT 11 builds strongly typed networks: an fp16 engine comes from an fp16 graph
    half = use_trt and trt_precision == "fp16" and tensorrt_backend.strongly_typed()
    onnx_path = onnx_for(model_path, *input_size, cache=cache, model=model, half=half)
    return trt(onnx_path) if use_trt else cpu(onnx_path)
